package buildpacks_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/buildpacks"
	"github.com/dkhq/dk/internal/fake"
	"github.com/google/go-cmp/cmp"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// MustDetect detects files' plan and fails the test on an error.
func MustDetect(tb testing.TB, d buildpacks.Detector, files map[string]string, cfg dk.Config) *dk.BuildPlan {
	tb.Helper()
	plan, err := d.Detect(fake.Tree(tb, files), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return plan
}

const (
	goMod    = "module example.com/hello\n\ngo 1.22.3\n"
	goMain   = "package main\n\nfunc main() {}\n"
	pkgJSON  = `{"name":"hello","scripts":{"start":"node server.js"}}`
	reqsTxt  = "# no dependencies\n"
	indexHTM = "<h1>hi</h1>\n"
)

func TestDetectOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"DockerfileFirst", map[string]string{"Dockerfile": "FROM x\n", "go.mod": goMod, "main.go": goMain, "package.json": pkgJSON}, "dockerfile"},
		{"GoBeforeNode", map[string]string{"go.mod": goMod, "main.go": goMain, "package.json": pkgJSON, "server.js": ""}, "go"},
		{"NodeBeforePython", map[string]string{"package.json": pkgJSON, "requirements.txt": reqsTxt, "app.py": ""}, "node"},
		{"PythonRequirements", map[string]string{"requirements.txt": reqsTxt, "app.py": "", "index.html": indexHTM}, "python"},
		{"PythonPyproject", map[string]string{"pyproject.toml": "[project]\nname='x'\n", "main.py": ""}, "python"},
		{"PythonPipfile", map[string]string{"Pipfile": "[packages]\n", "app.py": ""}, "python"},
		{"StaticRoot", map[string]string{"index.html": indexHTM}, "static"},
		{"StaticPublic", map[string]string{"public/index.html": indexHTM, "README.md": "hi"}, "static"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := MustDetect(t, buildpacks.Detector{}, tc.files, nil)
			if plan.Buildpack != tc.want {
				t.Errorf("buildpack = %q (%s), want %q", plan.Buildpack, plan.Reason, tc.want)
			}
			if plan.Buildpack == "dockerfile" {
				if plan.Dockerfile != "Dockerfile" || plan.DockerfileContent != nil {
					t.Errorf("dockerfile plan = %+v: the app's own Dockerfile is used as is", plan)
				}
			} else if len(plan.DockerfileContent) == 0 {
				t.Errorf("%s plan has no generated Dockerfile", plan.Buildpack)
			}
		})
	}
}

func TestDetectErrNothingDetected(t *testing.T) {
	dir := fake.Tree(t, map[string]string{"README": "hi", "public/style.css": "", "Dockerfile.d/x": "", "main.go": goMain})
	_, err := buildpacks.Detector{}.Detect(dir, nil)
	if dk.ErrorCode(err) != dk.EINVALID {
		t.Fatalf("err = %v, want EINVALID", err)
	}
	for _, want := range []string{"a Dockerfile", "go.mod", "package.json", "requirements.txt, pyproject.toml or Pipfile", "index.html or public/index.html", "add a Dockerfile at the repository root"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to mention %q", err, want)
		}
	}
}

func TestDetectOverride(t *testing.T) {
	files := map[string]string{"go.mod": goMod, "main.go": goMain, "index.html": indexHTM}
	t.Run("OK", func(t *testing.T) {
		plan := MustDetect(t, buildpacks.Detector{}, files, dk.Config{"BUILDPACK": "static"})
		if plan.Buildpack != "static" || !strings.HasPrefix(plan.Reason, "BUILDPACK=static; ") {
			t.Errorf("plan = %s (%s), want static by BUILDPACK", plan.Buildpack, plan.Reason)
		}
	})
	t.Run("Unset", func(t *testing.T) {
		if plan := MustDetect(t, buildpacks.Detector{}, files, dk.Config{"OTHER": "x"}); plan.Buildpack != "go" {
			t.Errorf("plan = %s, want go", plan.Buildpack)
		}
	})
	t.Run("ErrUnknown", func(t *testing.T) {
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, files), dk.Config{"BUILDPACK": "ruby"})
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "BUILDPACK=ruby is not a buildpack: use one of dockerfile, go, node, python, static") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("ErrDoesNotApply", func(t *testing.T) {
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, files), dk.Config{"BUILDPACK": "node"})
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "BUILDPACK=node but the source has no package.json") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestNames(t *testing.T) {
	if diff := cmp.Diff([]string{"dockerfile", "go", "node", "python", "static"}, buildpacks.Names()); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}
}

