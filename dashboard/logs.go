package dashboard

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"
)

// heartbeat keeps idle streams open through proxies and notices gone
// browsers.
const heartbeat = 20 * time.Second

// liveLogs streams an app's new log lines as Server-Sent Events, one line
// per event, until the browser goes away. The page already shows the
// recent lines, so the stream starts with what comes next.
func (s *Server) liveLogs(w http.ResponseWriter, r *http.Request) {
	a, err := s.app(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	sw := &sseWriter{w: w, flush: rc.Flush}
	if err := sw.comment("streaming " + a.Name); err != nil {
		return
	}
	go func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if sw.comment("") != nil {
					cancel()
					return
				}
			}
		}
	}()
	if err := s.Manager.Logs(ctx, a.Name, 0, true, sw); err != nil && ctx.Err() == nil {
		s.logger().Warn("dashboard live logs", "app", a.Name, "err", err)
	}
}

// sseWriter turns lines into "data:" events and flushes each write.
type sseWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	flush   func() error
	partial []byte
}

func (s *sseWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := append(s.partial, p...)
	var out bytes.Buffer
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimRight(buf[:i], "\r")
		line = bytes.ReplaceAll(line, []byte("\r"), nil)
		out.WriteString("data: ")
		out.Write(line)
		out.WriteString("\n\n")
		buf = buf[i+1:]
	}
	s.partial = append(s.partial[:0:0], buf...)
	if out.Len() == 0 {
		return len(p), nil
	}
	if _, err := s.w.Write(out.Bytes()); err != nil {
		return 0, err
	}
	return len(p), s.flush()
}

func (s *sseWriter) comment(c string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write([]byte(": " + c + "\n\n")); err != nil {
		return err
	}
	return s.flush()
}
