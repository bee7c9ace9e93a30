package builder_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/builder"
	"github.com/dkhq/dk/internal/dockertest"
	"github.com/dkhq/dk/internal/fake"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"
)

// MustBuilder returns a Docker client and a builder on its engine, with the
// local busybox base image in place.
func MustBuilder(tb testing.TB) (*client.Client, *builder.Client) {
	tb.Helper()
	cli := dockertest.Client(tb)
	dockertest.Busybox(tb, cli)
	b, err := builder.New(tb.Context(), cli)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return cli, b
}

func random() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// MustTag returns a fresh image reference and removes the image it names
// when the test ends.
func MustTag(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	ref := "dk-test-builder/" + random() + ":v1"
	tb.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return ref
}

// output is a build's progress, safe to read while the build writes it. It
// closes seen when a written line contains want.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func newOutput(want string) *output { return &output{want: want, seen: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.want != "" && strings.Contains(string(p), o.want) {
		o.want = ""
		close(o.seen)
	}
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

const appDockerfile = `FROM dk-test/busybox
COPY hello.txt /app/hello.txt
RUN echo "building $(cat /app/hello.txt)" && echo built > /app/built
ENV GREETING=hello
CMD ["httpd", "-f", "-p", "5000"]
`

func TestBuild(t *testing.T) {
	cli, b := MustBuilder(t)
	ctx := t.Context()
	tag1, tag2 := MustTag(t, cli), MustTag(t, cli)
	dir := fake.Tree(t, map[string]string{"Dockerfile": appDockerfile, "hello.txt": "world " + random()})

	out := newOutput("")
	id, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{tag1, tag2}, Output: out})
	if err != nil {
		t.Fatalf("Build: %v\n%s", err, out)
	}
	for _, tag := range []string{tag1, tag2} {
		img, err := cli.ImageInspect(ctx, tag)
		if err != nil {
			t.Fatalf("inspect %s: %v", tag, err)
		}
		if img.ID != id {
			t.Errorf("%s is %s, Build returned %s", tag, img.ID, id)
		}
		if diff := cmp.Diff([]string{"httpd", "-f", "-p", "5000"}, []string(img.Config.Cmd)); diff != "" {
			t.Errorf("Cmd (-want +got):\n%s", diff)
		}
		if !slices.Contains(img.Config.Env, "GREETING=hello") {
			t.Errorf("Env = %q, want GREETING=hello in it", img.Config.Env)
		}
	}
	for _, want := range []string{
		"-----> [1/3] FROM docker.io/dk-test/busybox\n",
		"-----> [2/3] COPY hello.txt /app/hello.txt\n",
		"-----> [3/3] RUN echo \"building $(cat /app/hello.txt)\" && echo built > /app/built\n",
		"\n       building world ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "[internal]") {
		t.Errorf("output shows BuildKit's internal steps:\n%s", out)
	}

	t.Run("Cached", func(t *testing.T) {
		tag := MustTag(t, cli)
		out := newOutput("")
		id2, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{tag}, Output: out})
		if err != nil {
			t.Fatalf("Build: %v\n%s", err, out)
		}
		if id2 != id {
			t.Errorf("rebuild of the same tree gave %s, first build %s", id2, id)
		}
		if want := "RUN echo \"building $(cat /app/hello.txt)\" && echo built > /app/built\n       CACHED\n"; !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	})

	t.Run("DockerIgnore", func(t *testing.T) {
		dir := fake.Tree(t, map[string]string{
			"Dockerfile":    "FROM dk-test/busybox\nCOPY . /src\nRUN ls -a /src\n",
			".dockerignore": "secret.txt\n",
			"secret.txt":    "s3cret",
			"hello.txt":     random(),
		})
		out := newOutput("")
		if _, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}, Output: out}); err != nil {
			t.Fatalf("Build: %v\n%s", err, out)
		}
		if !strings.Contains(out.String(), "       hello.txt\n") || strings.Contains(out.String(), "secret.txt") {
			t.Errorf("want hello.txt and not secret.txt in the image:\n%s", out)
		}
	})

	t.Run("NilOutput", func(t *testing.T) {
		if _, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestBuildDockerfile(t *testing.T) {
	cli, b := MustBuilder(t)
	ctx := t.Context()

	t.Run("Content", func(t *testing.T) {
		// The tree's own Dockerfile would fail: the content wins.
		dir := fake.Tree(t, map[string]string{"Dockerfile": "FROM dk-test/nope\n", "hello.txt": "world"})
		tag := MustTag(t, cli)
		out := newOutput("")
		id, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, DockerfileContent: []byte(appDockerfile), Tags: []string{tag}, Output: out})
		if err != nil {
			t.Fatalf("Build: %v\n%s", err, out)
		}
		img, err := cli.ImageInspect(ctx, tag)
		if err != nil || img.ID != id {
			t.Fatalf("inspect %s: %v (id %s, want %s)", tag, err, img.ID, id)
		}
	})

	t.Run("Path", func(t *testing.T) {
		dir := fake.Tree(t, map[string]string{"deploy/Dockerfile.web": appDockerfile, "hello.txt": "world"})
		if _, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Dockerfile: "deploy/Dockerfile.web", Tags: []string{MustTag(t, cli)}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("SyntaxLineIsNotPulled", func(t *testing.T) {
		dir := fake.Tree(t, map[string]string{"Dockerfile": "# syntax=docker/dockerfile:1\n" + appDockerfile, "hello.txt": "world"})
		if _, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrMissing", func(t *testing.T) {
		dir := fake.Tree(t, map[string]string{"hello.txt": "world"})
		_, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir})
		assertError(t, err, dk.EFAILED, "build failed: no Dockerfile in the source tree")
	})

	t.Run("ErrOutsideTree", func(t *testing.T) {
		dir := fake.Tree(t, map[string]string{"hello.txt": "world"})
		_, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Dockerfile: "../Dockerfile"})
		assertError(t, err, dk.EINVALID, `invalid Dockerfile path "../Dockerfile": it must be inside the source tree`)
	})
}

