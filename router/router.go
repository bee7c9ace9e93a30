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
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is an HTTP reverse proxy keyed by Host.
type Proxy struct {
	// Domain is the suffix apps live under: APP.Domain.
	Domain string
	Logger *slog.Logger
	// Observe, when set, is called once per request with the app (""
	// for hosts that name no app), the status sent and the time taken.
	Observe func(app string, status int, d time.Duration)

	table atomic.Pointer[table]
	proxy *httputil.ReverseProxy

	// inflight counts requests in flight per backend address, across
	// table swaps, so a drain can wait for them.
	inflight sync.Map // addr → *atomic.Int64
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
	if strings.IndexByte(host, ':') >= 0 { // SplitHostPort allocates its error
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
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
	if p.Observe != nil {
		p.observe(w, r) // see observe.go
		return
	}
	p.serve(w, r)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
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
	addr, n := p.acquire(app, t, b)
	if n == nil {
		page(w, http.StatusServiceUnavailable, "App not running", fmt.Sprintf("%s has no running web process. Check: ssh dk ps %s", app, app))
		return
	}
	defer n.Add(-1)
	ctx := context.WithValue(r.Context(), targetKey{}, &url.URL{Scheme: "http", Host: addr})
	p.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// acquire picks a backend and counts the request in flight on it. The count
// is taken before the table is checked again, so a drain that starts after
// a swap either sees this request or the request sees the new table.
func (p *Proxy) acquire(app string, t *table, b *backends) (string, *atomic.Int64) {
	for i := 0; i < 8; i++ {
		addr := b.addrs[int(b.next.Add(1)-1)%len(b.addrs)]
		n := p.counter(addr)
		n.Add(1)
		cur := p.table.Load()
		if cur == t {
			return addr, n
		}
		n.Add(-1)
		// The table changed meanwhile: pick again from the new one.
		t = cur
		if b = t.apps[app]; b == nil || len(b.addrs) == 0 {
			return "", nil
		}
	}
	return "", nil
}

func (p *Proxy) counter(addr string) *atomic.Int64 {
	if n, ok := p.inflight.Load(addr); ok {
		return n.(*atomic.Int64)
	}
	n, _ := p.inflight.LoadOrStore(addr, new(atomic.Int64))
	return n.(*atomic.Int64)
}

// Inflight is the number of requests in flight to addr.
func (p *Proxy) Inflight(addr string) int64 { return p.counter(addr).Load() }

// Drain waits until no request is in flight to any of addrs (which must
// already be out of the route table), or until ctx ends. It polls: drains
// are rare and short.
func (p *Proxy) Drain(ctx context.Context, addrs []string) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := false
		for _, a := range addrs {
			if p.counter(a).Load() > 0 {
				busy = true
				break
			}
		}
		if !busy {
			for _, a := range addrs {
				if p.counter(a).Load() == 0 && !p.routed(a) {
					p.inflight.Delete(a)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// routed reports whether the current table sends traffic to addr.
func (p *Proxy) routed(addr string) bool {
	for _, b := range p.table.Load().apps {
		for _, a := range b.addrs {
			if a == addr {
				return true
			}
		}
	}
	return false
}

func page(w http.ResponseWriter, status int, title, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Dk-Error", title)
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!doctype html><title>%d %s</title><h1>%d %s</h1><p>%s</p><hr><p>dk</p>\n",
		status, html.EscapeString(title), status, html.EscapeString(title), html.EscapeString(msg))
}
