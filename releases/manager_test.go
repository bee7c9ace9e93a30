package releases_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/buildpacks"
	"github.com/dkhq/dk/internal/fake"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/router"
	"github.com/dkhq/dk/store"
	"github.com/google/go-cmp/cmp"
)

type env struct {
	mgr     *releases.Manager
	rt      *fake.Runtime
	builder *fake.Builder
	proxy   *router.Proxy
	db      *store.DB
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rt := &fake.Runtime{Crash: map[string]bool{}, Deaf: map[string]bool{}}
	t.Cleanup(rt.Close)
	e := &env{rt: rt, builder: &fake.Builder{}, proxy: router.New("localhost", nil), db: db}
	e.mgr = &releases.Manager{Store: db, Builder: e.builder, Runtime: rt, Router: e.proxy,
		Detector: buildpacks.Detector{}, Instance: "dk", BootTimeout: 2 * time.Second, StopGrace: time.Millisecond}
	return e
}

// source writes a source tree with a Dockerfile and the given extra files.
func source(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["Dockerfile"] = "FROM x\n"
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (e *env) deploy(t *testing.T, app, commit string, files map[string]string) (*dk.Release, string, error) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.db.App(ctx, app); err != nil {
		if _, err := e.mgr.CreateApp(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := e.mgr.TryLock(app, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Unlock()
	var out bytes.Buffer
	rel, err := e.mgr.Deploy(ctx, releases.DeployRequest{App: app, Commit: commit, Dir: source(t, files), Author: "tester", Output: &out})
	e.mgr.Settle(ctx)
	return rel, out.String(), err
}

// serve fetches the app through the router.
func (e *env) serve(t *testing.T, app string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+app+".localhost/", nil)
	rec := &recorder{header: http.Header{}}
	e.proxy.ServeHTTP(rec, req)
	return rec.code, rec.body.String()
}

type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(code int) { r.code = code }

func TestDeploy(t *testing.T) {
	e := newEnv(t)
	rel, out, err := e.deploy(t, "hello", "1a2b3c4d5e6f", map[string]string{})
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	if rel.Version != 1 || rel.Status != dk.ReleaseSucceeded || rel.Description != "Deploy 1a2b3c4" || rel.Image != "dk/hello:v1" {
		t.Errorf("release = %+v", rel)
	}
	for _, want := range []string{"-----> Building hello from dockerfile", "-----> Releasing v1 (Deploy 1a2b3c4)", "-----> Done in", "timings: build"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var stages []string
	for _, tm := range rel.Timings {
		stages = append(stages, tm.Stage)
	}
	if diff := cmp.Diff([]string{"build", "release", "start", "switch"}, stages); diff != "" {
		t.Errorf("timing stages (-want +got):\n%s", diff)
	}
	if code, body := e.serve(t, "hello"); code != 200 || body != "dk/hello:1a2b3c4 " {
		t.Errorf("serve = %d %q", code, body)
	}
	cs, _ := e.rt.Containers(context.Background(), "hello")
	if len(cs) != 1 {
		t.Fatalf("containers = %+v", cs)
	}
	want := dk.Config{"PORT": "5000", "DK_APP": "hello", "DK_RELEASE": "v1", "DK_PROCESS_TYPE": "web", "DK_PROCESS_INDEX": "1"}
	if diff := cmp.Diff(want, e.rt.Env(cs[0].ID)); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

func TestDeployProcfile(t *testing.T) {
	e := newEnv(t)
	rel, _, err := e.deploy(t, "hello", "abcdef012345", map[string]string{"Procfile": "web: ./server\nworker: ./jobs\n"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dk.Processes{"web": "./server", "worker": "./jobs"}, rel.Processes); diff != "" {
		t.Error(diff)
	}
	_, _, err = e.deploy(t, "hello", "bbbbbbb12345", map[string]string{"Procfile": "web: a\nweb: b\n"})
	if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "Procfile line 2") {
		t.Errorf("bad Procfile: err = %v", err)
	}
}

func TestDeployFailures(t *testing.T) {
	t.Run("ErrBuild", func(t *testing.T) {
		e := newEnv(t)
		e.deploy(t, "hello", "1111111aaaa", map[string]string{})
		_, _, err := e.deploy(t, "hello", "2222222bbbb", map[string]string{"FAIL": "RUN exited 3"})
		if dk.ErrorCode(err) != dk.EFAILED || dk.ErrorMessage(err) != "build failed: RUN exited 3" {
			t.Errorf("err = %v", err)
		}
		rels, _ := e.db.Releases(context.Background(), "hello")
		if len(rels) != 1 {
			t.Errorf("a failed build made a release: %d releases", len(rels))
		}
		if _, body := e.serve(t, "hello"); body != "dk/hello:1111111 " {
			t.Errorf("old release not serving: %q", body)
		}
	})
	for name, mark := range map[string]func(*fake.Runtime, string){
		"ErrCrash": func(r *fake.Runtime, img string) { r.Crash[img] = true },
		"ErrDeaf":  func(r *fake.Runtime, img string) { r.Deaf[img] = true },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.deploy(t, "hello", "1111111aaaa", map[string]string{})
			mark(e.rt, "dk/hello:2222222")
			rel, out, err := e.deploy(t, "hello", "2222222bbbb", map[string]string{})
			if dk.ErrorCode(err) != dk.EFAILED || !strings.HasPrefix(dk.ErrorMessage(err), "deploy failed: web.1 ") {
				t.Fatalf("err = %v", err)
			}
			if rel.Status != dk.ReleaseFailed || rel.Version != 2 {
				t.Errorf("release = %+v", rel)
			}
			if !strings.Contains(out, "last output of web.1") {
				t.Errorf("no last output shown:\n%s", out)
			}
			if _, body := e.serve(t, "hello"); body != "dk/hello:1111111 " {
				t.Errorf("old release not serving: %q", body)
			}
			cs, _ := e.rt.Containers(context.Background(), "hello")
			if len(cs) != 1 || cs[0].Release != 1 {
				t.Errorf("containers after failed deploy = %+v", cs)
			}
			cur, _ := e.mgr.Current(context.Background(), "hello")
			if cur.Version != 1 {
				t.Errorf("current = v%d", cur.Version)
			}
		})
	}
}

func TestConfigAndRollback(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	rel, err := e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Set: dk.Config{"GREETING": "hi"}, Restart: true, Author: "a"})
	if err != nil || rel.Version != 2 || rel.Description != "Set GREETING" {
		t.Fatalf("set: %+v %v", rel, err)
	}
	if _, body := e.serve(t, "hello"); body != "dk/hello:1111111 hi" {
		t.Errorf("after set: %q", body)
	}
	e.mgr.Settle(ctx) // old containers are retired in the background
	cs, _ := e.rt.Containers(ctx, "hello")
	if len(cs) != 1 || cs[0].Release != 2 {
		t.Errorf("old container not stopped: %+v", cs)
	}
	// --no-restart stores without a release.
	rel, err = e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Set: dk.Config{"X": "1"}, Author: "a"})
	if err != nil || rel != nil {
		t.Errorf("no-restart: %+v %v", rel, err)
	}
	rel, err = e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Unset: []string{"X", "GREETING"}, Restart: true})
	if err != nil || rel.Description != "Unset GREETING, X" {
		t.Fatalf("unset: %+v %v", rel, err)
	}
	// Rollback to v2 restores its config.
	rel, err = e.mgr.Rollback(ctx, "hello", 2, "a", io.Discard)
	if err != nil || rel.Version != 4 || rel.Description != "Rollback to v2" {
		t.Fatalf("rollback: %+v %v", rel, err)
	}
	app, _ := e.db.App(ctx, "hello")
	if diff := cmp.Diff(dk.Config{"GREETING": "hi"}, app.Config); diff != "" {
		t.Errorf("app config after rollback (-want +got):\n%s", diff)
	}
	if _, body := e.serve(t, "hello"); body != "dk/hello:1111111 hi" {
		t.Errorf("after rollback: %q", body)
	}
	// Default rollback: the successful release before the current one.
	rel, err = e.mgr.Rollback(ctx, "hello", 0, "a", io.Discard)
	if err != nil || rel.Description != "Rollback to v3" {
		t.Errorf("default rollback: %+v %v", rel, err)
	}
	for name, tc := range map[string]struct {
		app     string
		version int
		code    string
		msg     string
	}{
		"ErrNoApp":     {"nope", 1, dk.ENOTFOUND, `app "nope" not found`},
		"ErrNoRelease": {"hello", 99, dk.ENOTFOUND, `release v99 of "hello" not found`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.mgr.Rollback(ctx, tc.app, tc.version, "a", io.Discard)
			if dk.ErrorCode(err) != tc.code || dk.ErrorMessage(err) != tc.msg {
				t.Errorf("err = %v (%s)", err, dk.ErrorCode(err))
			}
		})
	}
	t.Run("ErrBadKey", func(t *testing.T) {
		_, err := e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Set: dk.Config{"1X": "a"}, Restart: true})
		if dk.ErrorCode(err) != dk.EINVALID {
			t.Errorf("err = %v", err)
		}
	})
}

