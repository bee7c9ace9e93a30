package dashboard_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/dashboard"
)

// pages is every dashboard page a signed-in key may open.
var pages = []string{"/", "/apps/hello", "/apps/empty", "/apps/hello/builds/1", "/apps/hello/builds/2"}

func TestUnauthenticatedGetsTheLoginPageOnly(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ method, path, cookie string }{
		{"GET", "/", ""},
		{"GET", "/apps/hello", ""},
		{"GET", "/apps/nope", ""},
		{"GET", "/apps/hello/builds/1", ""},
		{"GET", "/apps/hello/logs/live", ""},
		{"GET", "/no/such/page", ""},
		{"POST", "/logout", ""},
		{"GET", "/", "forged-session-id"},
		{"GET", "/apps/hello", strings.Repeat("x", 500)},
	} {
		r := e.do(t, c.method, c.path, c.cookie)
		if r.code != http.StatusUnauthorized {
			t.Errorf("%s %s: status %d, want 401", c.method, c.path, r.code)
		}
		mustContain(t, c.method+" "+c.path, r.body, "Sign in to dk", "ssh dk dashboard:url")
		for _, leak := range []string{"hello", "empty", "v2", "SECRET_TOKEN", "Building"} {
			if strings.Contains(r.body, leak) {
				t.Errorf("%s %s without a session shows %q", c.method, c.path, leak)
			}
		}
	}
}

func TestPages(t *testing.T) {
	e := newEnv(t)
	cookie := e.login(t, admin)

	t.Run("Overview", func(t *testing.T) {
		r := e.do(t, "GET", "/", cookie)
		if r.code != 200 {
			t.Fatalf("status %d: %s", r.code, r.body)
		}
		mustContain(t, "overview", r.body,
			`<a href="/apps/hello">hello</a>`, "v2", "state-running", "web 1/1", "http://hello.localhost:8080/",
			"10 min ago", "last deploy failed: v3 web.1 did not listen on port 5000",
			`<a href="/apps/empty">empty</a>`, "state-stopped", "admin (admin)", `action="/logout"`)
	})
	t.Run("App", func(t *testing.T) {
		r := e.do(t, "GET", "/apps/hello", cookie)
		if r.code != 200 {
			t.Fatalf("status %d: %s", r.code, r.body)
		}
		mustContain(t, "app page", r.body,
			// releases: description, author, status, time, timings, build link
			"Set GREETING, SECRET_TOKEN", "bob", ">current<", ">failed<", "1 h ago", "release 20ms, start 1.5s",
			`<a href="/apps/hello/builds/2">#2</a>`,
			// processes
			"web.1", "state-running", "v2",
			// config keys, masked
			"<code>SECRET_TOKEN</code>", "<code>GREETING</code>", "<code>QUEUE_PASSWORD</code>", "••••••••",
			// latest build log, and the live tail's hook
			"Latest build: <a href=\"/apps/hello/builds/2\">#2</a> (failed)", "did not listen on port 5000",
			`data-src="/apps/hello/logs/live"`, `<script src="/static/tail.js" defer></script>`,
			// recent logs
			"listening on 5000")
		if strings.Contains(r.body, "hi</") {
			t.Errorf("a config value (GREETING=hi) is on the page")
		}
	})
	t.Run("Build", func(t *testing.T) {
		r := e.do(t, "GET", "/apps/hello/builds/1", cookie)
		if r.code != 200 {
			t.Fatalf("status %d: %s", r.code, r.body)
		}
		mustContain(t, "build page", r.body, "hello build #1", "1111111aaaa", "-----&gt; Building hello from dockerfile", "release v1", "took 3.0s")
	})
	t.Run("NotFound", func(t *testing.T) {
		for _, p := range []string{"/apps/nope", "/apps/Bad_Name", "/apps/hello/builds/9", "/apps/hello/builds/x", "/nowhere"} {
			if r := e.do(t, "GET", p, cookie); r.code != 404 {
				t.Errorf("GET %s: %d", p, r.code)
			}
		}
	})
	t.Run("ReadOnly", func(t *testing.T) {
		for _, p := range []string{"/", "/apps/hello"} {
			if r := e.do(t, "POST", p, cookie); r.code != http.StatusMethodNotAllowed {
				t.Errorf("POST %s: %d", p, r.code)
			}
		}
		if r := e.do(t, "GET", "/logout", cookie); r.code != http.StatusMethodNotAllowed {
			t.Errorf("GET /logout: %d", r.code)
		}
	})
	t.Run("Static", func(t *testing.T) {
		for _, p := range []string{"/static/style.css", "/static/tail.js"} {
			if r := e.do(t, "GET", p, ""); r.code != 200 {
				t.Errorf("GET %s: %d", p, r.code)
			}
		}
	})
}

