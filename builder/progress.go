package builder

import (
	"bytes"
	"context"
	"io"
	"strings"

	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// Heroku-style output prefixes.
const (
	stepPrefix   = "-----> "
	detailPrefix = "       "
	errorPrefix  = " !     "
)

// progress renders BuildKit's solve status as Heroku-style lines: one
// "-----> " line per step as it starts, its output indented by seven
// spaces, and " !     " before errors. It writes whole lines only.
type progress struct {
	w        io.Writer
	vertexes map[digest.Digest]*vertex
	order    []digest.Digest // vertexes with a pending partial line, in first-seen order
	failed   *failedStep     // the first step that failed, for the build's error message
}

// failedStep is a step's name and its error.
type failedStep struct{ name, err string }

type vertex struct {
	name    string
	shown   bool // the step line was written
	cached  bool // the CACHED marker was written
	failed  bool // the error was written
	partial []byte
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, vertexes: map[digest.Digest]*vertex{}}
}

// internal reports whether a step is BuildKit's bookkeeping (loading the
// Dockerfile, the context, image metadata) rather than the user's.
func internal(name string) bool {
	return strings.HasPrefix(name, "[internal]") || strings.HasPrefix(name, "[auth]")
}

func (p *progress) vertex(d digest.Digest) *vertex {
	v, ok := p.vertexes[d]
	if !ok {
		v = &vertex{}
		p.vertexes[d] = v
		p.order = append(p.order, d)
	}
	return v
}

func (p *progress) line(prefix, s string) {
	_, _ = io.WriteString(p.w, prefix+s+"\n")
}

func (p *progress) show(v *vertex) {
	if !v.shown {
		v.shown = true
		p.line(stepPrefix, v.name)
	}
}

func (p *progress) update(s *bkclient.SolveStatus) {
	for _, bv := range s.Vertexes {
		v := p.vertex(bv.Digest)
		if bv.Name != "" {
			v.name = bv.Name
		}
		started := bv.Started != nil || bv.Completed != nil || bv.Cached
		if started && !internal(v.name) {
			p.show(v)
		}
		if bv.Cached && !v.cached {
			v.cached = true
			if v.shown {
				p.line(detailPrefix, "CACHED")
			}
		}
		// A step cancelled because another failed (or the build was
		// cancelled) says nothing new.
		if bv.Error != "" && !v.failed && !strings.HasSuffix(bv.Error, context.Canceled.Error()) {
			v.failed = true
			if p.failed == nil {
				p.failed = &failedStep{name: v.name, err: bv.Error}
			}
			p.flushVertex(v)
			p.show(v)
			p.line(errorPrefix, oneLine(bv.Error))
		}
		if bv.Completed != nil {
			p.flushVertex(v)
		}
	}
	for _, l := range s.Logs {
		v := p.vertex(l.Vertex)
		p.show(v)
		v.partial = append(v.partial, l.Data...)
		for {
			i := bytes.IndexByte(v.partial, '\n')
			if i < 0 {
				break
			}
			p.log(v.partial[:i])
			v.partial = v.partial[i+1:]
		}
	}
	for _, w := range s.Warnings {
		p.line(detailPrefix, "WARNING: "+oneLine(string(w.Short)))
	}
}

// log writes one line of a step's output, as a terminal would show it:
// only what follows the last carriage return.
func (p *progress) log(b []byte) {
	b = bytes.TrimSuffix(b, []byte("\r"))
	if i := bytes.LastIndexByte(b, '\r'); i >= 0 {
		b = b[i+1:]
	}
	p.line(detailPrefix, string(b))
}

func (p *progress) flushVertex(v *vertex) {
	if len(v.partial) > 0 {
		p.log(v.partial)
		v.partial = nil
	}
}

// flush writes what remains of partial lines.
func (p *progress) flush() {
	for _, d := range p.order {
		p.flushVertex(p.vertexes[d])
	}
}

// failure returns the first step that failed, or nil.
func (p *progress) failure() *failedStep { return p.failed }

// oneLine returns the first non-empty line of s, trimmed.
func oneLine(s string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
