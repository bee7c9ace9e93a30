package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/metrics"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/router"
)

type containers []dk.Container

func (c containers) Containers(context.Context, string) ([]dk.Container, error) { return c, nil }

// The hooks' types match: the router's Observe and releases.Observer.
var (
	_ releases.Observer = (*metrics.Metrics)(nil)
	_                   = router.Proxy{Observe: (*metrics.Metrics)(nil).ObserveRequest}
)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestMetrics(t *testing.T) {
	m := metrics.New(containers{
		{App: "hello", Process: "web", State: "running"},
		{App: "hello", Process: "web", State: "running"},
		{App: "hello", Process: "worker", State: "restarting"},
	})
	m.ObserveRequest("hello", 200, 3*time.Millisecond)
	m.ObserveRequest("hello", 204, 3*time.Millisecond)
	m.ObserveRequest("hello", 502, time.Second)
	m.ObserveRequest("", 404, time.Millisecond)
	m.DeployFinished("hello", "deploy", "succeeded", 4*time.Second)
	m.DeployFinished("hello", "config", "failed", time.Second)
	m.BuildFinished("hello", "succeeded", 3*time.Second)
	m.ReconcilePass(nil)
	m.ReconcilePass(errors.New("engine down"))
	out := scrape(t, m)
	for _, want := range []string{
		`dk_router_requests_total{app="hello",code="2xx"} 2`,
		`dk_router_requests_total{app="hello",code="5xx"} 1`,
		`dk_router_requests_total{app="",code="4xx"} 1`,
		`dk_router_request_duration_seconds_count{app="hello"} 3`,
		`dk_router_request_duration_seconds_bucket{app="hello",le="0.005"} 2`,
		`dk_deploys_total{app="hello",kind="deploy",outcome="succeeded"} 1`,
		`dk_deploys_total{app="hello",kind="config",outcome="failed"} 1`,
		`dk_deploy_duration_seconds_sum{app="hello",kind="deploy",outcome="succeeded"} 4`,
		`dk_builds_total{app="hello",outcome="succeeded"} 1`,
		`dk_build_duration_seconds_count{app="hello",outcome="succeeded"} 1`,
		`dk_reconcile_passes_total 2`,
		`dk_reconcile_errors_total 1`,
		`dk_containers_running{app="hello",process="web"} 2`,
		`dk_containers_running{app="hello",process="worker"} 0`,
		`dk_containers_scrape_error 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" ") {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	m.ForgetApp("hello")
	if out := scrape(t, m); strings.Contains(out, `dk_router_requests_total{app="hello"`) {
		t.Errorf("a forgotten app's requests are still reported")
	}
}

func TestObserveRequestAllocs(t *testing.T) {
	m := metrics.New(nil)
	m.ObserveRequest("hello", 200, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { m.ObserveRequest("hello", 200, time.Millisecond) }); n > 0 {
		t.Errorf("%.0f allocations per request", n)
	}
}

func BenchmarkObserveRequest(b *testing.B) {
	m := metrics.New(nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.ObserveRequest("hello", 200, time.Millisecond)
		}
	})
}