func assertError(tb testing.TB, err error, code, msg string) {
	tb.Helper()
	if got := dk.ErrorCode(err); got != code {
		tb.Errorf("error code = %q (%v), want %q", got, err, code)
	}
	if got := dk.ErrorMessage(err); got != msg {
		tb.Errorf("error message = %q, want %q", got, msg)
	}
}

func TestBuildFails(t *testing.T) {
	cli, b := MustBuilder(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name       string
		dockerfile string
		msg        string // the error message
		out        string // in the output
	}{
		{
			name:       "ErrRun",
			dockerfile: "FROM dk-test/busybox\nRUN echo oops >&2; exit 3\n",
			msg:        "build failed: executor failed running [/bin/sh -c echo oops >&2; exit 3]: exit code: 3",
			out:        "-----> [2/2] RUN echo oops >&2; exit 3\n       oops\n !     executor failed running [/bin/sh -c echo oops >&2; exit 3]: exit code: 3\n",
		},
		{
			name:       "ErrSyntax",
			dockerfile: "FROM dk-test/busybox\nFOO bar\n",
			msg:        "build failed: dockerfile parse error line 2: unknown instruction: FOO",
		},
		{
			name:       "ErrCopy",
			dockerfile: "FROM dk-test/busybox\nCOPY missing.txt /app/\n",
			msg:        `build failed: "/missing.txt" not found: not found`,
			out:        " !     \"/missing.txt\" not found: not found\n",
		},
		{
			name:       "ErrBaseImage",
			dockerfile: "FROM dk-test/nope-" + "x" + "\nRUN true\n",
			msg:        "build failed: base image dk-test/nope-x is not in the local Docker engine (dk never pulls images: build or import it there first)",
		},
		{
			name:       "ErrBaseImageArg",
			dockerfile: "ARG BASE=dk-test/nope-y\nFROM $BASE AS base\nFROM base\nRUN true\n",
			msg:        "build failed: base image dk-test/nope-y is not in the local Docker engine (dk never pulls images: build or import it there first)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fake.Tree(t, map[string]string{"Dockerfile": tc.dockerfile})
			out := newOutput("")
			start := time.Now()
			_, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}, Output: out})
			assertError(t, err, dk.EFAILED, tc.msg)
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, out)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("failing took %v", d)
			}
		})
	}
}

