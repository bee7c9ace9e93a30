// Package router is dk's ingress: it sends http://APP.DOMAIN to the app's
// healthy web containers. The route table is replaced whole and atomically
// (swap, don't mutate): requests in flight keep the table they started with.
package router

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Proxy is an HTTP reverse proxy keyed by Host.
type Proxy struct {
	// Domain is the suffix apps live under: APP.Domain.
	Domain string
	Logger *slog.Logger

	table atomic.Pointer[table]
	proxy *httputil.ReverseProxy
}

type table struct {
	apps map[string]*backends
}

type backends struct {
	addrs []string
	next  atomic.Uint64
}

// New returns a Proxy serving apps under domain.
func New(domain string, logger *slog.Logger) *Proxy {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{Domain: strings.ToLower(strings.Trim(domain, ".")), Logger: logger}
	p.table.Store(&table{apps: map[string]*backends{}})
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
		ForceAttemptHTTP2:     false,
	}
	p.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target := r.In.Context().Value(targetKey{}).(*url.URL)
			r.SetURL(target)
			r.Out.Host = r.In.Host // apps see the public host
			r.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // stream (SSE, long polls)
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			p.Logger.Warn("proxy error", "host", r.Host, "err", err)
			page(w, http.StatusBadGateway, "Bad gateway", "The app did not answer. Check its logs: ssh dk logs APP")
		},
	}
	return p
}

type targetKey struct{}

// SetRoutes replaces the route table. An app present with no backends is
// known but not running (503); an absent app is unknown (404).
func (p *Proxy) SetRoutes(routes map[string][]string) {
	t := &table{apps: make(map[string]*backends, len(routes))}
	for app, addrs := range routes {
		t.apps[app] = &backends{addrs: append([]string(nil), addrs...)}
	}
	p.table.Store(t)
}

// Routes returns a copy of the current table.
func (p *Proxy) Routes() map[string][]string {
	out := map[string][]string{}
	for app, b := range p.table.Load().apps {
		out[app] = append([]string(nil), b.addrs...)
	}
	return out
}

// AppForHost returns the app a Host header names, or "".
func (p *Proxy) AppForHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	suffix := "." + p.Domain
	if !strings.HasSuffix(host, suffix) {
		return ""
	}
	app := strings.TrimSuffix(host, suffix)
	if app == "" || strings.Contains(app, ".") {
		return ""
	}
	return app
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	app := p.AppForHost(r.Host)
	t := p.table.Load()
	b, ok := t.apps[app]
	if app == "" || !ok {
		page(w, http.StatusNotFound, "No such app", fmt.Sprintf("No app answers to %s. Apps live at http://APP.%s/; deploy one with git push.", r.Host, p.Domain))
		return
	}
	if len(b.addrs) == 0 {
		page(w, http.StatusServiceUnavailable, "App not running", fmt.Sprintf("%s has no running web process. Check: ssh dk ps %s", app, app))
		return
	}
	addr := b.addrs[int(b.next.Add(1)-1)%len(b.addrs)]
	ctx := context.WithValue(r.Context(), targetKey{}, &url.URL{Scheme: "http", Host: addr})
	p.proxy.ServeHTTP(w, r.WithContext(ctx))
}

func page(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Dk-Error", title)
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>%d %s</title><h1>%d %s</h1><p>%s</p><hr><p>dk</p>\n",
		status, html.EscapeString(title), status, html.EscapeString(title), html.EscapeString(msg))
}
