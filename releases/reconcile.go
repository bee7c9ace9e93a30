package releases

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/dkhq/dk"
)

// Trigger asks the reconciler to look at app soon ("" means every app).
func (m *Manager) Trigger(app string) {
	m.reconcileMu.Lock()
	if m.pending == nil {
		m.pending = map[string]bool{}
	}
	m.pending[app] = true
	kick := m.kick
	m.reconcileMu.Unlock()
	if kick != nil {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
}

// Run reconciles on triggers and every interval until ctx ends. It first
// marks releases left pending by a crash as failed, then converges every app.
func (m *Manager) Run(ctx context.Context, interval time.Duration) {
	m.reconcileMu.Lock()
	m.kick = make(chan struct{}, 1)
	kick := m.kick
	m.reconcileMu.Unlock()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	m.Trigger("")
	for {
		m.reconcilePending(ctx)
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-tick.C:
			m.Trigger("")
		}
	}
}

func (m *Manager) reconcilePending(ctx context.Context) {
	m.reconcileMu.Lock()
	pending := m.pending
	m.pending = map[string]bool{}
	m.reconcileMu.Unlock()
	if len(pending) == 0 {
		return
	}
	if pending[""] {
		if err := m.ReconcileAll(ctx); err != nil && ctx.Err() == nil {
			m.logger().Warn("reconcile", "err", err)
		}
		return
	}
	for app := range pending {
		if err := m.Reconcile(ctx, app); err != nil && ctx.Err() == nil {
			m.logger().Warn("reconcile", "app", app, "err", err)
		}
	}
	m.syncRoutes(ctx)
}

// RecoverInterrupted marks releases that were pending when dkd stopped as
// failed: their deploy never finished, so they never served.
func (m *Manager) RecoverInterrupted(ctx context.Context, pending []*dk.Release) {
	for _, r := range pending {
		r.Status = dk.ReleaseFailed
		r.Error = "interrupted: dkd stopped during the deploy"
		// Its own tag goes (the build's stays for the other releases).
		if r.Image == fmt.Sprintf("%s/%s:%s", m.Instance, r.App, r.Name()) {
			if err := m.Runtime.RemoveImage(ctx, r.Image); err != nil {
				m.logger().Warn("remove interrupted release's image tag", "image", r.Image, "err", err)
			}
		}
		if err := m.Store.UpdateRelease(ctx, r); err != nil {
			m.logger().Error("mark interrupted release failed", "app", r.App, "release", r.Version, "err", err)
			continue
		}
		m.logger().Warn("release interrupted by a restart, marked failed", "app", r.App, "release", r.Version)
	}
	// Images a crash left behind (a build exported just before it, a
	// release tag of an interrupted deploy) go now, not at the next deploy.
	apps, err := m.Store.Apps(ctx)
	if err != nil {
		return
	}
	for _, a := range apps {
		m.gc(ctx, a.Name)
	}
}

// ReconcileAll converges every app, and removes containers of apps that no
// longer exist.
func (m *Manager) ReconcileAll(ctx context.Context) error {
	// Containers before apps: an app created after this list cannot lose
	// containers it starts meanwhile.
	cs, err := m.Runtime.Containers(ctx, "")
	if err != nil {
		return err
	}
	apps, err := m.Store.Apps(ctx)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, a := range apps {
		known[a.Name] = true
	}
	for _, c := range cs {
		if !known[c.App] && !m.locked(c.App) && !m.isDraining(c.ID) {
			m.logger().Info("removing container of unknown app", "app", c.App, "container", c.ID)
			if err := m.Runtime.Stop(ctx, c.ID, m.stopGrace()); err != nil {
				m.logger().Warn("stop orphan", "container", c.ID, "err", err)
			}
		}
	}
	for _, a := range apps {
		if err := m.Reconcile(ctx, a.Name); err != nil {
			m.logger().Warn("reconcile", "app", a.Name, "err", err)
		}
	}
	m.syncRoutes(ctx)
	return nil
}

