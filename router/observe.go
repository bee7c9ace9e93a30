package router

import (
	"net/http"
	"sync"
	"time"
)

// statusWriter remembers the status a handler sent. It unwraps for
// http.ResponseController, so flushing (SSE) and hijacking (WebSocket
// upgrades) reach the real writer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

var statusWriters = sync.Pool{New: func() any { return new(statusWriter) }}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe serves r and reports it to p.Observe. Hosts that name no app
// are reported as app "", so a flood of made-up hosts adds no labels.
func (p *Proxy) observe(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := statusWriters.Get().(*statusWriter)
	sw.ResponseWriter, sw.status = w, 0
	defer func() {
		status := sw.status
		if status == 0 {
			status = http.StatusOK // nothing written: net/http sends 200
		}
		sw.ResponseWriter = nil
		statusWriters.Put(sw)
		app := p.AppForHost(r.Host)
		if _, ok := p.table.Load().apps[app]; !ok {
			app = ""
		}
		p.Observe(app, status, time.Since(start))
	}()
	p.serve(sw, r)
}
