// Package releases is dk's release manager and reconciler. It turns every
// deploy, config change and rollback into a numbered release (an image plus a
// config snapshot), rolls the app's containers over to it (start, wait until
// ready, switch the router, stop the old), and keeps the containers matching
// each app's latest successful release through crashes and restarts.
//
// It talks to the world only through the domain's interfaces (dk.Store,
// dk.Builder, dk.Runtime, dk.Router, dk.Detector).
package releases

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dkhq/dk"
)

// Manager owns releases and their rollout.
type Manager struct {
	Store    dk.Store
	Builder  dk.Builder
	Runtime  dk.Runtime
	Router   dk.Router
	Detector dk.Detector
	Logger   *slog.Logger

	// Instance prefixes image names: <Instance>/<app>:<tag>.
	Instance string
	// URL returns the public URL of an app, for humans.
	URL func(app string) string
	// BootTimeout bounds how long a new web process may take to listen on PORT.
	BootTimeout time.Duration
	// StopGrace is the time between SIGTERM and SIGKILL for old containers.
	StopGrace time.Duration
	// DrainTimeout bounds how long old containers get to finish in-flight
	// requests after the switch.
	DrainTimeout time.Duration
	// KeepReleases is how many successful releases keep their images
	// (default 5); older images are pruned.
	KeepReleases int
	// PruneCache, when set, trims the build cache after deploys.
	PruneCache func(ctx context.Context) error
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// Observer, when set, is told how deploys, builds and reconciler
	// passes end (metrics; see observer.go).
	Observer Observer

	mu    sync.Mutex
	locks map[string]*Lock

	reconcileMu sync.Mutex
	pending     map[string]bool
	kick        chan struct{}

	// passes serialises reconciler passes per app; a deploy lock waits for
	// an in-flight pass, and passes skip apps whose deploy lock is held.
	passesMu sync.Mutex
	passes   map[string]*sync.Mutex

	// routesMu serialises route table rebuilds; draining holds containers
	// being stopped, which no table may route to.
	routesMu sync.Mutex
	draining map[string]bool
	ready    map[string]bool // containers seen healthy: only these get traffic

	events       events
	crashMu      sync.Mutex
	restarts     map[string]int     // container → restart count last seen
	lastExit     map[string]int     // container → exit code of its last crash
	startBackoff map[string]backoff // app → when the reconciler may start again
	gcMu         sync.Mutex
	retiring     sync.WaitGroup
	pruning      atomic.Bool
}

// Lock is an app's deploy lock: one deploy, config change, rollback or
// restart at a time per app. It lives in memory only, so it can never outlive
// the process that holds it.
type Lock struct {
	App    string
	Holder string
	Since  time.Time
	m      *Manager
	once   sync.Once
}

// Unlock releases the lock (idempotent).
func (l *Lock) Unlock() {
	l.once.Do(func() {
		l.m.mu.Lock()
		if l.m.locks[l.App] == l {
			delete(l.m.locks, l.App)
		}
		l.m.mu.Unlock()
		l.m.Trigger(l.App)
	})
}

func (m *Manager) logger() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

func (m *Manager) bootTimeout() time.Duration {
	if m.BootTimeout > 0 {
		return m.BootTimeout
	}
	return 60 * time.Second
}

func (m *Manager) stopGrace() time.Duration {
	if m.StopGrace > 0 {
		return m.StopGrace
	}
	return 10 * time.Second
}

func (m *Manager) url(app string) string {
	if m.URL != nil {
		return m.URL(app)
	}
	return app
}

