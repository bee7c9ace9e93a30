package releases

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dkhq/dk"
)

func (m *Manager) drainTimeout() time.Duration {
	if m.DrainTimeout > 0 {
		return m.DrainTimeout
	}
	return 30 * time.Second
}

// stayUp is how long a non-web process must keep running, unrestarted, to
// count as started.
const stayUp = 2 * time.Second

// rollout moves app from the containers in old to rel:
//
//  1. run the release phase (Procfile "release:"), when newRelease;
//  2. start every process type of the formation, web first;
//  3. wait until each is healthy (web: its health check; others: still up
//     after a moment) — all or nothing: on any failure the new containers go
//     and old keeps serving;
//  4. switch: mark rel succeeded (newRelease) and swap the router's table;
//  5. drain old web containers (in-flight requests finish, bounded), then
//     SIGTERM, SIGKILL after the grace, remove.
func (m *Manager) rollout(ctx context.Context, app *dk.App, rel *dk.Release, old []dk.Container, out *progress, newRelease bool) ([]dk.Timing, error) {
	var timings []dk.Timing
	// Containers an earlier rollout is still retiring are its business.
	var live []dk.Container
	for _, c := range old {
		if !m.isDraining(c.ID) {
			live = append(live, c)
		}
	}
	old = live
	if cmd := rel.Processes[dk.ReleasePhase]; cmd != "" && newRelease {
		t0 := m.now()
		if err := m.releasePhase(ctx, rel, cmd, out); err != nil {
			return timings, err
		}
		timings = append(timings, dk.Timing{Stage: "release phase", Duration: m.now().Sub(t0)})
	}

	t0 := m.now()
	var started []dk.Container
	fail := func(err error) ([]dk.Timing, error) {
		m.stopAll(started, time.Second)
		return timings, err
	}
	for _, proc := range rel.Processes.Types() {
		for i := 1; i <= app.Formation.Scale(proc); i++ {
			out.Printf("       starting %s.%d", proc, i)
			c, err := m.Runtime.Start(ctx, m.spec(rel, proc, i))
			if err != nil {
				return fail(dk.Errorf(dk.EFAILED, "start %s.%d: %s", proc, i, dk.ErrorMessage(err)))
			}
			started = append(started, c)
		}
	}
	check := m.check(app, rel)
	if len(started) > 0 {
		out.Printf("       waiting until healthy: %s", check)
	}
	errs := make([]error, len(started))
	var wg sync.WaitGroup
	for i, c := range started {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.Process == "web" {
				errs[i] = m.waitReady(ctx, c, check, rel.Port())
			} else {
				errs[i] = m.waitStayUp(ctx, c)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			m.showLogs(started[i], out)
			return fail(err)
		}
	}
	timings = append(timings, dk.Timing{Stage: "start", Duration: m.now().Sub(t0)})

	// Switch: the release becomes current and the router gets a new table
	// without the old containers.
	t1 := m.now()
	m.drain(old)
	m.markReady(started)
	if newRelease {
		rel.Status = dk.ReleaseSucceeded
		if err := m.Store.UpdateRelease(context.WithoutCancel(ctx), rel); err != nil {
			m.undrain(old)
			m.unready(started)
			return fail(err)
		}
	}
	m.syncRoutes(context.WithoutCancel(ctx))
	timings = append(timings, dk.Timing{Stage: "switch", Duration: m.now().Sub(t1)})

	// The deploy has succeeded: drain and stop the old containers in the
	// background, so the pusher does not wait for them.
	m.retireAsync(context.WithoutCancel(ctx), rel.App, old)
	return timings, nil
}

// retireAsync retires old in the background. The containers stay in the
// draining set (so neither route tables nor the reconciler touch them) until
// they are gone; Settle waits for every retirement.
func (m *Manager) retireAsync(ctx context.Context, app string, old []dk.Container) {
	if len(old) == 0 {
		return
	}
	m.retiring.Add(1)
	go func() {
		defer m.retiring.Done()
		t0 := m.now()
		m.retire(ctx, old)
		m.logger().Info("retired old containers", "app", app, "containers", len(old), "took", m.now().Sub(t0).Round(time.Millisecond))
	}()
}

