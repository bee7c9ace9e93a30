package builder

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkclient "github.com/moby/buildkit/client"
	digest "github.com/opencontainers/go-digest"
)

// writes records each Write.
type writes []string

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, string(p))
	return len(p), nil
}

func TestProgress(t *testing.T) {
	now := time.Now()
	started := &bkclient.Vertex{Started: &now}
	v := func(d, name string, mod func(*bkclient.Vertex)) *bkclient.Vertex {
		bv := &bkclient.Vertex{Digest: digestOf(d), Name: name}
		if mod != nil {
			mod(bv)
		}
		return bv
	}
	start := func(bv *bkclient.Vertex) { bv.Started = started.Started }
	done := func(bv *bkclient.Vertex) { bv.Started, bv.Completed = started.Started, started.Started }
	logs := func(d string, data ...string) []*bkclient.VertexLog {
		var out []*bkclient.VertexLog
		for _, s := range data {
			out = append(out, &bkclient.VertexLog{Vertex: digestOf(d), Data: []byte(s)})
		}
		return out
	}

	var w writes
	p := newProgress(&w)
	for _, s := range []*bkclient.SolveStatus{
		{Vertexes: []*bkclient.Vertex{v("ctx", "[internal] load build context", start), v("from", "[1/3] FROM docker.io/library/base", nil)}},
		{Vertexes: []*bkclient.Vertex{v("ctx", "[internal] load build context", done), v("from", "[1/3] FROM docker.io/library/base", func(bv *bkclient.Vertex) { done(bv); bv.Cached = true })}},
		{Vertexes: []*bkclient.Vertex{v("run", "[2/3] RUN make", start)}, Logs: logs("run", "hel", "lo\nwor", "ld\r\nprogress 10%\rprogress 100%\n", "no newline")},
		{Vertexes: []*bkclient.Vertex{v("run", "[2/3] RUN make", done)}},
		{Vertexes: []*bkclient.Vertex{v("test", "[3/3] RUN test", start)}, Logs: logs("test", "FAIL: x\n", "partial")},
		{Vertexes: []*bkclient.Vertex{v("test", "[3/3] RUN test", func(bv *bkclient.Vertex) { done(bv); bv.Error = "exit code: 1\nmore" })}},
		{Vertexes: []*bkclient.Vertex{v("other", "[internal] other", func(bv *bkclient.Vertex) { done(bv); bv.Error = "context canceled" })}},
	} {
		p.update(s)
	}
	p.flush()
	want := writes{
		"-----> [1/3] FROM docker.io/library/base\n",
		"       CACHED\n",
		"-----> [2/3] RUN make\n",
		"       hello\n",
		"       world\n",
		"       progress 100%\n",
		"       no newline\n",
		"-----> [3/3] RUN test\n",
		"       FAIL: x\n",
		"       partial\n",
		" !     exit code: 1\n",
	}
	if diff := cmp.Diff(want, w); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(&failedStep{name: "[3/3] RUN test", err: "exit code: 1\nmore"}, p.failure(), cmp.AllowUnexported(failedStep{})); diff != "" {
		t.Errorf("failure (-want +got):\n%s", diff)
	}
}

func TestImageStep(t *testing.T) {
	for name, want := range map[string]string{
		"[internal] load metadata for docker.io/library/x:latest": "docker.io/library/x:latest",
		"[1/3] FROM docker.io/library/x":                          "docker.io/library/x",
		"[stage-0 1/2] FROM docker.io/library/x":                  "docker.io/library/x",
		"FROM docker.io/dk-test/nope:latest":                      "docker.io/dk-test/nope:latest",
		"[2/3] RUN echo FROM x":                                   "",
		"[internal] load build context":                           "",
	} {
		if got := imageStep(name); got != want {
			t.Errorf("imageStep(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestReason(t *testing.T) {
	err := errors.New("failed to solve: failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error line 2: unknown instruction: FOO\nstack")
	if got, want := reason(err), "dockerfile parse error line 2: unknown instruction: FOO"; got != want {
		t.Errorf("reason = %q, want %q", got, want)
	}
}

func digestOf(s string) digest.Digest { return digest.FromString(s) }
