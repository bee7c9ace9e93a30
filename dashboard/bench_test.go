package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/dashboard"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/store"
)

// benchEnv is 100 apps × 50 releases in a real store, each app with two
// running processes, and a signed-in admin.
func benchEnv(b *testing.B) (*dashboard.Server, string) {
	b.Helper()
	ctx := context.Background()
	db, err := store.Open(filepath.Join(b.TempDir(), "dk.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	rt := newLiveRuntime()
	b.Cleanup(rt.Close)
	mgr := &releases.Manager{Store: db, Runtime: rt, Instance: "dk"}
	t0 := time.Now().Add(-100 * time.Hour)
	for i := 0; i < 100; i++ {
		app := fmt.Sprintf("app-%03d", i)
		cfg := dk.Config{}
		for k := 0; k < 20; k++ {
			cfg[fmt.Sprintf("KEY_%02d", k)] = "value"
		}
		if err := db.CreateApp(ctx, &dk.App{Name: app, CreatedAt: t0, Config: cfg}); err != nil {
			b.Fatal(err)
		}
		for v := 1; v <= 50; v++ {
			mustRelease(b, db, &dk.Release{App: app, Image: fmt.Sprintf("dk/%s:v%d", app, v), Description: fmt.Sprintf("Deploy %07d", v),
				Author: "alice", Config: cfg, Global: dk.Config{"G": "1"}, Processes: dk.Processes{"web": "", "worker": "run"},
				Status: dk.ReleaseSucceeded, CreatedAt: t0.Add(time.Duration(v) * time.Minute), Build: v,
				Timings: []dk.Timing{{Stage: "build", Duration: time.Second}, {Stage: "start", Duration: time.Second}}})
		}
		for _, proc := range []string{"web", "worker"} {
			port := 0
			if proc == "web" {
				port = 5000
			}
			if _, err := rt.Start(ctx, dk.ContainerSpec{App: app, Release: 50, Process: proc, Index: 1, Port: port, Env: dk.Config{"PORT": "5000"}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	dash := &dashboard.Server{Store: db, Builds: db, Sessions: db, Manager: mgr, Containers: rt,
		AppURL: func(app string) string { return "http://" + app + ".localhost/" }}
	link, err := dash.LoginURL(ctx, admin)
	if err != nil {
		b.Fatal(err)
	}
	rec := httptest.NewRecorder()
	dash.Handler().ServeHTTP(rec, httptest.NewRequest("GET", link, nil))
	return dash, rec.Result().Cookies()[0].Value
}

func benchPage(b *testing.B, path string) {
	dash, cookie := benchEnv(b)
	h := dash.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	var size int
	for b.Loop() {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(&http.Cookie{Name: dashboard.CookieName, Value: cookie})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("GET %s: %d", path, rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size)/1024, "KiB/page")
}

// BenchmarkOverview renders the overview of 100 apps × 50 releases.
func BenchmarkOverview(b *testing.B) { benchPage(b, "/") }

// BenchmarkAppPage renders one app page (50 releases, 2 processes, 20
// config keys).
func BenchmarkAppPage(b *testing.B) { benchPage(b, "/apps/app-042") }