// TestNoSecretEverSent opens every page and the live stream: e.do fails
// the test when any response holds the secret config value.
func TestNoSecretEverSent(t *testing.T) {
	e := newEnv(t)
	cookie := e.login(t, admin)
	for _, p := range pages {
		if r := e.do(t, "GET", p, cookie); r.code != 200 {
			t.Errorf("GET %s: %d", p, r.code)
		}
	}
	for _, p := range []string{"/metrics", "/healthz", "/static/style.css"} {
		e.do(t, "GET", p, "")
	}
	// The container's environment holds the value too: the processes table
	// must not show it.
	if got := e.rt.Env(e.web.ID)["SECRET_TOKEN"]; got != secretValue {
		t.Fatalf("test setup: env %q", got)
	}
}

func TestLoginLink(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	t.Run("SingleUse", func(t *testing.T) {
		link, err := e.dash.LoginURL(ctx, admin)
		if err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(link, "http://dash.example")
		r := e.do(t, "GET", path, "")
		if r.code != 200 || !strings.Contains(r.body, `<meta http-equiv="refresh" content="0;url=/">`) {
			t.Fatalf("first use: %d %s", r.code, r.body)
		}
		if !strings.Contains(r.header.Get("Set-Cookie"), "HttpOnly; SameSite=Strict") {
			t.Errorf("Set-Cookie: %q", r.header.Get("Set-Cookie"))
		}
		r = e.do(t, "GET", path, "")
		if r.code != 401 || !strings.Contains(r.body, "already used or expired") || r.header.Get("Set-Cookie") != "" {
			t.Errorf("second use: %d %q", r.code, r.header.Get("Set-Cookie"))
		}
	})
	t.Run("StoredHashed", func(t *testing.T) {
		link, _ := e.dash.LoginURL(ctx, admin)
		tok := link[strings.LastIndex(link, "/")+1:]
		// The raw token is not a key the store knows; only its hash is.
		if _, err := e.db.ConsumeLoginToken(ctx, tok, e.clock.Now()); dk.ErrorCode(err) != dk.ENOTFOUND {
			t.Errorf("the store knows the raw token: %v", err)
		}
	})
	t.Run("Expires", func(t *testing.T) {
		link, _ := e.dash.LoginURL(ctx, admin)
		e.clock.Advance(dashboard.DefaultLoginTTL)
		r := e.do(t, "GET", strings.TrimPrefix(link, "http://dash.example"), "")
		if r.code != 401 {
			t.Errorf("expired link: %d", r.code)
		}
	})
	t.Run("SessionExpires", func(t *testing.T) {
		cookie := e.login(t, admin)
		e.clock.Advance(dashboard.DefaultSessionTTL - time.Second)
		if r := e.do(t, "GET", "/", cookie); r.code != 200 {
			t.Errorf("before expiry: %d", r.code)
		}
		e.clock.Advance(time.Second)
		if r := e.do(t, "GET", "/", cookie); r.code != 401 {
			t.Errorf("after expiry: %d", r.code)
		}
	})
	t.Run("Logout", func(t *testing.T) {
		cookie := e.login(t, admin)
		if r := e.do(t, "POST", "/logout", cookie, "Origin", "http://evil.example"); r.code != 403 {
			t.Errorf("cross-site logout: %d", r.code)
		}
		if r := e.do(t, "GET", "/", cookie); r.code != 200 {
			t.Fatalf("still signed in: %d", r.code)
		}
		r := e.do(t, "POST", "/logout", cookie, "Origin", "http://dash.example")
		if r.code != 200 || !strings.Contains(r.body, "Signed out.") || !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
			t.Errorf("logout: %d %q", r.code, r.header.Get("Set-Cookie"))
		}
		if r := e.do(t, "GET", "/", cookie); r.code != 401 {
			t.Errorf("after logout: %d", r.code)
		}
	})
	t.Run("RemovedKey", func(t *testing.T) {
		bob := &dk.Key{Name: "bob", PublicKey: "ssh-ed25519 AAAA bob", Fingerprint: "SHA256:bob"}
		if err := e.db.CreateKey(ctx, bob); err != nil {
			t.Fatal(err)
		}
		cookie := e.login(t, bob)
		if r := e.do(t, "GET", "/", cookie); r.code != 200 {
			t.Fatalf("bob: %d", r.code)
		}
		if err := e.db.DeleteKey(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if r := e.do(t, "GET", "/", cookie); r.code != 401 {
			t.Errorf("after keys:remove bob: %d", r.code)
		}
	})
}

