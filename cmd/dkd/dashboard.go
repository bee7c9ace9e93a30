package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/dkhq/dk/builder"
	"github.com/dkhq/dk/dashboard"
	"github.com/dkhq/dk/engine"
	"github.com/dkhq/dk/metrics"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/store"
	"github.com/docker/docker/client"
)

// webUI is the dashboard with /metrics and /healthz, on its own address.
type webUI struct {
	dash *dashboard.Server
	srv  *http.Server
	ln   net.Listener
}

// newWebUI binds the dashboard's address; nil when it is off.
func newWebUI(cfg *config, db *store.DB, mgr *releases.Manager, rt *engine.Runtime, met *metrics.Metrics,
	docker *client.Client, bk *builder.Client, appURL func(string) string, logger *slog.Logger) (*webUI, error) {
	if cfg.DashboardAddr == "" || cfg.DashboardAddr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.DashboardAddr)
	if err != nil {
		return nil, fmt.Errorf("listen dashboard %s: %w", cfg.DashboardAddr, err)
	}
	base := dashboardURL(cfg.Domain, ln.Addr().String())
	dash := &dashboard.Server{
		Store: db, Builds: db, Sessions: db, Manager: mgr, Containers: rt,
		BaseURL: func() string { return base }, AppURL: appURL,
		Metrics: met.Handler(), Logger: logger,
		Checks: []dashboard.Check{
			{Name: "store", Ping: func(ctx context.Context) error { _, err := db.Apps(ctx); return err }},
			{Name: "docker", Ping: func(ctx context.Context) error { _, err := docker.Ping(ctx); return err }},
			{Name: "buildkit", Ping: bk.Ping},
		},
	}
	srv := &http.Server{Handler: dash.Handler(), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	return &webUI{dash: dash, srv: srv, ln: ln}, nil
}

func (w *webUI) serve() error {
	if err := w.srv.Serve(w.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (w *webUI) addr() string {
	if w == nil {
		return ""
	}
	return w.ln.Addr().String()
}

// dashboardURL is where a browser on this machine reaches the dashboard.
func dashboardURL(domain, addr string) string {
	host, port := hostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		host = domain
	}
	return "http://" + net.JoinHostPort(host, port)
}