// Settle waits until background retirements of old containers finish, or
// ctx ends (dkd calls it on shutdown).
func (m *Manager) Settle(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.retiring.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retire drains old (already out of the route table), stops and removes it.
func (m *Manager) retire(ctx context.Context, old []dk.Container) {
	defer m.undrain(old)
	var addrs []string
	for _, c := range old {
		if c.Addr != "" {
			addrs = append(addrs, c.Addr)
		}
	}
	if m.Router != nil && len(addrs) > 0 {
		dctx, cancel := context.WithTimeout(ctx, m.drainTimeout())
		if err := m.Router.Drain(dctx, addrs); err != nil {
			m.logger().Warn("drain timed out; stopping anyway", "containers", len(addrs), "timeout", m.drainTimeout())
		}
		cancel()
	}
	m.stopAll(old, m.stopGrace())
}

// check is the health check in force for rel's web process: the release's
// (from app.json) under the app's checks:set, with defaults.
func (m *Manager) check(app *dk.App, rel *dk.Release) dk.HealthCheck {
	return rel.Checks.Overlay(app.Checks).WithDefaults(m.bootTimeout())
}

func (m *Manager) spec(rel *dk.Release, proc string, index int) dk.ContainerSpec {
	port := 0
	if proc == "web" {
		port = rel.Port()
	}
	return dk.ContainerSpec{App: rel.App, Release: rel.Version, Process: proc, Index: index, Image: rel.Image,
		Command: rel.Processes[proc], Env: rel.Env(proc, index), Port: port}
}

// releasePhase runs the release command once in a one-off container and
// streams its output to the pusher.
func (m *Manager) releasePhase(ctx context.Context, rel *dk.Release, cmd string, out *progress) error {
	out.Step("Running release phase: %s", cmd)
	spec := m.spec(rel, dk.ReleasePhase, 1)
	spec.OneOff = true
	c, err := m.Runtime.Start(ctx, spec)
	if err != nil {
		return dk.Errorf(dk.EFAILED, "release phase: %s", dk.ErrorMessage(err))
	}
	defer m.stopAll([]dk.Container{c}, time.Second)
	code, err := m.Runtime.Wait(ctx, c.ID)
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	_ = m.Runtime.Logs(lctx, c.ID, -1, false, func(_ time.Time, line string) { out.Printf("       %s", line) })
	cancel()
	if err != nil {
		return dk.Errorf(dk.EFAILED, "release phase: %v", err)
	}
	if code != 0 {
		return dk.Errorf(dk.EFAILED, "release phase failed: %q exited with code %d", cmd, code)
	}
	return nil
}

// waitReady waits until c passes check, failing early when it exits.
func (m *Manager) waitReady(ctx context.Context, c dk.Container, check dk.HealthCheck, port int) error {
	addr := c.Addr
	probe := func(ctx context.Context) error { return probeOnce(ctx, addr, check.Path) }
	exited := func(ctx context.Context) error {
		cur, err := m.Runtime.Inspect(ctx, c.ID)
		if err != nil {
			return nil
		}
		if cur.Addr != "" {
			addr = cur.Addr
		}
		// Docker restarts a crashing process at once: a restart means it exited.
		if cur.Restarts > 0 || cur.State != "running" && cur.State != "created" {
			return dk.Errorf(dk.EFAILED, "%s.%d exited before it was healthy (%s); see its output above",
				c.Process, c.Index, exitDetail(cur))
		}
		return nil
	}
	err := waitHealthy(ctx, check, probe, exited)
	if err != nil && dk.ErrorCode(err) == dk.EINTERNAL {
		if ctx.Err() != nil {
			return dk.Errorf(dk.EFAILED, "deploy cancelled: %v", context.Cause(ctx))
		}
		what := fmt.Sprintf("listen on port %d", port)
		if check.Path != "" {
			what = fmt.Sprintf("answer GET %s with 2xx/3xx on port %d (last: %v)", check.Path, port, err)
		}
		limit := fmt.Sprintf("within %s", check.Timeout)
		if errorsIsAttempts(err) {
			limit = fmt.Sprintf("in %d attempts", check.Attempts)
		}
		hint := ": the app must listen on $PORT"
		if check.Path != "" {
			hint = "; see checks:report"
		}
		return dk.Errorf(dk.EFAILED, "%s.%d did not %s %s%s", c.Process, c.Index, what, limit, hint)
	}
	return err
}

// exitDetail describes how a container exited. Once Docker has restarted
// it, its exit code reads 0 again: then only the restarts are known.
func exitDetail(c dk.Container) string {
	if c.ExitCode != 0 || c.Restarts == 0 {
		return fmt.Sprintf("exit code %d", c.ExitCode)
	}
	if c.Restarts == 1 {
		return "restarted once"
	}
	return fmt.Sprintf("restarted %d times", c.Restarts)
}

type attemptsError struct{ last error }

func (e attemptsError) Error() string { return e.last.Error() }

func errorsIsAttempts(err error) bool { _, ok := err.(attemptsError); return ok }

// waitHealthy polls probe every check.Interval until it succeeds, exited
// reports an exit, check.Attempts failures pile up, or check.Timeout passes.
// The last probe error comes back as a plain (internal) error on timeout.
func waitHealthy(ctx context.Context, check dk.HealthCheck, probe, exited func(context.Context) error) error {
	deadline := time.Now().Add(check.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tick := time.NewTicker(check.Interval)
	defer tick.Stop()
	var last error
	lastExitCheck := time.Time{}
	for attempt := 1; ; attempt++ {
		err := probe(ctx)
		if err == nil {
			return nil
		}
		// A probe cut off by the deadline says less than the one before it.
		if ctx.Err() == nil || last == nil {
			last = err
		}
		if time.Since(lastExitCheck) >= 200*time.Millisecond {
			lastExitCheck = time.Now()
			if err := exited(ctx); err != nil {
				return err
			}
		}
		if check.Attempts > 0 && attempt >= check.Attempts {
			return attemptsError{last}
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil || !time.Now().Before(deadline) {
			if last == nil {
				last = ctx.Err()
			}
			return fmt.Errorf("%w", last)
		}
	}
}

// probeOnce checks a running container once: TCP, or HTTP when path is set.
func probeOnce(ctx context.Context, addr, path string) error {
	if addr == "" {
		return fmt.Errorf("no address")
	}
	if path != "" {
		return httpCheck(ctx, addr, path)
	}
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func httpCheck(ctx context.Context, addr, path string) error {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, "GET", "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "dk-healthcheck")
	resp, err := healthClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

var healthClient = &http.Client{
	Transport:     &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// waitStayUp waits until a non-web process has stayed up for a moment.
func (m *Manager) waitStayUp(ctx context.Context, c dk.Container) error {
	select {
	case <-ctx.Done():
		return dk.Errorf(dk.EFAILED, "deploy cancelled: %v", context.Cause(ctx))
	case <-time.After(stayUp):
	}
	cur, err := m.Runtime.Inspect(ctx, c.ID)
	if err != nil {
		return dk.Errorf(dk.EFAILED, "%s.%d: %s", c.Process, c.Index, dk.ErrorMessage(err))
	}
	if cur.Restarts > 0 || cur.State != "running" {
		return dk.Errorf(dk.EFAILED, "%s.%d exited at start (%s); see its output above", c.Process, c.Index, exitDetail(cur))
	}
	return nil
}

func (m *Manager) showLogs(c dk.Container, out *progress) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var lines []string
	_ = m.Runtime.Logs(ctx, c.ID, 20, false, func(ts time.Time, line string) { lines = append(lines, line) })
	if len(lines) == 0 {
		out.Warn("%s.%d printed nothing", c.Process, c.Index)
		return
	}
	out.Warn("last output of %s.%d:", c.Process, c.Index)
	for _, l := range lines {
		out.Printf("       %s", strings.TrimRight(l, "\r"))
	}
}

func (m *Manager) stopAll(cs []dk.Container, grace time.Duration) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Runtime.Stop(context.Background(), c.ID, grace); err != nil {
				m.logger().Warn("stop container", "container", c.ID, "err", err)
			}
			m.unready([]dk.Container{c})
			m.crashMu.Lock()
			delete(m.restarts, c.ID)
			delete(m.lastExit, c.ID)
			m.crashMu.Unlock()
		}()
	}
	wg.Wait()
}

// Restart rolls the app's current release over to fresh containers, with
// the same sequence as a deploy (no new release, no release phase).
func (m *Manager) Restart(ctx context.Context, appName, author string, w io.Writer) error {
	app, err := m.Store.App(ctx, appName)
	if err != nil {
		return err
	}
	lock, err := m.TryLock(appName, "restart by "+author)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	cur, err := m.Current(ctx, appName)
	if err != nil {
		return err
	}
	if cur == nil {
		return dk.Errorf(dk.EINVALID, "%s has no release to restart: deploy it first with git push", appName)
	}
	old, err := m.Runtime.Containers(ctx, appName)
	if err != nil {
		return err
	}
	out := newProgress(w)
	out.Step("Restarting %s %s", appName, cur.Name())
	start := m.now()
	timings, err := m.rollout(ctx, app, cur, old, out, false)
	if err != nil {
		return dk.Errorf(dk.ErrorCode(err), "restart failed: %s", dk.ErrorMessage(err))
	}
	out.Timings(timings)
	out.Step("Restarted %s in %s", appName, m.now().Sub(start).Round(100*time.Millisecond))
	return nil
}
