package releases

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dkhq/dk"
)

// maxEvents is how many dk event lines an app keeps in memory.
const maxEvents = 200

// events are dk's own lines in an app's log ("hello[dk]: Released v3"):
// deploys, restarts, crashes. They live in memory, beside the containers'
// own output.
type events struct {
	mu   sync.Mutex
	log  map[string][]LogLine
	subs map[string]map[chan LogLine]struct{}
}

// event records a dk line for app and sends it to followers.
func (m *Manager) event(app, format string, args ...any) {
	l := LogLine{Time: m.now().UTC(), App: app, Process: "dk", Text: fmt.Sprintf(format, args...)}
	e := &m.events
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.log == nil {
		e.log = map[string][]LogLine{}
	}
	lines := append(e.log[app], l)
	if len(lines) > maxEvents {
		lines = lines[len(lines)-maxEvents:]
	}
	e.log[app] = lines
	for ch := range e.subs[app] {
		select {
		case ch <- l:
		default: // a slow follower misses dk lines rather than blocking deploys
		}
	}
}

func (m *Manager) eventHistory(app string) []LogLine {
	m.events.mu.Lock()
	defer m.events.mu.Unlock()
	return append([]LogLine(nil), m.events.log[app]...)
}

func (m *Manager) subscribe(app string) (<-chan LogLine, func()) {
	ch := make(chan LogLine, 64)
	e := &m.events
	e.mu.Lock()
	if e.subs == nil {
		e.subs = map[string]map[chan LogLine]struct{}{}
	}
	if e.subs[app] == nil {
		e.subs[app] = map[chan LogLine]struct{}{}
	}
	e.subs[app][ch] = struct{}{}
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		delete(e.subs[app], ch)
		e.mu.Unlock()
	}
}

// noticeCrashes records an event for every container that Docker restarted
// since the last look, with its exit code; a container restarting again and
// again is reported as crash-looping.
func (m *Manager) noticeCrashes(ctx context.Context, app string, cs []dk.Container) {
	for _, c := range cs {
		cur, err := m.Runtime.Inspect(ctx, c.ID)
		if err != nil {
			continue
		}
		m.crashMu.Lock()
		if m.restarts == nil {
			m.restarts = map[string]int{}
		}
		seen, known := m.restarts[c.ID]
		m.restarts[c.ID] = cur.Restarts
		m.crashMu.Unlock()
		if !known || cur.Restarts <= seen {
			continue
		}
		// It crashed: no traffic until a probe finds it healthy again.
		m.unready([]dk.Container{c})
		if cur.ExitCode != 0 {
			m.crashMu.Lock()
			if m.lastExit == nil {
				m.lastExit = map[string]int{}
			}
			m.lastExit[c.ID] = cur.ExitCode
			m.crashMu.Unlock()
		}
		if cur.Restarts >= crashLoop {
			m.event(app, "%s.%d is crash-looping: exited with code %d, restarted %d times (Docker backs off up to a minute between restarts)", c.Process, c.Index, cur.ExitCode, cur.Restarts)
		} else {
			m.event(app, "%s.%d exited with code %d; restarted (restart %d)", c.Process, c.Index, cur.ExitCode, cur.Restarts)
		}
	}
}

// lastExitCode is the exit code of a container's last crash (Docker
// reports 0 once it runs again).
func (m *Manager) lastExitCode(c dk.Container) int {
	if c.ExitCode != 0 {
		return c.ExitCode
	}
	m.crashMu.Lock()
	defer m.crashMu.Unlock()
	return m.lastExit[c.ID]
}

// crashLoop is the restart count from which a process is crash-looping.
const crashLoop = 3

// State names a process's state for humans, from Docker's and its restarts.
func State(c dk.Container) string {
	switch {
	case c.State == "restarting" && c.Restarts >= crashLoop:
		return "crash-looping"
	case c.State == "restarting":
		return "crashed"
	case c.State == "running" && c.Restarts >= crashLoop && time.Since(c.StartedAt) < 30*time.Second:
		return "crash-looping"
	}
	return c.State
}