func TestGlobalConfig(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "a", "1111111aaaa", map[string]string{})
	e.deploy(t, "b", "2222222bbbb", map[string]string{})
	e.mgr.SetConfig(ctx, dk.ConfigChange{App: "b", Set: dk.Config{"GREETING": "app wins"}})
	rels, err := e.mgr.SetGlobalConfig(ctx, dk.ConfigChange{Set: dk.Config{"GREETING": "global"}, Restart: true})
	if err != nil || len(rels) != 2 {
		t.Fatalf("global: %v %v", rels, err)
	}
	if _, body := e.serve(t, "a"); body != "dk/a:1111111 global" {
		t.Errorf("a: %q", body)
	}
	if _, body := e.serve(t, "b"); body != "dk/b:2222222 app wins" {
		t.Errorf("b: %q", body)
	}
}

func TestLock(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	l, err := e.mgr.TryLock("hello", "push by alice")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.mgr.SetConfig(context.Background(), dk.ConfigChange{App: "hello", Set: dk.Config{"A": "1"}, Restart: true})
	if dk.ErrorCode(err) != dk.ECONFLICT || !strings.HasPrefix(dk.ErrorMessage(err), "hello is busy: push by alice since ") {
		t.Errorf("err = %v", err)
	}
	if h, _, ok := e.mgr.LockHolder("hello"); !ok || h != "push by alice" {
		t.Errorf("holder = %q %v", h, ok)
	}
	l.Unlock()
	l.Unlock() // idempotent
	if _, _, ok := e.mgr.LockHolder("hello"); ok {
		t.Error("still locked")
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	cs, _ := e.rt.Containers(ctx, "hello")

	t.Run("ReplacesCrashed", func(t *testing.T) {
		e.rt.Kill(cs[0].ID)
		if err := e.mgr.ReconcileAll(ctx); err != nil {
			t.Fatal(err)
		}
		now, _ := e.rt.Containers(ctx, "hello")
		if len(now) != 1 || now[0].ID == cs[0].ID || now[0].State != "running" {
			t.Errorf("containers = %+v", now)
		}
		// The replacement gets traffic once its health check passes.
		deadline := time.Now().Add(10 * time.Second)
		code := 0
		for code != 200 && time.Now().Before(deadline) {
			code, _ = e.serve(t, "hello")
			time.Sleep(20 * time.Millisecond)
		}
		if code != 200 {
			t.Errorf("not serving after reconcile: %d", code)
		}
	})
	t.Run("RemovesOrphans", func(t *testing.T) {
		e.rt.Start(ctx, dk.ContainerSpec{App: "gone", Release: 1, Process: "web", Index: 1, Image: "x", Port: 5000})
		e.rt.Start(ctx, dk.ContainerSpec{App: "hello", Release: 7, Process: "web", Index: 1, Image: "x", Port: 5000})
		e.mgr.ReconcileAll(ctx)
		all, _ := e.rt.Containers(ctx, "")
		if len(all) != 1 || all[0].App != "hello" || all[0].Release != 1 {
			t.Errorf("containers = %+v", all)
		}
	})
	t.Run("MarksInterruptedFailed", func(t *testing.T) {
		r := &dk.Release{App: "hello", Image: "x", Status: dk.ReleasePending, Processes: dk.Processes{"web": ""}}
		e.db.CreateRelease(ctx, r)
		pending, _ := e.db.PendingReleases(ctx)
		e.mgr.RecoverInterrupted(ctx, pending)
		got, _ := e.db.Release(ctx, "hello", r.Version)
		if got.Status != dk.ReleaseFailed || !strings.Contains(got.Error, "interrupted") {
			t.Errorf("release = %+v", got)
		}
		cur, _ := e.mgr.Current(ctx, "hello")
		if cur.Version != 1 {
			t.Errorf("current = v%d", cur.Version)
		}
	})
}

func TestDestroy(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	if err := e.mgr.DestroyApp(ctx, "hello", "test"); err != nil {
		t.Fatal(err)
	}
	cs, _ := e.rt.Containers(ctx, "hello")
	if len(cs) != 0 {
		t.Errorf("containers left: %+v", cs)
	}
	if diff := cmp.Diff([]string{"dk/hello:v1", "dk/hello:1111111"}, e.rt.RemovedImages); diff != "" {
		t.Error(diff)
	}
	if code, _ := e.serve(t, "hello"); code != 404 {
		t.Errorf("code = %d", code)
	}
}

func TestRestart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	before, _ := e.rt.Containers(ctx, "hello")
	if err := e.mgr.Restart(ctx, "hello", "a", io.Discard); err != nil {
		t.Fatal(err)
	}
	e.mgr.Settle(ctx)
	after, _ := e.rt.Containers(ctx, "hello")
	if len(after) != 1 || after[0].ID == before[0].ID || after[0].Release != 1 {
		t.Errorf("after restart: %+v", after)
	}
	if code, _ := e.serve(t, "hello"); code != 200 {
		t.Errorf("code = %d", code)
	}
}

