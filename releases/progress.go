package releases

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dkhq/dk"
)

// progress writes Heroku-style lines to the pusher:
//
//	-----> step
//	       detail
//	 !     warning
type progress struct {
	mu sync.Mutex
	w  io.Writer
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		w = io.Discard
	}
	return &progress{w: w}
}

func (p *progress) write(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, _ = io.WriteString(p.w, s)
}

func (p *progress) Step(format string, args ...any) {
	p.write("-----> " + fmt.Sprintf(format, args...) + "\n")
}

func (p *progress) Printf(format string, args ...any) {
	p.write(fmt.Sprintf(format, args...) + "\n")
}

func (p *progress) Warn(format string, args ...any) {
	p.write(" !     " + fmt.Sprintf(format, args...) + "\n")
}

// Timings prints each stage's duration on one line.
func (p *progress) Timings(ts []dk.Timing) {
	if len(ts) == 0 {
		return
	}
	p.write("       timings: " + FormatTimings(ts) + "\n")
}

// FormatTimings renders stage timings as "receive 0.1s, build 2.3s, …".
func FormatTimings(ts []dk.Timing) string {
	parts := make([]string, 0, len(ts))
	for _, t := range ts {
		parts = append(parts, fmt.Sprintf("%s %s", t.Stage, fmtDuration(t.Duration)))
	}
	return strings.Join(parts, ", ")
}

func fmtDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

// Detail returns a writer whose lines pass through unchanged (the builder
// formats its own step lines).
func (p *progress) Detail() io.Writer { return lineWriter{p} }

type lineWriter struct{ p *progress }

func (l lineWriter) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	s := string(b)
	if !bytes.HasSuffix(b, []byte("\n")) {
		s += "\n"
	}
	l.p.write(s)
	return len(b), nil
}