// Reconcile converges one app's containers to its latest successful release
// and formation. It skips apps whose lock is held: the holder converges them.
func (m *Manager) Reconcile(ctx context.Context, appName string) (err error) {
	defer func() { m.observeReconcile(err) }()
	pass := m.pass(appName)
	pass.Lock()
	defer pass.Unlock()
	if m.locked(appName) {
		return nil // a deploy (or config change, rollback …) converges the app itself
	}
	app, err := m.Store.App(ctx, appName)
	if err != nil {
		if dk.ErrorCode(err) == dk.ENOTFOUND {
			return nil
		}
		return err
	}
	cur, err := m.Current(ctx, appName)
	if err != nil {
		return err
	}
	cs, err := m.Runtime.Containers(ctx, appName)
	if err != nil {
		return err
	}
	log := m.logger().With("app", appName)
	type slot struct {
		proc  string
		index int
	}
	have := map[slot][]dk.Container{}
	wanted := func(c dk.Container) bool {
		if cur == nil || c.Release != cur.Version {
			return false
		}
		if _, declared := cur.Processes[c.Process]; !declared {
			return false
		}
		return c.Index >= 1 && c.Index <= app.Formation.Scale(c.Process)
	}
	for _, c := range cs {
		if m.isDraining(c.ID) {
			continue // being retired by a deploy: drained, then stopped
		}
		if !wanted(c) {
			log.Info("removing unwanted container", "container", c.ID, "release", c.Release, "process", c.Process, "index", c.Index)
			if err := m.Runtime.Stop(ctx, c.ID, m.stopGrace()); err != nil {
				log.Warn("stop", "container", c.ID, "err", err)
			}
			continue
		}
		if c.State == "exited" || c.State == "dead" || c.State == "created" {
			// Docker's restart policy gave up (or it was stopped behind dk's
			// back): replace it.
			log.Info("replacing stopped container", "container", c.ID, "process", c.Process, "index", c.Index, "state", c.State)
			m.event(appName, "%s.%d was %s; replacing it", c.Process, c.Index, c.State)
			if err := m.Runtime.Stop(ctx, c.ID, time.Second); err != nil {
				log.Warn("remove", "container", c.ID, "err", err)
			}
			continue
		}
		s := slot{c.Process, c.Index}
		have[s] = append(have[s], c)
	}
	if cur == nil {
		return nil
	}
	var live []dk.Container
	for _, cs := range have {
		live = append(live, cs...)
	}
	m.noticeCrashes(ctx, appName, live)
	check := m.check(app, cur)
	for _, c := range live {
		if c.Process == "web" && c.State == "running" && !m.isReady(c.ID) && probeOnce(ctx, c.Addr, check.Path) == nil {
			m.markReady([]dk.Container{c})
		}
	}
	for _, proc := range cur.Processes.Types() {
		for i := 1; i <= app.Formation.Scale(proc); i++ {
			s := slot{proc, i}
			if dup := have[s]; len(dup) > 1 {
				sort.Slice(dup, func(a, b int) bool { return dup[a].StartedAt.After(dup[b].StartedAt) })
				for _, c := range dup[1:] {
					_ = m.Runtime.Stop(ctx, c.ID, m.stopGrace())
				}
			}
			if len(have[s]) > 0 {
				continue
			}
			if !m.mayStart(appName) {
				continue // a start failed recently: back off (the periodic pass retries)
			}
			log.Info("starting missing container", "process", proc, "index", i, "release", cur.Version)
			m.event(appName, "starting %s.%d of %s (it was missing)", proc, i, cur.Name())
			c, err := m.Runtime.Start(ctx, m.spec(cur, proc, i))
			m.startResult(appName, err)
			if err != nil {
				log.Warn("start", "process", proc, "index", i, "err", err)
				continue
			}
			if proc == "web" {
				// Traffic only once it is healthy.
				go func() {
					if err := m.waitReady(context.WithoutCancel(ctx), c, check, cur.Port()); err != nil {
						log.Warn("replacement not healthy", "process", proc, "index", i, "err", err)
						return
					}
					m.markReady([]dk.Container{c})
					m.syncRoutes(context.WithoutCancel(ctx))
				}()
			}
		}
	}
	return nil
}

// syncRoutes rebuilds the router's table from the store and the runtime.
func (m *Manager) syncRoutes(ctx context.Context) {
	if m.Router == nil {
		return
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	apps, err := m.Store.Apps(ctx)
	if err != nil {
		m.logger().Warn("sync routes", "err", err)
		return
	}
	cs, err := m.Runtime.Containers(ctx, "")
	if err != nil {
		m.logger().Warn("sync routes", "err", err)
		return
	}
	routes := make(map[string][]string, len(apps))
	for _, a := range apps {
		cur, err := m.Current(ctx, a.Name)
		if err != nil {
			m.logger().Warn("sync routes", "app", a.Name, "err", err)
			continue
		}
		var addrs []string
		for _, c := range cs {
			if cur != nil && c.App == a.Name && c.Release == cur.Version && c.Process == "web" &&
				c.State == "running" && c.Addr != "" && !m.draining[c.ID] && m.ready[c.ID] {
				addrs = append(addrs, c.Addr)
			}
		}
		sort.Strings(addrs)
		routes[a.Name] = addrs
	}
	m.Router.SetRoutes(routes)
}

// drain keeps containers out of every route table until undrain: ones
// being stopped, and ones started but not yet healthy.
func (m *Manager) drain(cs []dk.Container) {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if m.draining == nil {
		m.draining = map[string]bool{}
	}
	for _, c := range cs {
		m.draining[c.ID] = true
	}
}

// markReady lets containers that passed their health check receive traffic.
func (m *Manager) markReady(cs []dk.Container) {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if m.ready == nil {
		m.ready = map[string]bool{}
	}
	for _, c := range cs {
		m.ready[c.ID] = true
	}
}

// unready takes containers out of traffic until they are probed healthy again.
func (m *Manager) unready(cs []dk.Container) {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	for _, c := range cs {
		delete(m.ready, c.ID)
	}
}

func (m *Manager) isDraining(id string) bool {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	return m.draining[id]
}

func (m *Manager) isReady(id string) bool {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	return m.ready[id]
}

func (m *Manager) undrain(cs []dk.Container) {
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	for _, c := range cs {
		delete(m.draining, c.ID)
	}
}

// Reconciler starts back off per app after a failure (an engine shutting
// down, a missing image), so die events cannot drive a hot loop.
const (
	minStartBackoff = time.Second
	maxStartBackoff = 30 * time.Second
)

type backoff struct {
	next  time.Time
	delay time.Duration
}

func (m *Manager) mayStart(app string) bool {
	m.crashMu.Lock()
	defer m.crashMu.Unlock()
	b, ok := m.startBackoff[app]
	return !ok || !m.now().Before(b.next)
}

func (m *Manager) startResult(app string, err error) {
	m.crashMu.Lock()
	defer m.crashMu.Unlock()
	if err == nil {
		delete(m.startBackoff, app)
		return
	}
	if m.startBackoff == nil {
		m.startBackoff = map[string]backoff{}
	}
	b := m.startBackoff[app]
	b.delay = min(max(2*b.delay, minStartBackoff), maxStartBackoff)
	b.next = m.now().Add(b.delay)
	m.startBackoff[app] = b
}
