// Package fake has working in-memory stand-ins for dk's adapters, for unit
// tests of the core: a runtime whose web processes really listen on
// loopback, and a builder that "builds" by reading the source tree.
package fake

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dkhq/dk"
)

// Runtime is a map-backed dk.Runtime. A container of an image named in
// Crash exits at once; one named in Deaf runs but never listens; any other
// web container serves HTTP on 127.0.0.1, answering "<image> <GREETING>".
type Runtime struct {
	Crash map[string]bool
	Deaf  map[string]bool

	mu         sync.Mutex
	seq        int
	tags       map[string]string // tag → the reference it was made from
	containers map[string]*container
	// RemovedImages records RemoveImage calls.
	RemovedImages []string
}

type container struct {
	c    dk.Container
	env  dk.Config
	srv  *http.Server
	logs []string
}

var _ dk.Runtime = (*Runtime)(nil)

// Start implements dk.Runtime.
func (r *Runtime) Start(ctx context.Context, spec dk.ContainerSpec) (dk.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.containers == nil {
		r.containers = map[string]*container{}
	}
	r.seq++
	image := r.resolve(spec.Image)
	c := &container{env: spec.Env, c: dk.Container{
		ID: fmt.Sprintf("c%04d", r.seq), App: spec.App, Release: spec.Release, Process: spec.Process,
		Index: spec.Index, State: "running", StartedAt: time.Now(),
	}}
	switch {
	case spec.OneOff:
		// A one-off "runs" its command: it fails when the command says fail.
		c.c.State = "exited"
		c.logs = append(c.logs, "running: "+spec.Command)
		if strings.Contains(spec.Command, "fail") {
			c.c.ExitCode = 1
			c.logs = append(c.logs, "migration failed")
		}
	case r.Crash[image]:
		c.c.State = "exited"
		c.logs = append(c.logs, "boom: "+image+" crashed")
	case r.Deaf[image]:
		c.c.Addr = "127.0.0.1:1" // nothing listens there
		c.logs = append(c.logs, "listening somewhere else")
	case spec.Port > 0:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return dk.Container{}, err
		}
		body := image + " " + spec.Env["GREETING"]
		c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })}
		go c.srv.Serve(ln)
		c.c.Addr = ln.Addr().String()
		c.logs = append(c.logs, "listening on "+spec.Env["PORT"])
	}
	r.containers[c.c.ID] = c
	return c.c, nil
}

// Containers implements dk.Runtime.
func (r *Runtime) Containers(ctx context.Context, app string) ([]dk.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []dk.Container
	for _, c := range r.containers {
		if app == "" || c.c.App == app {
			out = append(out, c.c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Inspect implements dk.Runtime.
func (r *Runtime) Inspect(ctx context.Context, id string) (dk.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.containers[id]
	if !ok {
		return dk.Container{}, dk.Errorf(dk.ENOTFOUND, "container %s not found", id)
	}
	return c.c, nil
}

// Stop implements dk.Runtime.
func (r *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	delete(r.containers, id)
	r.mu.Unlock()
	if ok && c.srv != nil {
		c.srv.Close()
	}
	return nil
}

// Kill makes a container exit, as a crash would.
func (r *Runtime) Kill(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		c.c.State = "exited"
		if c.srv != nil {
			c.srv.Close()
		}
	}
}

// Env returns the environment a container was started with.
func (r *Runtime) Env(id string) dk.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.containers[id]; ok {
		return c.env
	}
	return nil
}

// Logs implements dk.Runtime.
func (r *Runtime) Logs(ctx context.Context, id string, tail int, follow bool, w dk.LogWriter) error {
	r.mu.Lock()
	c, ok := r.containers[id]
	var lines []string
	if ok {
		lines = append(lines, c.logs...)
	}
	r.mu.Unlock()
	if !ok {
		return dk.Errorf(dk.ENOTFOUND, "container %s not found", id)
	}
	if tail >= 0 && len(lines) > tail {
		lines = lines[len(lines)-tail:]
	}
	for _, l := range lines {
		w(time.Now(), l)
	}
	if follow {
		<-ctx.Done()
	}
	return nil
}

// RemoveImage implements dk.Runtime.
func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.RemovedImages = append(r.RemovedImages, ref)
	return nil
}

// Wait implements dk.Runtime: one-offs have exited already; others until ctx ends.
func (r *Runtime) Wait(ctx context.Context, id string) (int, error) {
	r.mu.Lock()
	c, ok := r.containers[id]
	r.mu.Unlock()
	if !ok {
		return 0, dk.Errorf(dk.ENOTFOUND, "container %s not found", id)
	}
	if c.c.State == "exited" {
		return c.c.ExitCode, nil
	}
	<-ctx.Done()
	return 0, ctx.Err()
}

// TagImage implements dk.Runtime: the tag names the image its source names.
func (r *Runtime) TagImage(ctx context.Context, src, dst string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tags == nil {
		r.tags = map[string]string{}
	}
	r.tags[dst] = r.resolve(src)
	return nil
}

// resolve follows tags to the built image's reference. Callers hold mu.
func (r *Runtime) resolve(ref string) string {
	for i := 0; i < 100; i++ {
		src, ok := r.tags[ref]
		if !ok {
			break
		}
		ref = src
	}
	return ref
}

// Images implements dk.Runtime: the tags made with TagImage and not removed.
func (r *Runtime) Images(ctx context.Context, app string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	removed := map[string]bool{}
	for _, ref := range r.RemovedImages {
		removed[ref] = true
	}
	var out []string
	for tag := range r.tags {
		if strings.Contains(tag, "/"+app+":") && !removed[tag] {
			out = append(out, tag)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Close stops every server.
func (r *Runtime) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		if c.srv != nil {
			c.srv.Close()
		}
	}
}

// Builder "builds" a source tree: it fails when the tree has a file named
// FAIL (with that file's content as the reason), and otherwise returns the
// first tag.
type Builder struct {
	mu     sync.Mutex
	Builds []dk.BuildRequest
}

// Build implements dk.Builder.
func (b *Builder) Build(ctx context.Context, req dk.BuildRequest) (string, error) {
	b.mu.Lock()
	b.Builds = append(b.Builds, req)
	b.mu.Unlock()
	if req.Output != nil {
		fmt.Fprintf(req.Output, "-----> [1/1] fake build\n")
	}
	if reason, err := os.ReadFile(filepath.Join(req.Dir, "FAIL")); err == nil {
		return "", dk.Errorf(dk.EFAILED, "build failed: %s", strings.TrimSpace(string(reason)))
	}
	return req.Tags[0], nil
}

// Tree writes files (slash-separated paths → contents) into a new temporary
// directory and returns it: a source tree for builds and detection.
func Tree(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}
