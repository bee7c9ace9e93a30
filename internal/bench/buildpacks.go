package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/builder"
	"github.com/dkhq/dk/buildpacks"
	"github.com/dkhq/dk/internal/dockertest"
	"github.com/docker/docker/client"
)

var buildpackBench = flag.Bool("buildpacks", true, "also measure buildpack builds: cold vs warm, with vs without cache mounts, and image sizes")

// benchBuildpacks measures the Go buildpack's generated Dockerfile with the
// BuildKit in the engine: a cold build, then a rebuild after a one-line
// change, beside the same Dockerfile with its cache mounts removed. It also
// builds one sample per buildpack and reports the image sizes. Images are
// tagged INSTANCE/… so cleanup removes them.
func benchBuildpacks(ctx context.Context, cli *client.Client, instance string) error {
	fmt.Printf("\nbuildpacks — Go sample built by BuildKit in the engine, with the generated Dockerfile's cache mounts vs the same Dockerfile without them\n\n")
	if err := dockertest.EnsureBuildpackImages(ctx, cli, os.Stderr); err != nil {
		return err
	}
	bk, err := builder.New(ctx, cli)
	if err != nil {
		return err
	}
	defer bk.Close()
	detector := buildpacks.Detector{Images: dockertest.BuildpackImages()}
	nonce := make([]byte, 6)
	_, _ = rand.Read(nonce)
	run := hex.EncodeToString(nonce) // fresh source and cache namespace: nothing warm from earlier runs

	type result struct{ cold, warm time.Duration }
	build := func(app string, strip bool) (result, error) {
		var r result
		dir, err := os.MkdirTemp("", "dkbench-go-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(dir)
		files := map[string]string{"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": fmt.Sprintf(goSample, run, "hello")}
		if err := writeTree(dir, files); err != nil {
			return r, err
		}
		plan, err := detector.Detect(dir, nil)
		if err != nil {
			return r, err
		}
		df := plan.DockerfileContent
		if strip {
			df = cacheMountRE.ReplaceAll(df, nil)
		}
		for i, d := range []*time.Duration{&r.cold, &r.warm} {
			if i == 1 { // the one-line change
				if err := writeTree(dir, map[string]string{"main.go": fmt.Sprintf(goSample, run, "hello again")}); err != nil {
					return r, err
				}
			}
			t0 := time.Now()
			if _, err := bk.Build(ctx, dk.BuildRequest{App: app, Dir: dir, DockerfileContent: df,
				Tags: []string{fmt.Sprintf("%s/%s:%d", instance, app, i)}, Output: io.Discard}); err != nil {
				return r, fmt.Errorf("build %s: %w", app, err)
			}
			*d = time.Since(t0)
		}
		return r, nil
	}
	with, err := build("bp-go-cache-"+run, false)
	if err != nil {
		return err
	}
	without, err := build("bp-go-nocache-"+run, true)
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %14s %18s   %s\n", "figure", "cache mounts", "no cache mounts", "ratio")
	fmt.Printf("%-40s %14s %18s   %.2fx\n", "cold build", round(with.cold), round(without.cold), float64(with.cold)/float64(without.cold))
	fmt.Printf("%-40s %14s %18s   %.2fx\n", "warm rebuild after a one-line change", round(with.warm), round(without.warm), float64(with.warm)/float64(without.warm))
	fmt.Printf("%-40s %14.2fx %17.2fx\n", "warm / cold", float64(with.warm)/float64(with.cold), float64(without.warm)/float64(without.cold))

	// Image sizes: one sample per buildpack, FROM the stand-ins.
	samples := map[string]map[string]string{
		"go":     {"go.mod": "module example.com/hello\n\ngo 1.22\n", "main.go": fmt.Sprintf(goSample, run, "hello")},
		"node":   {"package.json": `{"name":"hello","scripts":{"start":"node server.js"}}`, "server.js": "require('http').createServer((q, s) => s.end('hello')).listen(process.env.PORT)\n"},
		"python": {"requirements.txt": "# none\n", "app.py": "print('hello')\n"},
		"static": {"public/index.html": "<h1>hello</h1>\n"},
	}
	names := make([]string, 0, len(samples))
	for n := range samples {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Printf("\nimage size per buildpack (hello-world sample, FROM the stand-ins: %s)\n", strings.Join(standIns(), ", "))
	for _, name := range names {
		dir, err := os.MkdirTemp("", "dkbench-size-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := writeTree(dir, samples[name]); err != nil {
			return err
		}
		plan, err := detector.Detect(dir, nil)
		if err != nil {
			return err
		}
		tag := fmt.Sprintf("%s/size-%s:1", instance, name)
		if _, err := bk.Build(ctx, dk.BuildRequest{App: "bp-size-" + run, Dir: dir, DockerfileContent: plan.DockerfileContent, Tags: []string{tag}, Output: io.Discard}); err != nil {
			return fmt.Errorf("build %s sample: %w", name, err)
		}
		img, err := cli.ImageInspect(ctx, tag)
		if err != nil {
			return err
		}
		base, err := cli.ImageInspect(ctx, lastFrom(plan.DockerfileContent))
		if err != nil {
			return err
		}
		fmt.Printf("  %-8s %8.1f MB   (runtime base %s %.1f MB + app %.1f MB)\n", name, mb(img.Size), lastFrom(plan.DockerfileContent), mb(base.Size), mb(img.Size-base.Size))
	}
	return nil
}

// goSample is the Go sample app; %s are a per-run nonce and the greeting.
const goSample = `package main

import (
	"fmt"
	"net/http"
	"os"
)

// run %s

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, %q)
	})
	http.ListenAndServe(":"+os.Getenv("PORT"), nil)
}
`

var (
	cacheMountRE = regexp.MustCompile(`--mount=type=cache,target=\S+ `)
	fromRE       = regexp.MustCompile(`(?m)^FROM (\S+)`)
)

func lastFrom(df []byte) string {
	m := fromRE.FindAllSubmatch(df, -1)
	return string(m[len(m)-1][1])
}

func standIns() []string {
	var out []string
	for k, v := range dockertest.BuildpackImages() {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func writeTree(dir string, files map[string]string) error {
	for name, data := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			return err
		}
	}
	return nil
}
