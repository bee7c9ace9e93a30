package buildpacks

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/dkhq/dk"
)

// goMod is what the Go buildpack reads from go.mod.
type goMod struct {
	module string // module path
	goVer  string // major.minor of the go line, e.g. "1.22"
}

var goVersionRE = regexp.MustCompile(`^([0-9]+\.[0-9]+)(\.[0-9]+)?([a-z]+[0-9]*)?$`)

func parseGoMod(b []byte) goMod {
	var m goMod
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, "//"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case "module":
			m.module = strings.Trim(f[1], `"`+"`")
		case "go":
			if v := goVersionRE.FindStringSubmatch(f[1]); v != nil {
				m.goVer = v[1]
			}
		}
	}
	return m
}

// packageMainRE finds a package clause naming main.
var packageMainRE = regexp.MustCompile(`(?m)^package\s+main\s*(//.*)?$`)

// isMainPackage reports whether dir (relative to root) holds a Go main package.
func isMainPackage(root, dir string) bool {
	entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(dir)))
	if err != nil {
		return false
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		b, err := readManifest(root, path.Join(dir, n))
		if err == nil && packageMainRE.Match(b) {
			return true
		}
	}
	return false
}

var majorSuffixRE = regexp.MustCompile(`^v[0-9]+$`)

// binaryName is the name `go build -o DIR/` gives the main package at
// pkgDir of module: its import path's last element, skipping a /vN suffix.
func binaryName(module, pkgDir string) string {
	p := module
	if pkgDir != "." {
		p = path.Join(module, pkgDir)
	}
	elems := strings.Split(p, "/")
	name := elems[len(elems)-1]
	if len(elems) > 1 && majorSuffixRE.MatchString(name) {
		name = elems[len(elems)-2]
	}
	return name
}

// goMains finds the main packages dk builds: the repository root and each
// directory under cmd/. They all land in /app/bin (so a Procfile can run any
// of them); the web process runs the root's, else the only one, else the
// one named like the module.
func goMains(dir, module string) (pkgs []string, web string) {
	if isMainPackage(dir, ".") {
		pkgs = append(pkgs, ".")
	}
	if entries, err := os.ReadDir(filepath.Join(dir, "cmd")); err == nil {
		for _, e := range entries {
			if e.IsDir() && isMainPackage(dir, "cmd/"+e.Name()) {
				pkgs = append(pkgs, "./cmd/"+e.Name())
			}
		}
	}
	sort.SliceStable(pkgs, func(i, j int) bool { return pkgs[i] == "." && pkgs[j] != "." })
	switch {
	case len(pkgs) == 0:
		return nil, ""
	case pkgs[0] == "." || len(pkgs) == 1:
		return pkgs, binaryName(module, pkgs[0])
	}
	base := binaryName(module, ".")
	for _, p := range pkgs {
		if binaryName(module, p) == base {
			return pkgs, base
		}
	}
	return pkgs, ""
}

func planGo(d Detector, dir string) (*dk.BuildPlan, error) {
	b, err := readManifest(dir, "go.mod")
	if err != nil {
		return nil, err
	}
	mod := parseGoMod(b)
	if mod.module == "" {
		return nil, dk.Errorf(dk.EINVALID, "go.mod has no module line")
	}
	pkgs, web := goMains(dir, mod.module)
	if len(pkgs) == 0 {
		return nil, dk.Errorf(dk.EINVALID, "the go buildpack found no main package: it builds the repository root and cmd/*; put package main in one of them, or add a Dockerfile")
	}
	if web == "" && !hasWebProcess(dir) {
		names := make([]string, len(pkgs))
		for i, p := range pkgs {
			names[i] = binaryName(mod.module, p)
		}
		return nil, dk.Errorf(dk.EINVALID, "the go buildpack found several commands (%s) and cannot tell which serves the web: add a Procfile with e.g. web: %s", strings.Join(names, ", "), names[0])
	}
	image, note := d.pickImage(ImageGo, mod.goVer, "go.mod")
	runtime := d.image(ImageRuntime)

	df := newDockerfile("go")
	df.line("FROM %s AS build", image)
	df.line("WORKDIR /src")
	df.line("ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOMODCACHE=/go/pkg/mod GOCACHE=/root/.cache/go-build")
	vendored := isFile(dir, "vendor/modules.txt")
	if !vendored {
		// Modules first: they are downloaded again only when go.mod or go.sum change.
		if isFile(dir, "go.sum") {
			df.line("COPY go.mod go.sum ./")
		} else {
			df.line("COPY go.mod ./")
		}
		df.line("RUN --mount=type=cache,target=/go/pkg/mod go mod download")
	}
	df.line("COPY . .")
	df.line("RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \\")
	df.line("    go build -trimpath -ldflags='-s -w' -o /out/bin/ %s", strings.Join(pkgs, " "))
	// CA certificates for outgoing TLS, when the toolchain image has them.
	df.line("RUN mkdir -p /out/certs && if [ -f /etc/ssl/certs/ca-certificates.crt ]; then cp /etc/ssl/certs/ca-certificates.crt /out/certs/; fi")
	df.line("")
	df.line("FROM %s", runtime)
	df.line("COPY --from=build /out/certs/ /etc/ssl/certs/")
	df.line("COPY --from=build /out/bin/ /app/bin/")
	df.line("WORKDIR /app")
	df.line("ENV PATH=/app/bin:$PATH")
	df.line("USER %s", AppUser)
	cmd := command{}
	if web != "" {
		cmd.argv = []string{"/app/bin/" + web}
		df.command(cmd)
	}

	reason := fmt.Sprintf("found go.mod; %s; web runs %s", note, webCommand(dir, cmd))
	return &dk.BuildPlan{Buildpack: "go", Reason: reason, DockerfileContent: df.bytes()}, nil
}

// webCommand describes what the web process runs, for a plan's reason.
func webCommand(dir string, c command) string {
	if hasWebProcess(dir) {
		return "the Procfile's web: line"
	}
	return c.String()
}
