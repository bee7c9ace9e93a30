package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/dashboard"
	"github.com/dkhq/dk/internal/fake"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/store"
)

// secretValue is a config value no response may ever contain.
const secretValue = "s3cr3t-Value-that-must-never-leak"

// liveRuntime is fake.Runtime whose followed logs get the lines Print
// adds, and which says when a follower subscribed.
type liveRuntime struct {
	*fake.Runtime
	mu         sync.Mutex
	subs       map[string][]chan string // container → followers
	subscribed chan string
}

func newLiveRuntime() *liveRuntime {
	return &liveRuntime{Runtime: &fake.Runtime{}, subs: map[string][]chan string{}, subscribed: make(chan string, 16)}
}

func (r *liveRuntime) Logs(ctx context.Context, id string, tail int, follow bool, w dk.LogWriter) error {
	if !follow {
		return r.Runtime.Logs(ctx, id, tail, false, w)
	}
	ch := make(chan string, 64)
	r.mu.Lock()
	r.subs[id] = append(r.subs[id], ch)
	r.mu.Unlock()
	if err := r.Runtime.Logs(ctx, id, tail, false, w); err != nil {
		return err
	}
	select {
	case r.subscribed <- id:
	default:
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case l := <-ch:
			w(time.Now(), l)
		}
	}
}

// Print makes the container id print a line, for its followers.
func (r *liveRuntime) Print(id, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.subs[id] {
		ch <- line
	}
}

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	db    *store.DB
	rt    *liveRuntime
	mgr   *releases.Manager
	dash  *dashboard.Server
	clock *clock
	h     http.Handler
	web   dk.Container // hello's web.1
}

var admin = &dk.Key{Name: "admin", Fingerprint: "SHA256:admin", Admin: true}