func TestTLSCookie(t *testing.T) {
	e := newEnv(t)
	link, _ := e.dash.LoginURL(context.Background(), admin)
	req := httptest.NewRequest("GET", strings.Replace(link, "http://", "https://", 1), nil)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if c := rec.Result().Cookies(); len(c) != 1 || !c[0].Secure {
		t.Errorf("over TLS the cookie must be Secure: %+v", c)
	}
}

func TestAccess(t *testing.T) {
	e := newEnv(t)
	deployer := &dk.Key{Name: "carol", Fingerprint: "SHA256:carol"}
	t.Run("DeployKeysSeeEveryApp", func(t *testing.T) {
		cookie := e.login(t, deployer)
		r := e.do(t, "GET", "/", cookie)
		mustContain(t, "overview", r.body, `href="/apps/hello"`, `href="/apps/empty"`, "carol")
	})
	t.Run("PerAppACL", func(t *testing.T) {
		e.dash.CanView = func(k *dk.Key, app string) bool { return k.Admin || app == "empty" }
		cookie := e.login(t, deployer)
		r := e.do(t, "GET", "/", cookie)
		if strings.Contains(r.body, "hello") {
			t.Errorf("carol sees hello on the overview")
		}
		for _, p := range []string{"/apps/hello", "/apps/hello/builds/1", "/apps/hello/logs/live"} {
			r := e.do(t, "GET", p, cookie)
			if r.code != 404 || strings.Contains(r.body, "Building") {
				t.Errorf("GET %s as carol: %d", p, r.code)
			}
		}
		if r := e.do(t, "GET", "/apps/empty", cookie); r.code != 200 {
			t.Errorf("GET /apps/empty as carol: %d", r.code)
		}
	})
}

func TestHealthz(t *testing.T) {
	e := newEnv(t)
	r := e.do(t, "GET", "/healthz", "")
	var rep struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if r.code != 200 || json.Unmarshal([]byte(r.body), &rep) != nil || rep.Status != "ok" || rep.Checks["store"] != "ok" {
		t.Errorf("healthy: %d %s", r.code, r.body)
	}
	e.dash.Checks = append(e.dash.Checks, dashboard.Check{Name: "docker", Ping: func(context.Context) error {
		return errors.New("cannot reach the Docker engine")
	}})
	r = e.do(t, "GET", "/healthz", "")
	if r.code != 503 || json.Unmarshal([]byte(r.body), &rep) != nil || rep.Status != "unhealthy" || rep.Checks["docker"] != "cannot reach the Docker engine" {
		t.Errorf("unhealthy: %d %s", r.code, r.body)
	}
}

func TestMetricsNeedNoSession(t *testing.T) {
	e := newEnv(t)
	e.dash.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dk_up 1\n")) })
	e.h = (&dashboard.Server{Store: e.db, Sessions: e.db, Manager: e.mgr, Containers: e.rt, Metrics: e.dash.Metrics}).Handler()
	if r := e.do(t, "GET", "/metrics", ""); r.code != 200 || r.body != "dk_up 1\n" {
		t.Errorf("/metrics: %d %q", r.code, r.body)
	}
}

func TestLiveLogs(t *testing.T) {
	e := newEnv(t)
	cookie := e.login(t, admin)
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/apps/hello/logs/live", nil)
	req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	select {
	case <-e.rt.subscribed:
	case <-ctx.Done():
		t.Fatal("the stream never followed the container")
	}
	e.rt.Print(e.web.ID, "GET /after-open 200")
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "data: ") {
			if !strings.Contains(sc.Text(), "hello[web.1]: GET /after-open 200") {
				t.Errorf("event %q", sc.Text())
			}
			return
		}
	}
	t.Fatalf("stream ended: %v", sc.Err())
}
