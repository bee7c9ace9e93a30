package router_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/dkhq/dk/router"
	"github.com/google/go-cmp/cmp"
)

type seen struct {
	app    string
	status int
}

func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var got []seen
	p := router.New("localhost", nil)
	p.Observe = func(app string, status int, d time.Duration) {
		if d <= 0 {
			t.Errorf("duration %v", d)
		}
		mu.Lock()
		got = append(got, seen{app, status})
		mu.Unlock()
	}
	teapot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	t.Cleanup(teapot.Close)
	u, _ := url.Parse(teapot.URL)
	p.SetRoutes(map[string][]string{"hello": {backend(t, "a1")}, "tea": {u.Host}, "idle": nil})

	get(t, p, "hello.localhost")
	get(t, p, "tea.localhost")
	get(t, p, "idle.localhost")
	get(t, p, "made-up-host.localhost")
	want := []seen{{"hello", 200}, {"tea", 418}, {"idle", 503}, {"", 404}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(seen{})); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}

// TestObserveStreams checks that the status-recording writer still lets
// the proxy flush: an event reaches the client while the backend is open.
func TestObserveStreams(t *testing.T) {
	release := make(chan struct{})
	sse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release
	}))
	t.Cleanup(sse.Close)
	defer close(release)
	u, _ := url.Parse(sse.URL)
	p := router.New("localhost", nil)
	p.Observe = func(string, int, time.Duration) {}
	p.SetRoutes(map[string][]string{"live": {u.Host}})
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	req, _ := http.NewRequest("GET", front.URL, nil)
	req.Host = "live.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("data: first\n\n"))
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "data: first\n\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
}

// TestObserveAllocs: observing adds no allocation per request.
func TestObserveAllocs(t *testing.T) {
	p := router.New("localhost", nil)
	p.SetRoutes(map[string][]string{"idle": nil})
	req := httptest.NewRequest("GET", "/", nil)
	req.Host = "idle.localhost"
	w := discard{h: http.Header{}}
	without := testing.AllocsPerRun(200, func() { p.ServeHTTP(w, req) })
	p.Observe = func(string, int, time.Duration) {}
	with := testing.AllocsPerRun(200, func() { p.ServeHTTP(w, req) })
	if with > without {
		t.Errorf("%.0f allocations per request with Observe, %.0f without", with, without)
	}
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}