// newEnv makes a dashboard over a real store, the fake runtime and a real
// release manager, with one running app "hello" (v2 current, v3 failed,
// a secret in its config, one kept build) and one never deployed "empty".
func newEnv(tb testing.TB) *env {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(filepath.Join(tb.TempDir(), "dk.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	rt := newLiveRuntime()
	tb.Cleanup(rt.Close)
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	mgr := &releases.Manager{Store: db, Runtime: rt, Instance: "dk", Now: clk.Now}
	e := &env{db: db, rt: rt, mgr: mgr, clock: clk}
	e.dash = &dashboard.Server{
		Store: db, Builds: db, Sessions: db, Manager: mgr, Containers: rt,
		BaseURL: func() string { return "http://dash.example" },
		AppURL:  func(app string) string { return "http://" + app + ".localhost:8080/" },
		Now:     clk.Now,
		Checks:  []dashboard.Check{{Name: "store", Ping: func(ctx context.Context) error { _, err := db.Apps(ctx); return err }}},
	}
	e.h = e.dash.Handler()

	for _, name := range []string{"hello", "empty"} {
		if err := db.CreateApp(ctx, &dk.App{Name: name, CreatedAt: clk.Now()}); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := db.UpdateApp(ctx, "hello", func(a *dk.App) error {
		a.Config = dk.Config{"SECRET_TOKEN": secretValue, "GREETING": "hi"}
		a.ProcessConfig = map[string]dk.Config{"worker": {"QUEUE_PASSWORD": secretValue}}
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	mustRelease(tb, db, &dk.Release{App: "hello", Image: "dk/hello:v1", Description: "Deploy 1111111", Author: "alice",
		Status: dk.ReleaseSucceeded, CreatedAt: clk.Now().Add(-2 * time.Hour), Build: 1})
	mustRelease(tb, db, &dk.Release{App: "hello", Image: "dk/hello:v2", Description: "Set GREETING, SECRET_TOKEN", Author: "bob",
		Config: dk.Config{"SECRET_TOKEN": secretValue}, Status: dk.ReleaseSucceeded, CreatedAt: clk.Now().Add(-time.Hour),
		Timings: []dk.Timing{{Stage: "release", Duration: 20 * time.Millisecond}, {Stage: "start", Duration: 1500 * time.Millisecond}}})
	mustRelease(tb, db, &dk.Release{App: "hello", Image: "dk/hello:v3", Description: "Deploy 3333333", Author: "alice",
		Status: dk.ReleaseFailed, Error: "web.1 did not listen on port 5000", CreatedAt: clk.Now().Add(-10 * time.Minute), Build: 2})
	n, _ := db.NextBuild(ctx, "hello")
	_ = db.SaveBuild(ctx, &dk.Build{App: "hello", Number: n, Commit: "1111111aaaa", Author: "alice", Release: 1, Status: dk.BuildSucceeded,
		StartedAt: clk.Now().Add(-2 * time.Hour), Duration: 3 * time.Second, Log: []byte("-----> Building hello from dockerfile\n-----> Releasing v1\n")})
	n, _ = db.NextBuild(ctx, "hello")
	_ = db.SaveBuild(ctx, &dk.Build{App: "hello", Number: n, Commit: "3333333bbbb", Author: "alice", Release: 3, Status: dk.BuildFailed,
		Error: "deploy failed", StartedAt: clk.Now().Add(-10 * time.Minute), Duration: 5 * time.Second,
		Log: []byte("-----> Building hello from dockerfile\n !     deploy failed: web.1 did not listen on port 5000\n")})
	web, err := rt.Start(ctx, dk.ContainerSpec{App: "hello", Release: 2, Process: "web", Index: 1, Image: "dk/hello:v2", Port: 5000,
		Env: dk.Config{"PORT": "5000", "SECRET_TOKEN": secretValue}})
	if err != nil {
		tb.Fatal(err)
	}
	e.web = web
	return e
}

func mustRelease(tb testing.TB, db *store.DB, r *dk.Release) {
	tb.Helper()
	if r.Processes == nil {
		r.Processes = dk.Processes{"web": ""}
	}
	if err := db.CreateRelease(context.Background(), r); err != nil {
		tb.Fatal(err)
	}
}

type response struct {
	code   int
	header http.Header
	body   string
}

// do serves one request; cookie may be "".
func (e *env) do(tb testing.TB, method, path, cookie string, hdr ...string) response {
	tb.Helper()
	req := httptest.NewRequest(method, "http://dash.example"+path, nil)
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: cookie})
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	resp := response{code: rec.Code, header: rec.Header(), body: string(b)}
	if got := rec.Header().Get("Content-Security-Policy"); got != dashboard.CSP {
		tb.Errorf("%s %s: CSP %q", method, path, got)
	}
	if strings.Contains(resp.body, secretValue) {
		tb.Errorf("%s %s: the response holds a config value", method, path)
	}
	return resp
}

// login gets a login link for key as dashboard:url would, opens it, and
// returns the session cookie.
func (e *env) login(tb testing.TB, key *dk.Key) string {
	tb.Helper()
	link, err := e.dash.LoginURL(context.Background(), key)
	if err != nil {
		tb.Fatal(err)
	}
	u, err := url.Parse(link)
	if err != nil || !strings.HasPrefix(link, "http://dash.example/login/") {
		tb.Fatalf("login link %q", link)
	}
	req := httptest.NewRequest("GET", u.String(), nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		tb.Fatalf("GET %s: %d %s", u.Path, rec.Code, rec.Body)
	}
	for _, c := range rec.Result().Cookies() {
		if c.Name == dashboard.CookieName {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
				tb.Errorf("cookie attributes: %+v", c)
			}
			return c.Value
		}
	}
	tb.Fatalf("no session cookie after login")
	return ""
}

func mustContain(tb testing.TB, what string, body string, wants ...string) {
	tb.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			tb.Errorf("%s lacks %q", what, w)
		}
	}
}

var _ = fmt.Sprint
