package releases

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/dkhq/dk"
)

// LogLine is one line of an app's output.
type LogLine struct {
	Time    time.Time
	App     string
	Process string
	Index   int
	Text    string
}

// String renders the line as "<RFC3339Nano UTC> app[web.1]: text".
func (l LogLine) String() string {
	if l.Process == "dk" {
		return fmt.Sprintf("%s %s[dk]: %s", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), l.App, l.Text)
	}
	return fmt.Sprintf("%s %s[%s.%d]: %s", l.Time.UTC().Format("2006-01-02T15:04:05.000000Z"), l.App, l.Process, l.Index, l.Text)
}

// Logs writes an app's recent output, the last tail lines per container
// merged by time, and with follow keeps streaming (also from containers
// started later) until ctx ends.
func (m *Manager) Logs(ctx context.Context, appName string, tail int, follow bool, w io.Writer) error {
	if _, err := m.Store.App(ctx, appName); err != nil {
		return err
	}
	cs, err := m.Runtime.Containers(ctx, appName)
	if err != nil {
		return err
	}
	// History: collect, merge by time, print the newest tail lines.
	var lines []LogLine
	for _, c := range cs {
		_ = m.Runtime.Logs(ctx, c.ID, tail, false, func(ts time.Time, text string) {
			lines = append(lines, LogLine{Time: ts, App: appName, Process: c.Process, Index: c.Index, Text: text})
		})
	}
	lines = append(lines, m.eventHistory(appName)...)
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
	if tail >= 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	var mu sync.Mutex
	emit := func(l LogLine) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := io.WriteString(w, l.String()+"\n")
		return err
	}
	for _, l := range lines {
		if err := emit(l); err != nil {
			return err
		}
	}
	if !follow {
		return nil
	}
	// Follow: a streamer per container, new containers picked up as they appear.
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	since := time.Now()
	evs, unsubscribe := m.subscribe(appName)
	defer unsubscribe()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case l := <-evs:
				if err := emit(l); err != nil {
					cancel(err)
				}
			}
		}
	}()
	var fmu sync.Mutex
	followed := map[string]bool{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for _, c := range cs {
			if c.State != "running" {
				continue
			}
			fmu.Lock()
			seen := followed[c.ID]
			followed[c.ID] = true
			fmu.Unlock()
			if seen {
				continue
			}
			isNew := c.StartedAt.After(since)
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The stream ends when the process exits; a restart of the
				// same container is picked up again on the next tick.
				defer func() {
					fmu.Lock()
					delete(followed, c.ID)
					fmu.Unlock()
				}()
				n := 0 // existing containers: only new lines
				if isNew {
					n = -1 // a container started while following: all its output
				}
				_ = m.Runtime.Logs(ctx, c.ID, n, true, func(ts time.Time, text string) {
					if err := emit(LogLine{Time: ts, App: appName, Process: c.Process, Index: c.Index, Text: text}); err != nil {
						cancel(err)
					}
				})
			}()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if cs, err = m.Runtime.Containers(ctx, appName); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// Processes lists an app's containers, with restart counts and exit codes.
func (m *Manager) Processes(ctx context.Context, appName string) ([]dk.Container, error) {
	if _, err := m.Store.App(ctx, appName); err != nil {
		return nil, err
	}
	cs, err := m.Runtime.Containers(ctx, appName)
	if err != nil {
		return nil, err
	}
	for i, c := range cs {
		if full, err := m.Runtime.Inspect(ctx, c.ID); err == nil {
			cs[i] = full
		}
		cs[i].ExitCode = m.lastExitCode(cs[i])
		cs[i].State = State(cs[i])
	}
	return cs, nil
}