// TryLock takes app's deploy lock for holder, or fails at once with
// ECONFLICT naming who holds it and since when.
func (m *Manager) TryLock(app, holder string) (*Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = map[string]*Lock{}
	}
	if l, ok := m.locks[app]; ok {
		return nil, dk.Errorf(dk.ECONFLICT, "%s is busy: %s since %s (%s ago); try again when it finishes",
			app, l.Holder, l.Since.UTC().Format(time.RFC3339), m.now().Sub(l.Since).Round(time.Second))
	}
	l := &Lock{App: app, Holder: holder, Since: m.now(), m: m}
	m.locks[app] = l
	// Wait out a reconciler pass that started before the lock was taken;
	// later passes see the lock and skip the app.
	pass := m.pass(app)
	m.mu.Unlock()
	pass.Lock()
	pass.Unlock()
	m.mu.Lock()
	return l, nil
}

// pass returns app's reconciler mutex.
func (m *Manager) pass(app string) *sync.Mutex {
	m.passesMu.Lock()
	defer m.passesMu.Unlock()
	if m.passes == nil {
		m.passes = map[string]*sync.Mutex{}
	}
	p, ok := m.passes[app]
	if !ok {
		p = &sync.Mutex{}
		m.passes[app] = p
	}
	return p
}

func (m *Manager) locked(app string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.locks[app]
	return ok
}