func TestLogs(t *testing.T) {
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	var out bytes.Buffer
	if err := e.mgr.Logs(context.Background(), "hello", 10, false, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), " hello[web.1]: listening on 5000\n") {
		t.Errorf("logs = %q", out.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.mgr.Logs(ctx, "hello", 0, true, io.Discard); err != nil {
		t.Errorf("follow: %v", err)
	}
}

func TestFailedChangeStoresNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Set: dk.Config{"GREETING": "v2"}, Restart: true})
	// The image now crashes: the config change's release fails.
	e.rt.Crash["dk/hello:1111111"] = true
	_, err := e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Set: dk.Config{"GREETING": "broken"}, Restart: true})
	if dk.ErrorCode(err) != dk.EFAILED {
		t.Fatalf("err = %v", err)
	}
	app, _ := e.db.App(ctx, "hello")
	if app.Config["GREETING"] != "v2" {
		t.Errorf("a failed config change was stored: %v", app.Config)
	}
	_, err = e.mgr.Rollback(ctx, "hello", 1, "a", io.Discard)
	if dk.ErrorCode(err) != dk.EFAILED {
		t.Fatalf("rollback err = %v", err)
	}
	app, _ = e.db.App(ctx, "hello")
	if app.Config["GREETING"] != "v2" {
		t.Errorf("a failed rollback changed the config: %v", app.Config)
	}
	if _, body := e.serve(t, "hello"); body != "dk/hello:1111111 v2" {
		t.Errorf("serving %q", body)
	}
	t.Run("ErrNUL", func(t *testing.T) {
		_, err := e.mgr.SetConfig(ctx, dk.ConfigChange{App: "hello", Set: dk.Config{"A": "x\x00y"}, Restart: true})
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestReconcilerNeverHoldsTheDeployLock(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 200; i++ {
			e.mgr.Reconcile(ctx, "hello")
		}
	}()
	for i := 0; i < 20; i++ {
		l, err := e.mgr.TryLock("hello", "push")
		if err != nil {
			t.Fatalf("a reconciler pass made the app busy: %v", err)
		}
		// While the lock is held no pass may touch the app: a container of a
		// newer (not yet current) release must survive.
		c, _ := e.rt.Start(ctx, dk.ContainerSpec{App: "hello", Release: 99, Process: "web", Index: 1, Image: "x", Port: 5000})
		e.mgr.Reconcile(ctx, "hello")
		if _, err := e.rt.Inspect(ctx, c.ID); err != nil {
			t.Fatalf("reconciler removed a deploy's container: %v", err)
		}
		e.rt.Stop(ctx, c.ID, 0)
		l.Unlock()
	}
	<-done
}

func TestImageRetention(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.mgr.KeepReleases = 2
	e.deploy(t, "hello", "1111111aaaa", map[string]string{})
	// A build tag no release uses (a deploy cut short after its build).
	e.rt.TagImage(ctx, "dk/hello:1111111", "dk/hello:deadbee")
	e.deploy(t, "hello", "2222222bbbb", map[string]string{})
	e.deploy(t, "hello", "3333333cccc", map[string]string{})
	imgs, _ := e.rt.Images(ctx, "hello")
	if diff := cmp.Diff([]string{"dk/hello:v2", "dk/hello:v3"}, imgs); diff != "" {
		t.Errorf("images kept (-want +got):\n%s", diff)
	}
	v1, _ := e.db.Release(ctx, "hello", 1)
	if !v1.ImagePruned {
		t.Error("v1 not marked pruned")
	}
	_, err := e.mgr.Rollback(ctx, "hello", 1, "a", io.Discard)
	if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "git push -f dk 1111111:main") {
		t.Errorf("rollback to a pruned release: %v", err)
	}
	if _, err := e.mgr.Rollback(ctx, "hello", 2, "a", io.Discard); err != nil {
		t.Errorf("rollback to a kept release: %v", err)
	}
}
