package sshd_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/buildpacks"
	"github.com/dkhq/dk/internal/fake"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/sshd"
	"github.com/dkhq/dk/store"
	gossh "golang.org/x/crypto/ssh"
)

// fakeBuildpacks detects with the real detector on a tree per app, standing
// in for an app's deployed commit.
type fakeBuildpacks struct {
	db    dk.Store
	trees map[string]string // app → checked-out tree
}

func (f fakeBuildpacks) Detect(ctx context.Context, app string) (*dk.BuildPlan, string, error) {
	a, err := f.db.App(ctx, app)
	if err != nil {
		return nil, "", err
	}
	dir, ok := f.trees[app]
	if !ok {
		return nil, "", dk.Errorf(dk.ENOTFOUND, "%s has no deployed commit yet: git push first", app)
	}
	plan, err := buildpacks.Detector{}.Detect(dir, a.Config)
	return plan, "0123456789abcdef0123456789abcdef01234567", err
}

func (fakeBuildpacks) Names() []string { return buildpacks.Names() }

func startBuildpacksServer(t *testing.T, trees map[string]string) *server {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rt := &fake.Runtime{}
	t.Cleanup(rt.Close)
	mgr := &releases.Manager{Store: db, Builder: &fake.Builder{}, Runtime: rt, Detector: buildpacks.Detector{}, Instance: "dk"}
	admin := newSigner(t)
	s := &sshd.Server{Addr: "127.0.0.1:0", HostKey: newSigner(t), Store: db, Service: mgr, Git: noGit{},
		AdminKeys: []gossh.PublicKey{admin.PublicKey()}, Buildpacks: fakeBuildpacks{db: db, trees: trees}}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &server{addr: s.ListenAddr(), admin: admin, db: db}
}

func TestBuildpackCommands(t *testing.T) {
	goApp := fake.Tree(t, map[string]string{"go.mod": "module example.com/hello\ngo 1.26\n", "main.go": "package main\nfunc main() {}\n", "index.html": "hi"})
	s := startBuildpacksServer(t, map[string]string{"hello": goApp})
	for _, app := range []string{"hello", "fresh"} {
		if _, _, code, _ := s.run(t, s.admin, "apps:create "+app, ""); code != 0 {
			t.Fatal("create failed")
		}
	}
	tests := []struct {
		name, cmd     string
		code          int
		stdout, error string
	}{
		{"Detect", "buildpacks:detect hello", 0, "hello at 0123456: go\n       found go.mod; go.mod asks for 1.26: using golang:1.26; web runs /app/bin/hello\n", ""},
		{"DetectJSON", "buildpacks:detect hello --json", 0, `"buildpack": "go"`, ""},
		{"Dockerfile", "buildpacks:dockerfile hello", 0, "FROM golang:1.26 AS build\n", "-----> hello at 0123456: go buildpack"},
		{"Set", "buildpacks:set hello Static", 0, "BUILDPACK=static: the next git push to hello builds with the static buildpack\n", ""},
		{"DetectOverride", "buildpacks:detect hello", 0, "hello at 0123456: static\n       BUILDPACK=static; found index.html", ""},
		{"DockerfileOverride", "buildpacks:dockerfile hello", 0, "CMD exec httpd", ""},
		{"Unset", "buildpacks:set hello --unset", 0, "BUILDPACK unset: the next git push to hello detects its buildpack\n", ""},
		{"DetectAgain", "buildpacks:detect hello", 0, "hello at 0123456: go\n", ""},
		{"SetBeforeFirstPush", "buildpacks:set fresh node", 0, "BUILDPACK=node", ""},
		{"ErrNoCommit", "buildpacks:detect fresh", 1, "", " !     fresh has no deployed commit yet: git push first\n"},
		{"ErrUnknownBuildpack", "buildpacks:set hello ruby", 2, "", ` !     "ruby" is not a buildpack: use one of dockerfile, go, node, python, static` + "\n"},
		{"ErrNameAndUnset", "buildpacks:set hello go --unset", 2, "", "give a buildpack name or --unset"},
		{"ErrNothing", "buildpacks:set hello", 2, "", "give a buildpack name or --unset"},
		{"ErrNotFound", "buildpacks:detect nope", 1, "", ` !     app "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code, err := s.run(t, s.admin, tt.cmd, "")
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.error) {
				t.Errorf("%s: code %d stdout %q stderr %q; want %d, %q, %q", tt.cmd, code, out, errs, tt.code, tt.stdout, tt.error)
			}
		})
	}
	// buildpacks:set makes no release: the buildpack matters to the next build.
	if rels, err := s.db.Releases(context.Background(), "hello"); err != nil || len(rels) != 0 {
		t.Errorf("releases = %d, %v; want none", len(rels), err)
	}
	if app, _ := s.db.App(context.Background(), "fresh"); app.Config["BUILDPACK"] != "node" {
		t.Errorf("fresh config = %v", app.Config)
	}
	// The Dockerfile on stdout is exactly the plan's.
	out, _, _, _ := s.run(t, s.admin, "buildpacks:dockerfile hello", "")
	plan, _ := buildpacks.Detector{}.Detect(goApp, nil)
	if out != string(plan.DockerfileContent) {
		t.Errorf("stdout is not exactly the Dockerfile:\n%s", out)
	}
}