// stage is one parsed stage of a generated Dockerfile.
type stage struct {
	from   string
	user   string
	cmd    []string // CMD as the image will hold it
	mounts []string // type:target of every RUN --mount
	copies []string // COPY lines' sources and destination
}

// parse parses a generated Dockerfile with BuildKit's own parser (the
// frontend the builder runs) and returns its stages.
func parse(t *testing.T, df []byte) []stage {
	t.Helper()
	if bytes.Contains(df, []byte("# syntax")) || bytes.Contains(df, []byte("<<")) || bytes.Contains(df, []byte("--link")) {
		t.Errorf("Dockerfile uses what BuildKit 0.8 in Docker 20.10 cannot build:\n%s", df)
	}
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, df)
	}
	var out []stage
	for _, n := range res.AST.Children {
		var args []string
		for a := n.Next; a != nil; a = a.Next {
			args = append(args, a.Value)
		}
		if strings.ToLower(n.Value) == "from" {
			out = append(out, stage{from: args[0]})
			continue
		}
		if len(out) == 0 {
			t.Fatalf("%s before FROM:\n%s", n.Value, df)
		}
		st := &out[len(out)-1]
		switch strings.ToLower(n.Value) {
		case "user":
			st.user = args[0]
		case "cmd":
			st.cmd = args
			if !n.Attributes["json"] {
				st.cmd = append([]string{"/bin/sh", "-c"}, args...)
			}
		case "run":
			for _, f := range n.Flags {
				spec, ok := strings.CutPrefix(f, "--mount=")
				if !ok {
					continue
				}
				kv := map[string]string{}
				for _, p := range strings.Split(spec, ",") {
					k, v, _ := strings.Cut(p, "=")
					kv[k] = v
				}
				st.mounts = append(st.mounts, kv["type"]+":"+kv["target"])
			}
		case "copy":
			st.copies = append(st.copies, strings.Join(args, " "))
		}
	}
	return out
}

// checkRuntime checks the last stage runs as the non-root app user.
func checkRuntime(t *testing.T, stages []stage) {
	t.Helper()
	last := stages[len(stages)-1]
	if last.user != buildpacks.AppUser || strings.HasPrefix(last.user, "0") || last.user == "root" {
		t.Errorf("runtime stage user = %q, want %s (not root)", last.user, buildpacks.AppUser)
	}
	if len(last.mounts) != 0 {
		t.Errorf("runtime stage runs commands with mounts %v: it should only copy", last.mounts)
	}
}