// BuildKit's own report of a missing base image, for the cases dk's check
// before the build does not look at (COPY --from an image).
func TestBuildFailsBaseImageFromBuildKit(t *testing.T) {
	cli, b := MustBuilder(t)
	dir := fake.Tree(t, map[string]string{"Dockerfile": "FROM dk-test/busybox\nCOPY --from=dk-test/nope-z /x /x\n"})
	_, err := b.Build(t.Context(), dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}})
	assertError(t, err, dk.EFAILED, "build failed: base image docker.io/dk-test/nope-z:latest is not in the local Docker engine (dk never pulls images: build or import it there first)")
}

func TestBuildCancel(t *testing.T) {
	cli, b := MustBuilder(t)
	dir := fake.Tree(t, map[string]string{"Dockerfile": "FROM dk-test/busybox\nRUN echo started " + random() + " && sleep 60\n"})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := newOutput("       started ")
	done := make(chan error, 1)
	go func() {
		_, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}, Output: out})
		done <- err
	}()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("Build returned before sleeping: %v\n%s", err, out)
	case <-time.After(30 * time.Second):
		t.Fatalf("the RUN step never started:\n%s", out)
	}
	cancel()
	cancelled := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Build = %v, want context.Canceled", err)
		}
		if d := time.Since(cancelled); d > 10*time.Second {
			t.Errorf("Build returned %v after cancel", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("Build still running 30s after cancel:\n%s", out)
	}
}

// Cache mounts are per app: one app's cache is not another's.
func TestBuildCacheMountPerApp(t *testing.T) {
	cli, b := MustBuilder(t)
	ctx := t.Context()
	run := random() // cache mounts outlive the test: keep apps unique
	build := func(app string) string {
		t.Helper()
		dir := fake.Tree(t, map[string]string{
			"nonce": random(),
			"Dockerfile": "FROM dk-test/busybox\nCOPY nonce /nonce\n" +
				"RUN --mount=type=cache,target=/cache echo $(cat /nonce) >> /cache/log && echo \"cache lines: $(wc -l < /cache/log)\"\n",
		})
		out := newOutput("")
		if _, err := b.Build(ctx, dk.BuildRequest{App: app, Dir: dir, Tags: []string{MustTag(t, cli)}, Output: out}); err != nil {
			t.Fatalf("Build %s: %v\n%s", app, err, out)
		}
		return out.String()
	}
	for _, step := range []struct{ app, want string }{
		{"a" + run, "cache lines: 1"},
		{"a" + run, "cache lines: 2"},
		{"b" + run, "cache lines: 1"},
	} {
		if out := build(step.app); !strings.Contains(out, step.want) {
			t.Errorf("build of %s: output lacks %q:\n%s", step.app, step.want, out)
		}
	}
}

func TestPrune(t *testing.T) {
	cli, b := MustBuilder(t)
	ctx := t.Context()
	dir := fake.Tree(t, map[string]string{"Dockerfile": "FROM dk-test/busybox\nRUN echo " + random() + " > /f\n"})
	if _, err := b.Build(ctx, dk.BuildRequest{App: "myapp", Dir: dir, Tags: []string{MustTag(t, cli)}}); err != nil {
		t.Fatal(err)
	}
	before := cacheSize(t, cli)
	// Keeping more than the cache holds must remove nothing: were keepBytes
	// lost on the way, BuildKit would prune every unused record.
	if err := b.Prune(ctx, before+1<<30); err != nil {
		t.Fatal(err)
	}
	if after := cacheSize(t, cli); after < before/2 {
		t.Errorf("build cache went from %d to %d bytes with keepBytes above its size", before, after)
	}
}

func cacheSize(tb testing.TB, cli *client.Client) int64 {
	tb.Helper()
	du, err := cli.DiskUsage(tb.Context(), types.DiskUsageOptions{Types: []types.DiskUsageObject{types.BuildCacheObject}})
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, r := range du.BuildCache {
		n += r.Size
	}
	return n
}

func TestNewUnreachable(t *testing.T) {
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+filepath.Join(t.TempDir(), "nope.sock")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	start := time.Now()
	_, err = builder.New(t.Context(), cli)
	if err == nil || !strings.Contains(err.Error(), "BuildKit in the Docker engine is unreachable") {
		t.Errorf("New = %v, want unreachable", err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("New took %v to fail", d)
	}
}
