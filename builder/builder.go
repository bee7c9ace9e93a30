// Package builder turns a source tree into an image with the BuildKit that
// is embedded in the Docker engine. It implements dk.Builder.
//
// There is no buildkitd: the BuildKit control API is reached by hijacking
// the Docker API's /grpc endpoint (HTTP/2 cleartext), and the build session
// (which serves the build context to BuildKit) by hijacking /session. The
// result is exported with the "moby" exporter straight into Docker's image
// store. Nothing is ever pulled: base images must exist in the local engine.
package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dkhq/dk"
	"github.com/docker/docker/client"
	bkclient "github.com/moby/buildkit/client"
	"github.com/tonistiigi/fsutil"
)

// Client builds images with the Docker engine's embedded BuildKit.
// It is safe for concurrent use.
type Client struct {
	bk     *bkclient.Client
	docker *client.Client
}

var _ dk.Builder = (*Client)(nil)

// connectTimeout bounds the ListWorkers call New makes to check BuildKit answers.
const connectTimeout = 10 * time.Second

// New connects to the BuildKit inside the Docker engine behind docker.
// ctx must be long-lived: gRPC redials with it whenever the connection drops,
// and cancelling it makes the Client unusable.
func New(ctx context.Context, docker *client.Client) (*Client, error) {
	bk, err := bkclient.New(ctx, "",
		bkclient.WithContextDialer(func(context.Context, string) (net.Conn, error) {
			return docker.DialHijack(ctx, "/grpc", "h2c", nil)
		}),
		bkclient.WithSessionDialer(func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return docker.DialHijack(ctx, "/session", proto, meta)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("connect to BuildKit in the Docker engine: %w", err)
	}
	lctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	workers, err := bk.ListWorkers(lctx)
	if err == nil && len(workers) == 0 {
		err = errors.New("no BuildKit worker")
	}
	if err != nil {
		bk.Close()
		return nil, fmt.Errorf("BuildKit in the Docker engine is unreachable (is the engine running, and new enough to embed BuildKit?): %w", err)
	}
	return &Client{bk: bk, docker: docker}, nil
}

// Close closes the connection to BuildKit.
func (c *Client) Close() error {
	return c.bk.Close()
}

// Build builds req with the Dockerfile frontend, tags the image with
// req.Tags in the Docker engine, and returns the image ID. Progress goes to
// req.Output as Heroku-style lines. A build that fails because of the user's
// source (bad Dockerfile, failing RUN, missing base image) returns a
// dk.EFAILED error; a cancelled ctx returns ctx's error.
func (c *Client) Build(ctx context.Context, req dk.BuildRequest) (string, error) {
	if req.Dir == "" {
		return "", dk.Errorf(dk.EINVALID, "build: no build context directory")
	}
	contextFS, err := fsutil.NewFS(req.Dir)
	if err != nil {
		return "", fmt.Errorf("build context %s: %w", req.Dir, err)
	}
	dockerfileDir, dockerfileName, content, cleanup, err := dockerfile(req)
	if err != nil {
		return "", err
	}
	defer cleanup()
	// BuildKit's "local" resolve mode prefers local images but pulls the
	// missing ones: refuse before it can.
	if err := checkBaseImages(ctx, c.docker, content); err != nil {
		return "", err
	}
	dockerfileFS, err := fsutil.NewFS(dockerfileDir)
	if err != nil {
		return "", fmt.Errorf("dockerfile dir %s: %w", dockerfileDir, err)
	}

	attrs := map[string]string{
		"filename": dockerfileName,
		// Resolve FROM in the engine's image store, by tag. ("local" still
		// pulls what is missing: checkBaseImages refuses that beforehand.)
		"image-resolve-mode": "local",
		// Any value skips forwarding to the frontend named by a
		// "# syntax=" line, which would be pulled.
		"cmdline": "dk",
	}
	if req.App != "" {
		attrs["build-arg:BUILDKIT_CACHE_MOUNT_NS"] = "dk-" + req.App
	}
	opt := bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts: map[string]fsutil.FS{
			"context":    contextFS,
			"dockerfile": dockerfileFS,
		},
		Exports: []bkclient.ExportEntry{{
			Type:  "moby",
			Attrs: map[string]string{"name": strings.Join(req.Tags, ",")},
		}},
	}

	out := req.Output
	if out == nil {
		out = io.Discard
	}
	p := newProgress(out)
	ch := make(chan *bkclient.SolveStatus)
	rendered := make(chan struct{})
	go func() {
		defer close(rendered)
		for s := range ch {
			p.update(s)
		}
		p.flush()
	}()
	resp, err := c.bk.Solve(ctx, nil, opt, ch) // closes ch
	<-rendered
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		return "", buildError(err, p.failure())
	}
	id := resp.ExporterResponse["containerimage.digest"]
	if id == "" {
		return "", fmt.Errorf("build: BuildKit returned no image ID (exporter response %v)", resp.ExporterResponse)
	}
	return id, nil
}

// dockerfile returns the directory holding the Dockerfile to build, its
// file name there, its content, and a cleanup to call when the build is over.
func dockerfile(req dk.BuildRequest) (dir, name string, content []byte, cleanup func(), err error) {
	if req.DockerfileContent != nil {
		dir, err := os.MkdirTemp("", "dk-dockerfile-")
		if err != nil {
			return "", "", nil, nil, fmt.Errorf("dockerfile: %w", err)
		}
		cleanup := func() { os.RemoveAll(dir) }
		if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), req.DockerfileContent, 0o644); err != nil {
			cleanup()
			return "", "", nil, nil, fmt.Errorf("dockerfile: %w", err)
		}
		return dir, "Dockerfile", req.DockerfileContent, cleanup, nil
	}
	rel := req.Dockerfile
	if rel == "" {
		rel = "Dockerfile"
	}
	rel = filepath.Clean(filepath.FromSlash(rel))
	if filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return "", "", nil, nil, dk.Errorf(dk.EINVALID, "invalid Dockerfile path %q: it must be inside the source tree", req.Dockerfile)
	}
	path := filepath.Join(req.Dir, rel)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return "", "", nil, nil, dk.Errorf(dk.EFAILED, "build failed: no %s in the source tree", filepath.ToSlash(rel))
	}
	content, err = os.ReadFile(path)
	if err != nil {
		return "", "", nil, nil, fmt.Errorf("dockerfile: %w", err)
	}
	return filepath.Dir(path), filepath.Base(path), content, func() {}, nil
}

// Prune removes BuildKit cache records that are not in use, oldest first,
// until the cache takes at most keepBytes (0 removes all unused records).
func (c *Client) Prune(ctx context.Context, keepBytes int64) error {
	// ReservedSpace is field 4 of PruneRequest, which BuildKit before 0.17
	// (Docker 20.10 embeds ~0.8) called keepBytes: same wire, same meaning.
	if err := c.bk.Prune(ctx, nil, bkclient.WithKeepOpt(0, keepBytes, 0, 0)); err != nil {
		return fmt.Errorf("prune build cache: %w", err)
	}
	return nil
}