func TestGo(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		plan := MustDetect(t, buildpacks.Detector{}, map[string]string{"go.mod": goMod, "go.sum": "", "main.go": goMain, "main_test.go": "package main_test\n"}, nil)
		stages := parse(t, plan.DockerfileContent)
		if len(stages) != 2 {
			t.Fatalf("%d stages, want build and runtime:\n%s", len(stages), plan.DockerfileContent)
		}
		build, run := stages[0], stages[1]
		if build.from != "golang:1.26" || run.from != "debian:bookworm-slim" {
			t.Errorf("FROM %s, %s; want the default images golang:1.26, debian:bookworm-slim", build.from, run.from)
		}
		if diff := cmp.Diff([]string{"cache:/go/pkg/mod", "cache:/go/pkg/mod", "cache:/root/.cache/go-build"}, build.mounts); diff != "" {
			t.Errorf("build stage cache mounts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"go.mod go.sum ./", ". ."}, build.copies); diff != "" {
			t.Errorf("build stage copies (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"/app/bin/hello"}, run.cmd); diff != "" {
			t.Errorf("CMD (-want +got):\n%s", diff)
		}
		checkRuntime(t, stages)
		df := string(plan.DockerfileContent)
		for _, want := range []string{"CGO_ENABLED=0", "GOTOOLCHAIN=local", "go build -trimpath -ldflags='-s -w' -o /out/bin/ .\n", "COPY --from=build /out/bin/ /app/bin/"} {
			if !strings.Contains(df, want) {
				t.Errorf("Dockerfile lacks %q:\n%s", want, df)
			}
		}
		if !strings.Contains(plan.Reason, "found go.mod") || !strings.Contains(plan.Reason, "web runs /app/bin/hello") {
			t.Errorf("reason = %q", plan.Reason)
		}
	})
	t.Run("CmdDirs", func(t *testing.T) {
		files := map[string]string{"go.mod": "module example.com/shop/v2\ngo 1.26\n", "cmd/shop/main.go": goMain, "cmd/worker/main.go": goMain, "cmd/lib/lib.go": "package lib\n", "internal/x/x.go": "package x\n"}
		plan := MustDetect(t, buildpacks.Detector{}, files, nil)
		if !strings.Contains(string(plan.DockerfileContent), "-o /out/bin/ ./cmd/shop ./cmd/worker\n") {
			t.Errorf("Dockerfile does not build both commands:\n%s", plan.DockerfileContent)
		}
		if stages := parse(t, plan.DockerfileContent); !slices.Equal(stages[1].cmd, []string{"/app/bin/shop"}) {
			t.Errorf("CMD = %v, want the command named like the module", stages[1].cmd)
		}
	})
	t.Run("Vendored", func(t *testing.T) {
		plan := MustDetect(t, buildpacks.Detector{}, map[string]string{"go.mod": goMod, "main.go": goMain, "vendor/modules.txt": ""}, nil)
		if strings.Contains(string(plan.DockerfileContent), "go mod download") {
			t.Errorf("a vendored module downloads modules:\n%s", plan.DockerfileContent)
		}
	})
	t.Run("SeveralCommandsProcfile", func(t *testing.T) {
		files := map[string]string{"go.mod": goMod, "cmd/api/main.go": goMain, "cmd/worker/main.go": goMain}
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, files), nil)
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "several commands (api, worker)") || !strings.Contains(err.Error(), "Procfile") {
			t.Errorf("err = %v", err)
		}
		files["Procfile"] = "web: api\nworker: worker\n"
		plan := MustDetect(t, buildpacks.Detector{}, files, nil)
		if stages := parse(t, plan.DockerfileContent); stages[1].cmd != nil || !strings.Contains(plan.Reason, "Procfile") {
			t.Errorf("CMD = %v, reason %q: want the Procfile's web process", stages[1].cmd, plan.Reason)
		}
	})
	t.Run("ErrNoMain", func(t *testing.T) {
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, map[string]string{"go.mod": goMod, "lib.go": "package hello\n"}), nil)
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "no main package") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestNode(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		plan := MustDetect(t, buildpacks.Detector{}, map[string]string{"package.json": pkgJSON, "server.js": ""}, nil)
		stages := parse(t, plan.DockerfileContent)
		if len(stages) != 2 || stages[0].from != "node:22-slim" || stages[1].from != "node:22-slim" {
			t.Fatalf("stages = %+v", stages)
		}
		if diff := cmp.Diff([]string{"cache:/root/.npm"}, stages[0].mounts); diff != "" {
			t.Errorf("cache mounts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"npm", "start"}, stages[1].cmd); diff != "" {
			t.Errorf("CMD (-want +got):\n%s", diff)
		}
		checkRuntime(t, stages)
		df := string(plan.DockerfileContent)
		for _, want := range []string{"COPY package.json ./\n", "npm install --omit=dev --no-audit", "COPY --from=build --chown=10001:10001 /app /app", "NODE_ENV=production"} {
			if !strings.Contains(df, want) {
				t.Errorf("Dockerfile lacks %q:\n%s", want, df)
			}
		}
	})
	t.Run("LockAndBuild", func(t *testing.T) {
		files := map[string]string{"package.json": `{"scripts":{"build":"tsc"},"main":"dist/index.js"}`, "package-lock.json": "{}", "dist/index.js": ""}
		plan := MustDetect(t, buildpacks.Detector{}, files, nil)
		df := string(plan.DockerfileContent)
		for _, want := range []string{"COPY package.json package-lock.json ./\n", "npm ci --no-audit", "npm run build && npm prune --omit=dev"} {
			if !strings.Contains(df, want) {
				t.Errorf("Dockerfile lacks %q:\n%s", want, df)
			}
		}
		if stages := parse(t, plan.DockerfileContent); !slices.Equal(stages[1].cmd, []string{"node", "dist/index.js"}) {
			t.Errorf("CMD = %v, want node dist/index.js (package.json main)", stages[1].cmd)
		}
	})
	t.Run("ErrNoCommand", func(t *testing.T) {
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, map[string]string{"package.json": `{"main":"../../etc/passwd"}`}), nil)
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "found no command to run") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("ErrBadJSON", func(t *testing.T) {
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, map[string]string{"package.json": `{"scripts":`}), nil)
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "package.json is not valid JSON") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestPython(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		cmd   []string
	}{
		{"Script", map[string]string{"requirements.txt": reqsTxt, "app.py": ""}, []string{"python", "app.py"}},
		{"Gunicorn", map[string]string{"requirements.txt": "Flask==3.0\ngunicorn>=21\n", "app.py": ""}, []string{"/bin/sh", "-c", "exec gunicorn --bind 0.0.0.0:$PORT app:app"}},
		{"GunicornWSGI", map[string]string{"pyproject.toml": "dependencies = [\n  \"gunicorn\",\n]\n", "wsgi.py": ""}, []string{"/bin/sh", "-c", "exec gunicorn --bind 0.0.0.0:$PORT wsgi"}},
		{"Django", map[string]string{"requirements.txt": "django\ngunicorn\n", "manage.py": "", "mysite/wsgi.py": ""}, []string{"/bin/sh", "-c", "exec gunicorn --bind 0.0.0.0:$PORT mysite.wsgi"}},
		{"Procfile", map[string]string{"Pipfile": "", "Procfile": "web: python -m http.server $PORT\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := MustDetect(t, buildpacks.Detector{}, tc.files, nil)
			stages := parse(t, plan.DockerfileContent)
			if len(stages) != 2 || stages[0].from != "python:3.12-slim" || stages[1].from != "python:3.12-slim" {
				t.Fatalf("stages = %+v", stages)
			}
			if diff := cmp.Diff([]string{"cache:/root/.cache/pip"}, stages[0].mounts); diff != "" {
				t.Errorf("cache mounts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.cmd, stages[1].cmd); diff != "" {
				t.Errorf("CMD (-want +got):\n%s", diff)
			}
			checkRuntime(t, stages)
			if !slices.Contains(stages[1].copies, "/venv /venv") {
				t.Errorf("runtime stage copies %v, want the virtualenv", stages[1].copies)
			}
		})
	}
	t.Run("Requirements", func(t *testing.T) {
		plan := MustDetect(t, buildpacks.Detector{}, map[string]string{"requirements.txt": reqsTxt, "main.py": ""}, nil)
		if !strings.Contains(string(plan.DockerfileContent), "COPY requirements.txt ./\nRUN --mount=type=cache,target=/root/.cache/pip /venv/bin/pip install -r requirements.txt\nCOPY . .\n") {
			t.Errorf("requirements are not installed before the source is copied:\n%s", plan.DockerfileContent)
		}
	})
	t.Run("ErrNoCommand", func(t *testing.T) {
		_, err := buildpacks.Detector{}.Detect(fake.Tree(t, map[string]string{"requirements.txt": reqsTxt, "lib.py": ""}), nil)
		if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), "found no command to run") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestStatic(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		copy  string
	}{
		"Root":   {map[string]string{"index.html": indexHTM, "public/index.html": indexHTM}, ". /srv/www/"},
		"Public": {map[string]string{"public/index.html": indexHTM}, "public/ /srv/www/"},
	} {
		t.Run(name, func(t *testing.T) {
			plan := MustDetect(t, buildpacks.Detector{Images: map[string]string{"static": "dk-test/static"}}, tc.files, nil)
			stages := parse(t, plan.DockerfileContent)
			if len(stages) != 1 || stages[0].from != "dk-test/static" {
				t.Fatalf("stages = %+v", stages)
			}
			if diff := cmp.Diff([]string{tc.copy}, stages[0].copies); diff != "" {
				t.Errorf("copies (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"/bin/sh", "-c", "exec httpd -f -v -p $PORT -h /srv/www"}, stages[0].cmd); diff != "" {
				t.Errorf("CMD (-want +got):\n%s", diff)
			}
			checkRuntime(t, stages)
		})
	}
}

func TestVersions(t *testing.T) {
	have := func(refs ...string) func(string) bool {
		return func(ref string) bool { return slices.Contains(refs, ref) }
	}
	goApp := map[string]string{"go.mod": goMod, "main.go": goMain}
	nodeApp := map[string]string{"package.json": `{"engines":{"node":">=18.0.0"}}`, "index.js": ""}
	pyApp := map[string]string{"requirements.txt": reqsTxt, "app.py": "", ".python-version": "3.11.4\n"}
	local := map[string]string{"go": "dk-test/golang:1.26", "node": "dk-test/node:20", "python": "registry.local:5000/py:3.12-slim"}
	for _, tc := range []struct {
		name   string
		d      buildpacks.Detector
		files  map[string]string
		from   []string
		reason string
	}{
		{"GoFollowed", buildpacks.Detector{ImageExists: have("golang:1.22")}, goApp, []string{"golang:1.22", "debian:bookworm-slim"}, "go.mod asks for 1.22: using golang:1.22"},
		{"GoMissing", buildpacks.Detector{ImageExists: have()}, goApp, []string{"golang:1.26", "debian:bookworm-slim"}, "go.mod asks for 1.22 but the Docker engine has no golang:1.22: using the default golang:1.26"},
		{"GoNoChecker", buildpacks.Detector{}, goApp, []string{"golang:1.26", "debian:bookworm-slim"}, "has no golang:1.22"},
		{"GoConfigured", buildpacks.Detector{Images: local, ImageExists: have("golang:1.22")}, goApp, []string{"dk-test/golang:1.26", "debian:bookworm-slim"}, "has no dk-test/golang:1.22"},
		{"NodeFollowed", buildpacks.Detector{Images: local, ImageExists: have("dk-test/node:18")}, nodeApp, []string{"dk-test/node:18", "dk-test/node:18"}, "package.json engines.node asks for 18: using dk-test/node:18"},
		{"NodeSame", buildpacks.Detector{Images: map[string]string{"node": "dk-test/node:18"}}, nodeApp, []string{"dk-test/node:18", "dk-test/node:18"}, "asks for 18: using dk-test/node:18"},
		{"PythonFollowed", buildpacks.Detector{Images: local, ImageExists: have("registry.local:5000/py:3.11-slim")}, pyApp, []string{"registry.local:5000/py:3.11-slim", "registry.local:5000/py:3.11-slim"}, ".python-version asks for 3.11: using registry.local:5000/py:3.11-slim"},
		{"PythonRuntimeTxt", buildpacks.Detector{ImageExists: have("python:3.10-slim")}, map[string]string{"requirements.txt": "", "app.py": "", "runtime.txt": "python-3.10.13\n"}, []string{"python:3.10-slim", "python:3.10-slim"}, "runtime.txt asks for 3.10"},
		{"NoVersionTag", buildpacks.Detector{Images: map[string]string{"python": "registry.local:5000/python"}, ImageExists: have("registry.local:5000/python:3.11")}, pyApp, []string{"registry.local:5000/python", "registry.local:5000/python"}, "has no version tag to follow"},
		{"Digest", buildpacks.Detector{Images: map[string]string{"go": "golang:1.26@sha256:abc"}, ImageExists: have("golang:1.22@sha256:abc")}, goApp, []string{"golang:1.26@sha256:abc", "debian:bookworm-slim"}, "has no version tag to follow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan := MustDetect(t, tc.d, tc.files, nil)
			var from []string
			for _, s := range parse(t, plan.DockerfileContent) {
				from = append(from, s.from)
			}
			if diff := cmp.Diff(tc.from, from); diff != "" {
				t.Errorf("FROM (-want +got):\n%s", diff)
			}
			if !strings.Contains(plan.Reason, tc.reason) {
				t.Errorf("reason = %q, want it to contain %q", plan.Reason, tc.reason)
			}
		})
	}
}

func TestParseImages(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		got, err := buildpacks.ParseImages([]string{"go=dk-test/golang:1.26", " node = registry.local:5000/node:18 ", ""})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]string{"go": "dk-test/golang:1.26", "node": "registry.local:5000/node:18"}, got); diff != "" {
			t.Errorf("images (-want +got):\n%s", diff)
		}
	})
	for name, tc := range map[string]struct{ pair, want string }{
		"ErrNoValue":   {"go", "is not KEY=IMAGE"},
		"ErrEmpty":     {"go=", "is not KEY=IMAGE"},
		"ErrKey":       {"ruby=ruby:3", `unknown buildpack image key "ruby": use one of go, node, python, runtime, static`},
		"ErrReference": {"go=golang:1.26 evil", "is not an image reference"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := buildpacks.ParseImages([]string{tc.pair}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
