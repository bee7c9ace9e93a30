package router_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dkhq/dk/router"
)

func backend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, name+" host="+r.Host+" xff="+r.Header.Get("X-Forwarded-For")+" proto="+r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func get(t *testing.T, h http.Handler, host string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestProxy(t *testing.T) {
	p := router.New("localhost", nil)
	a1, a2 := backend(t, "a1"), backend(t, "a2")
	p.SetRoutes(map[string][]string{"hello": {a1, a2}, "idle": nil})

	t.Run("OK", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 4; i++ {
			code, body := get(t, p, "hello.localhost:8080")
			if code != 200 {
				t.Fatalf("code = %d, body %q", code, body)
			}
			if !strings.Contains(body, "host=hello.localhost:8080") || !strings.Contains(body, "proto=http") || !strings.Contains(body, "xff=192.0.2.1") {
				t.Errorf("forwarding headers missing: %q", body)
			}
			seen[body[:2]] = true
		}
		if !seen["a1"] || !seen["a2"] {
			t.Errorf("not balanced across backends: %v", seen)
		}
	})
	t.Run("ErrUnknownApp", func(t *testing.T) {
		code, body := get(t, p, "nope.localhost")
		if code != 404 || !strings.Contains(body, "No app answers to nope.localhost") {
			t.Errorf("got %d %q", code, body)
		}
	})
	t.Run("ErrOtherDomain", func(t *testing.T) {
		if code, _ := get(t, p, "hello.example.com"); code != 404 {
			t.Errorf("code = %d, want 404", code)
		}
	})
	t.Run("ErrNotRunning", func(t *testing.T) {
		code, body := get(t, p, "idle.localhost")
		if code != 503 || !strings.Contains(body, "idle has no running web process") {
			t.Errorf("got %d %q", code, body)
		}
	})
	t.Run("ErrBackendDown", func(t *testing.T) {
		p2 := router.New("localhost", nil)
		p2.SetRoutes(map[string][]string{"dead": {"127.0.0.1:1"}})
		if code, _ := get(t, p2, "dead.localhost"); code != 502 {
			t.Errorf("code = %d, want 502", code)
		}
	})
	t.Run("Swap", func(t *testing.T) {
		p.SetRoutes(map[string][]string{"hello": {a2}})
		for i := 0; i < 3; i++ {
			if _, body := get(t, p, "HELLO.localhost"); !strings.HasPrefix(body, "a2") {
				t.Errorf("after swap got %q", body)
			}
		}
	})
}

func TestDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "slow done")
	}))
	defer slow.Close()
	u, _ := url.Parse(slow.URL)
	old := u.Host
	fresh := backend(t, "fresh")
	p := router.New("localhost", nil)
	p.SetRoutes(map[string][]string{"app": {old}})

	done := make(chan string)
	go func() { _, body := get(t, p, "app.localhost"); done <- body }()
	<-started
	if p.Inflight(old) != 1 {
		t.Fatalf("inflight = %d", p.Inflight(old))
	}
	p.SetRoutes(map[string][]string{"app": {fresh}})
	// New requests go to the fresh backend while the old one drains.
	if _, body := get(t, p, "app.localhost"); !strings.HasPrefix(body, "fresh") {
		t.Errorf("after swap got %q", body)
	}
	drained := make(chan error)
	go func() { drained <- p.Drain(context.Background(), []string{old}) }()
	select {
	case <-drained:
		t.Fatal("drain returned with a request in flight")
	default:
	}
	close(release)
	if body := <-done; body != "slow done" {
		t.Errorf("in-flight request got %q", body)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	// A drain bounded by its context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.Drain(ctx, []string{old}); err != nil {
		t.Errorf("drain of an idle backend: %v", err)
	}
}
