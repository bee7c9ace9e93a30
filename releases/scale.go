package releases

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/dkhq/dk"
)

// MaxScale bounds one process type's container count.
const MaxScale = 100

// Scale sets how many containers process types run and converges at once:
// new web containers serve only once healthy; removed ones are drained
// first. The formation is kept across releases.
func (m *Manager) Scale(ctx context.Context, appName string, scale map[string]int, author string, w io.Writer) (dk.Formation, error) {
	if len(scale) == 0 {
		return nil, dk.Errorf(dk.EINVALID, "nothing to scale; usage: ps:scale APP web=2 worker=1")
	}
	for proc, n := range scale {
		if err := dk.ValidateProcessType(proc); err != nil {
			return nil, err
		}
		if proc == dk.ReleasePhase {
			return nil, dk.Errorf(dk.EINVALID, "the release phase runs once per release and cannot be scaled")
		}
		if n < 0 || n > MaxScale {
			return nil, dk.Errorf(dk.EINVALID, "%s=%d: scale must be between 0 and %d", proc, n, MaxScale)
		}
	}
	if _, err := m.Store.App(ctx, appName); err != nil {
		return nil, err
	}
	lock, err := m.TryLock(appName, "scale by "+author)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	cur, err := m.Current(ctx, appName)
	if err != nil {
		return nil, err
	}
	if cur != nil {
		for proc := range scale {
			if _, ok := cur.Processes[proc]; !ok {
				return nil, dk.Errorf(dk.EINVALID, "%s has no process type %q in %s; its Procfile declares: %s",
					appName, proc, cur.Name(), strings.Join(cur.Processes.Types(), ", "))
			}
		}
	}
	app, err := m.Store.UpdateApp(ctx, appName, func(a *dk.App) error {
		if a.Formation == nil {
			a.Formation = dk.Formation{}
		}
		for proc, n := range scale {
			a.Formation[proc] = n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := newProgress(w)
	if cur == nil {
		return app.Formation, nil
	}
	return app.Formation, m.converge(ctx, app, cur, out)
}

// converge starts missing containers of cur (waiting for web ones to be
// healthy before routing to them) and retires the ones over the formation.
func (m *Manager) converge(ctx context.Context, app *dk.App, cur *dk.Release, out *progress) error {
	cs, err := m.Runtime.Containers(ctx, app.Name)
	if err != nil {
		return err
	}
	have := map[string]map[int]bool{}
	var extra []dk.Container
	for _, c := range cs {
		if _, declared := cur.Processes[c.Process]; !declared || c.Release != cur.Version || c.Index > app.Formation.Scale(c.Process) {
			extra = append(extra, c)
			continue
		}
		if have[c.Process] == nil {
			have[c.Process] = map[int]bool{}
		}
		have[c.Process][c.Index] = true
	}
	check := m.check(app, cur)
	var started []dk.Container
	for _, proc := range cur.Processes.Types() {
		for i := 1; i <= app.Formation.Scale(proc); i++ {
			if have[proc][i] {
				continue
			}
			out.Printf("       starting %s.%d", proc, i)
			c, err := m.Runtime.Start(ctx, m.spec(cur, proc, i))
			if err != nil {
				m.stopAll(started, 0)
				return dk.Errorf(dk.EFAILED, "start %s.%d: %s", proc, i, dk.ErrorMessage(err))
			}
			started = append(started, c)
			if proc == "web" {
				err = m.waitReady(ctx, c, check, cur.Port())
			} else {
				err = m.waitStayUp(ctx, c)
			}
			if err != nil {
				m.showLogs(c, out)
				m.stopAll(started, 0)
				return err
			}
		}
	}
	m.drain(extra)
	m.markReady(started)
	m.syncRoutes(context.WithoutCancel(ctx))
	for _, c := range extra {
		out.Printf("       stopping %s.%d", c.Process, c.Index)
	}
	m.retire(context.WithoutCancel(ctx), extra)
	m.syncRoutes(context.WithoutCancel(ctx))
	return nil
}

// SetChecks stores (or with nil clears) an app's health check; it applies
// from the next rollout (deploy, config change, restart).
func (m *Manager) SetChecks(ctx context.Context, appName string, h *dk.HealthCheck) (*dk.App, error) {
	if h != nil {
		if err := ValidateCheck(*h); err != nil {
			return nil, err
		}
	}
	return m.Store.UpdateApp(ctx, appName, func(a *dk.App) error {
		a.Checks = h
		return nil
	})
}

// FormatFormation renders a formation as "web=1 worker=2".
func FormatFormation(f dk.Formation, types []string) string {
	seen := map[string]bool{}
	var parts []string
	for _, t := range types {
		seen[t] = true
		parts = append(parts, fmt.Sprintf("%s=%d", t, f.Scale(t)))
	}
	var rest []string
	for t := range f {
		if !seen[t] {
			rest = append(rest, t)
		}
	}
	sort.Strings(rest)
	for _, t := range rest {
		parts = append(parts, fmt.Sprintf("%s=%d", t, f[t]))
	}
	return strings.Join(parts, " ")
}