// Locks returns the deploy locks held now.
func (m *Manager) Locks() []Lock {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Lock
	for _, l := range m.locks {
		out = append(out, Lock{App: l.App, Holder: l.Holder, Since: l.Since})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

// CreateApp creates an app.
func (m *Manager) CreateApp(ctx context.Context, name string) (*dk.App, error) {
	if err := dk.ValidateAppName(name); err != nil {
		return nil, err
	}
	app := &dk.App{Name: name, CreatedAt: m.now().UTC(), Config: dk.Config{}, Formation: dk.Formation{}}
	if err := m.Store.CreateApp(ctx, app); err != nil {
		return nil, err
	}
	m.logger().Info("app created", "app", name)
	m.syncRoutes(ctx)
	return app, nil
}

// DestroyApp stops an app's containers, removes its images and forgets it.
func (m *Manager) DestroyApp(ctx context.Context, name, holder string) error {
	if _, err := m.Store.App(ctx, name); err != nil {
		return err
	}
	lock, err := m.TryLock(name, holder)
	if err != nil {
		return err
	}
	defer lock.Unlock()
	return m.DestroyLocked(ctx, name)
}

// DestroyLocked is DestroyApp for a caller that holds the app's lock.
func (m *Manager) DestroyLocked(ctx context.Context, name string) error {
	rels, err := m.Store.Releases(ctx, name)
	if err != nil {
		return err
	}
	if err := m.Store.DeleteApp(ctx, name); err != nil {
		return err
	}
	m.syncRoutes(ctx)
	cs, err := m.Runtime.Containers(ctx, name)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := m.Runtime.Stop(ctx, c.ID, m.stopGrace()); err != nil {
			m.logger().Warn("stop container", "app", name, "container", c.ID, "err", err)
		}
	}
	seen := map[string]bool{}
	for _, r := range rels {
		for _, ref := range []string{r.Image, fmt.Sprintf("%s/%s:%s", m.Instance, name, shortSHA(r.Commit))} {
			if r.Image == "" || seen[ref] {
				continue
			}
			seen[ref] = true
			if err := m.Runtime.RemoveImage(ctx, ref); err != nil {
				m.logger().Warn("remove image", "app", name, "image", ref, "err", err)
			}
		}
	}
	m.logger().Info("app destroyed", "app", name)
	return nil
}

// Current returns the app's latest successful release, or nil when it has none.
func (m *Manager) Current(ctx context.Context, app string) (*dk.Release, error) {
	rels, err := m.Store.Releases(ctx, app)
	if err != nil {
		return nil, err
	}
	return current(rels), nil
}

func current(rels []*dk.Release) *dk.Release {
	for _, r := range rels { // newest first
		if r.Status == dk.ReleaseSucceeded {
			return r
		}
	}
	return nil
}

// DeployRequest is a push to deploy.
type DeployRequest struct {
	App    string
	Commit string // full hex commit id
	Dir    string // the commit's tree, checked out
	Author string // key name
	Output io.Writer
	// Timings already spent before the deploy (e.g. receiving the push).
	Timings []dk.Timing
	// Build is the push's build number (its log is kept); the release records it.
	Build int
}

// Deploy builds req's source and releases it. The caller holds app's lock.
func (m *Manager) Deploy(ctx context.Context, req DeployRequest) (*dk.Release, error) {
	out := newProgress(req.Output)
	start := m.now()
	timings := append([]dk.Timing(nil), req.Timings...)
	app, err := m.Store.App(ctx, req.App)
	if err != nil {
		return nil, err
	}
	plan, err := m.Detector.Detect(req.Dir, app.Config)
	if err != nil {
		return nil, err
	}
	procs := dk.Processes{}
	if data, err := os.ReadFile(filepath.Join(req.Dir, "Procfile")); err == nil {
		if procs, err = dk.ParseProcfile(data); err != nil {
			return nil, err
		}
	}
	if _, ok := procs["web"]; !ok {
		procs["web"] = "" // the image's CMD
	}
	checks, err := readAppJSON(req.Dir)
	if err != nil {
		return nil, err
	}
	short := shortSHA(req.Commit)
	out.Step("Building %s from %s (%s)", req.App, plan.Buildpack, plan.Reason)
	t0 := m.now()
	image := fmt.Sprintf("%s/%s:%s", m.Instance, req.App, short)
	if _, err := m.Builder.Build(ctx, dk.BuildRequest{
		App: req.App, Dir: req.Dir, Dockerfile: plan.Dockerfile, DockerfileContent: plan.DockerfileContent,
		Tags: []string{image}, Output: out.Detail(),
	}); err != nil {
		m.observeBuild(req.App, m.now().Sub(t0), err)
		m.observeDeploy(req.App, "deploy", m.now().Sub(start), err)
		if ctx.Err() != nil {
			return nil, dk.Errorf(dk.EFAILED, "build cancelled: %v", context.Cause(ctx))
		}
		if dk.ErrorCode(err) == dk.EINTERNAL {
			m.logger().Error("build", "app", req.App, "err", err)
		}
		msg := dk.ErrorMessage(err)
		if !strings.HasPrefix(msg, "build failed") {
			msg = "build failed: " + msg
		}
		return nil, dk.Errorf(dk.EFAILED, "%s", msg)
	}
	timings = append(timings, dk.Timing{Stage: "build", Duration: m.now().Sub(t0)})
	m.observeBuild(req.App, m.now().Sub(t0), nil)
	global, err := m.Store.GlobalConfig(ctx)
	if err != nil {
		return nil, err
	}
	rel := &dk.Release{
		App: req.App, Image: image, Commit: req.Commit, Config: app.Config.Clone(), Global: global,
		ProcessConfig: cloneProcessConfig(app.ProcessConfig), Processes: procs, Checks: checks,
		Description: "Deploy " + short, Author: req.Author, Build: req.Build,
	}
	return m.release(ctx, app, rel, out, start, timings)
}

// release stores rel as pending, rolls it out, and marks it succeeded or failed.
func (m *Manager) release(ctx context.Context, app *dk.App, rel *dk.Release, out *progress, start time.Time, timings []dk.Timing) (_ *dk.Release, err error) {
	defer func() { m.observeDeploy(rel.App, releaseKind(rel), m.now().Sub(start), err) }()
	t0 := m.now()
	rel.Status = dk.ReleasePending
	rel.CreatedAt = m.now().UTC()
	if err := m.Store.CreateRelease(ctx, rel); err != nil {
		return nil, err
	}
	out.Step("Releasing %s (%s)", rel.Name(), rel.Description)
	// Every release has its own tag, INSTANCE/APP:vN, so a rollback finds
	// exactly the image that release ran.
	tag := fmt.Sprintf("%s/%s:%s", m.Instance, rel.App, rel.Name())
	if err := m.Runtime.TagImage(ctx, rel.Image, tag); err != nil {
		rel.Status, rel.Error = dk.ReleaseFailed, dk.ErrorMessage(err)
		_ = m.Store.UpdateRelease(context.WithoutCancel(ctx), rel)
		return rel, dk.Errorf(dk.EFAILED, "deploy failed: %s", dk.ErrorMessage(err))
	}
	rel.Image = tag
	if err := m.Store.UpdateRelease(context.WithoutCancel(ctx), rel); err != nil {
		return nil, err
	}
	timings = append(timings, dk.Timing{Stage: "release", Duration: m.now().Sub(t0)})
	log := m.logger().With("app", rel.App, "release", rel.Version)

	old, err := m.Runtime.Containers(ctx, rel.App)
	if err != nil {
		return nil, err
	}
	stages, err := m.rollout(ctx, app, rel, old, out, true)
	timings = append(timings, stages...)
	rel.Timings = timings
	if err != nil {
		log.Warn("release failed", "err", err)
		err = dk.Errorf(dk.ErrorCode(err), "deploy failed: %s", dk.ErrorMessage(err))
		m.event(rel.App, "%s (%s) failed: %s", rel.Name(), rel.Description, dk.ErrorMessage(err))
		rel.Status = dk.ReleaseFailed
		rel.Error = dk.ErrorMessage(err)
		// A cancelled push still records the outcome.
		if uerr := m.Store.UpdateRelease(context.WithoutCancel(ctx), rel); uerr != nil {
			log.Error("mark release failed", "err", uerr)
		}
		// The failed release's own tag goes; its source image stays for the others.
		if rerr := m.Runtime.RemoveImage(context.WithoutCancel(ctx), rel.Image); rerr != nil {
			log.Warn("remove failed release's tag", "image", rel.Image, "err", rerr)
		}
		return rel, err
	}
	rel.Status = dk.ReleaseSucceeded
	if err := m.Store.UpdateRelease(context.WithoutCancel(ctx), rel); err != nil {
		return rel, err
	}
	log.Info("released", "description", rel.Description)
	m.event(rel.App, "Released %s (%s) by %s", rel.Name(), rel.Description, rel.Author)
	m.gc(context.WithoutCancel(ctx), rel.App)
	m.pruneCache(ctx)
	out.Timings(timings)
	out.Step("Done in %s: %s", m.now().Sub(start).Round(100*time.Millisecond), rel.Name())
	out.Printf("       %s", m.url(rel.App))
	return rel, nil
}

// SetConfig changes an app's config and, with Restart, releases it.
// With no release yet (or Restart false) it only stores the config, which
// the next release picks up.
func (m *Manager) SetConfig(ctx context.Context, ch dk.ConfigChange) (*dk.Release, error) {
	if err := validateChange(ch.Set, ch.Unset); err != nil {
		return nil, err
	}
	if _, err := m.Store.App(ctx, ch.App); err != nil {
		return nil, err
	}
	lock, err := m.TryLock(ch.App, "config change by "+ch.Author)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	app, err := m.Store.App(ctx, ch.App)
	if err != nil {
		return nil, err
	}
	if ch.Process != "" {
		if err := dk.ValidateProcessType(ch.Process); err != nil {
			return nil, err
		}
	}
	// Work on copies: the change is stored only once a release with it
	// serves, so a failed restart changes nothing.
	next := *app
	next.Config = app.Config.Clone()
	next.ProcessConfig = cloneProcessConfig(app.ProcessConfig)
	layer := next.Config
	if ch.Process != "" {
		if next.ProcessConfig == nil {
			next.ProcessConfig = map[string]dk.Config{}
		}
		if next.ProcessConfig[ch.Process] == nil {
			next.ProcessConfig[ch.Process] = dk.Config{}
		}
		layer = next.ProcessConfig[ch.Process]
	}
	for k, v := range ch.Set {
		layer[k] = v
	}
	for _, k := range ch.Unset {
		delete(layer, k)
	}
	if ch.Process != "" && len(layer) == 0 {
		delete(next.ProcessConfig, ch.Process)
	}
	desc := describeChange(ch.Set, ch.Unset)
	if ch.Process != "" {
		desc += " (" + ch.Process + ")"
	}
	var rel *dk.Release
	if ch.Restart {
		if rel, err = m.rerelease(ctx, &next, next.Config, desc, ch.Author, ch.Output); err != nil {
			return rel, err
		}
	}
	if err := m.saveConfig(ctx, ch.App, next.Config, next.ProcessConfig); err != nil {
		return nil, err
	}
	return rel, nil
}

// saveConfig stores an app's config layers (processConfig nil: unchanged).
func (m *Manager) saveConfig(ctx context.Context, app string, cfg dk.Config, processConfig map[string]dk.Config) error {
	_, err := m.Store.UpdateApp(context.WithoutCancel(ctx), app, func(a *dk.App) error {
		a.Config = cfg.Clone()
		if processConfig != nil {
			a.ProcessConfig = cloneProcessConfig(processConfig)
			if a.ProcessConfig == nil {
				a.ProcessConfig = map[string]dk.Config{}
			}
		}
		return nil
	})
	return err
}

func validateChange(set dk.Config, unset []string) error {
	if len(set) == 0 && len(unset) == 0 {
		return dk.Errorf(dk.EINVALID, "nothing to change: give KEY=VALUE pairs (or KEY names to unset)")
	}
	for k, v := range set {
		if err := dk.ValidateConfigKey(k); err != nil {
			return err
		}
		if strings.ContainsRune(v, 0) {
			return dk.Errorf(dk.EINVALID, "the value of %s contains a NUL byte, which no environment variable can hold", k)
		}
	}
	for _, k := range unset {
		if err := dk.ValidateConfigKey(k); err != nil {
			return err
		}
	}
	return nil
}

func describeChange(set dk.Config, unset []string) string {
	var parts []string
	if len(set) > 0 {
		parts = append(parts, "Set "+strings.Join(set.Keys(), ", "))
	}
	if len(unset) > 0 {
		u := append([]string(nil), unset...)
		sort.Strings(u)
		parts = append(parts, "Unset "+strings.Join(u, ", "))
	}
	return strings.Join(parts, "; ")
}

// rerelease makes a new release of the current image with the app's current
// config. Without a current release there is nothing to run: it returns nil.
func (m *Manager) rerelease(ctx context.Context, app *dk.App, cfg dk.Config, desc, author string, w io.Writer) (*dk.Release, error) {
	cur, err := m.Current(ctx, app.Name)
	if err != nil || cur == nil {
		return nil, err
	}
	global, err := m.Store.GlobalConfig(ctx)
	if err != nil {
		return nil, err
	}
	rel := &dk.Release{
		App: app.Name, Image: cur.Image, Commit: cur.Commit, Config: cfg.Clone(), Global: global,
		ProcessConfig: cloneProcessConfig(app.ProcessConfig), Processes: cur.Processes, Checks: cur.Checks,
		Description: desc, Author: author,
	}
	return m.release(ctx, app, rel, newProgress(w), m.now(), nil)
}

// SetGlobalConfig changes the global config layer and, with Restart,
// re-releases every app that has a running release.
func (m *Manager) SetGlobalConfig(ctx context.Context, ch dk.ConfigChange) ([]*dk.Release, error) {
	if err := validateChange(ch.Set, ch.Unset); err != nil {
		return nil, err
	}
	if _, err := m.Store.UpdateGlobalConfig(ctx, func(c dk.Config) error {
		for k, v := range ch.Set {
			c[k] = v
		}
		for _, k := range ch.Unset {
			delete(c, k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !ch.Restart {
		return nil, nil
	}
	apps, err := m.Store.Apps(ctx)
	if err != nil {
		return nil, err
	}
	var out []*dk.Release
	var errs []string
	for _, a := range apps {
		lock, err := m.TryLock(a.Name, "global config change by "+ch.Author)
		if err != nil {
			errs = append(errs, dk.ErrorMessage(err))
			continue
		}
		rel, err := m.rerelease(ctx, a, a.Config, describeChange(ch.Set, ch.Unset)+" (global)", ch.Author, ch.Output)
		lock.Unlock()
		if err != nil {
			errs = append(errs, a.Name+": "+dk.ErrorMessage(err))
			continue
		}
		if rel != nil {
			out = append(out, rel)
		}
	}
	if len(errs) > 0 {
		return out, dk.Errorf(dk.EFAILED, "global config saved, but some apps were not restarted: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// Rollback makes a new release from version's image and config. version 0
// means the successful release before the current one.
func (m *Manager) Rollback(ctx context.Context, appName string, version int, author string, w io.Writer) (*dk.Release, error) {
	app, err := m.Store.App(ctx, appName)
	if err != nil {
		return nil, err
	}
	lock, err := m.TryLock(appName, "rollback by "+author)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	rels, err := m.Store.Releases(ctx, appName)
	if err != nil {
		return nil, err
	}
	cur := current(rels)
	if cur == nil {
		return nil, dk.Errorf(dk.EINVALID, "%s has no release to roll back from: deploy it first with git push", appName)
	}
	var target *dk.Release
	if version == 0 {
		for _, r := range rels {
			if r.Version < cur.Version && r.Status == dk.ReleaseSucceeded && !r.ImagePruned {
				target = r
				break
			}
		}
		if target == nil {
			return nil, dk.Errorf(dk.EINVALID, "%s has no earlier release to roll back to", appName)
		}
	} else {
		if target, err = m.Store.Release(ctx, appName, version); err != nil {
			return nil, err
		}
		if target.Status == dk.ReleaseFailed {
			return nil, dk.Errorf(dk.EINVALID, "v%d failed (%s) and cannot be rolled back to; see: releases %s", version, target.Error, appName)
		}
		if target.Image == "" {
			return nil, dk.Errorf(dk.EINVALID, "v%d has no image to roll back to", version)
		}
		if target.ImagePruned {
			return nil, dk.Errorf(dk.EINVALID, "v%d's image was pruned (only the newest %d releases keep theirs); redeploy its commit instead: git push -f dk %s:main",
				version, m.keepReleases(), shortSHA(target.Commit))
		}
	}
	rel := &dk.Release{
		App: appName, Image: target.Image, Commit: target.Commit, Config: target.Config.Clone(), Global: target.Global.Clone(),
		ProcessConfig: cloneProcessConfig(target.ProcessConfig), Processes: target.Processes, Checks: target.Checks,
		Description: "Rollback to " + target.Name(), Author: author,
	}
	if rel, err = m.release(ctx, app, rel, newProgress(w), m.now(), nil); err != nil {
		return rel, err
	}
	// The rollback restores that release's config too, once it serves.
	pc := cloneProcessConfig(target.ProcessConfig)
	if pc == nil {
		pc = map[string]dk.Config{}
	}
	return rel, m.saveConfig(ctx, appName, target.Config, pc)
}

func cloneProcessConfig(pc map[string]dk.Config) map[string]dk.Config {
	if len(pc) == 0 {
		return nil
	}
	out := make(map[string]dk.Config, len(pc))
	for k, v := range pc {
		out[k] = v.Clone()
	}
	return out
}

func shortSHA(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	if commit == "" {
		return "unknown"
	}
	return commit
}

// LockHolder tells who holds app's deploy lock and since when.
func (m *Manager) LockHolder(app string) (string, time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.locks[app]; ok {
		return l.Holder, l.Since, true
	}
	return "", time.Time{}, false
}
