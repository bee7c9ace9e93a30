// Package buildpacks decides how an app's source becomes an image: the app's
// own Dockerfile, or a multi-stage Dockerfile dk generates for a recognised
// stack (Go, Node.js, Python, a static site). It only reads the source tree;
// BuildKit runs the result. It imports only the domain and the standard
// library.
package buildpacks

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dkhq/dk"
)

// ConfigKey is the app config variable that names the buildpack to use
// instead of detecting one (buildpacks:set APP NAME sets it).
const ConfigKey = "BUILDPACK"

// AppUser is the uid:gid generated images run as: never root.
const AppUser = "10001:10001"

// Detector detects the build plan for a source tree. The zero value uses
// DefaultImages and never follows the app's language version.
type Detector struct {
	// Images maps an image key (ImageGo, ImageNode …) to the reference a
	// generated Dockerfile builds FROM; missing keys use DefaultImages.
	Images map[string]string
	// ImageExists reports whether the Docker engine has an image (by tag).
	// It lets a plan follow the version the app asks for (go.mod,
	// package.json engines.node, .python-version) when that image exists;
	// nil keeps the configured images.
	ImageExists func(ref string) bool
}

var _ dk.Detector = Detector{}

// buildpack is one way of building, tried in detection order.
type buildpack struct {
	name  string
	looks string // what it looks for, for messages
	// applies reports whether dir has what the buildpack needs.
	applies func(dir string) bool
	// plan makes the build plan for a dir it applies to.
	plan func(d Detector, dir string) (*dk.BuildPlan, error)
}

// buildpacks in detection order.
var buildpacks = []buildpack{
	{name: "dockerfile", looks: "a Dockerfile", applies: func(dir string) bool { return isFile(dir, "Dockerfile") }, plan: planDockerfile},
	{name: "go", looks: "go.mod (Go)", applies: func(dir string) bool { return isFile(dir, "go.mod") }, plan: planGo},
	{name: "node", looks: "package.json (Node.js)", applies: func(dir string) bool { return isFile(dir, "package.json") }, plan: planNode},
	{name: "python", looks: "requirements.txt, pyproject.toml or Pipfile (Python)", applies: appliesPython, plan: planPython},
	{name: "static", looks: "index.html or public/index.html (static site)", applies: appliesStatic, plan: planStatic},
}

// Names lists the buildpacks in detection order: the values BUILDPACK may take.
func Names() []string {
	names := make([]string, len(buildpacks))
	for i, b := range buildpacks {
		names[i] = b.name
	}
	return names
}

// Detect returns the plan for dir: the buildpack named by cfg's BUILDPACK,
// or else the first that applies. When none applies it returns an EINVALID
// error listing what it looked for.
func (d Detector) Detect(dir string, cfg dk.Config) (*dk.BuildPlan, error) {
	if name := strings.TrimSpace(cfg[ConfigKey]); name != "" {
		for _, b := range buildpacks {
			if b.name != strings.ToLower(name) {
				continue
			}
			if !b.applies(dir) {
				return nil, dk.Errorf(dk.EINVALID, "%s=%s but the source has no %s: add it, or clear the override with buildpacks:set APP --unset", ConfigKey, b.name, b.looks)
			}
			plan, err := b.plan(d, dir)
			if err != nil {
				return nil, err
			}
			plan.Reason = fmt.Sprintf("%s=%s; %s", ConfigKey, b.name, plan.Reason)
			return plan, nil
		}
		return nil, dk.Errorf(dk.EINVALID, "%s=%s is not a buildpack: use one of %s (buildpacks:set APP NAME), or clear it (buildpacks:set APP --unset)", ConfigKey, name, strings.Join(Names(), ", "))
	}
	var looked []string
	for _, b := range buildpacks {
		if b.applies(dir) {
			return b.plan(d, dir)
		}
		looked = append(looked, b.looks)
	}
	return nil, dk.Errorf(dk.EINVALID, "cannot tell how to build this app: looked for %s at the repository root, and found none; "+
		"add a Dockerfile at the repository root (dk builds it as is), or one of those files", strings.Join(looked, ", "))
}

func planDockerfile(_ Detector, _ string) (*dk.BuildPlan, error) {
	return &dk.BuildPlan{Buildpack: "dockerfile", Reason: "found Dockerfile", Dockerfile: "Dockerfile"}, nil
}

// isFile reports whether dir/name is a regular file (not a symlink).
func isFile(dir, name string) bool {
	fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
	return err == nil && fi.Mode().IsRegular()
}

// isDir reports whether dir/name is a directory (not a symlink).
func isDir(dir, name string) bool {
	fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(name)))
	return err == nil && fi.IsDir()
}

// maxManifest bounds the manifests dk reads (go.mod, package.json …).
const maxManifest = 1 << 20

// readManifest reads a small file of the source tree.
func readManifest(dir, name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if fi.Size() > maxManifest {
		return nil, dk.Errorf(dk.EINVALID, "%s is larger than %d bytes", name, maxManifest)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// hasWebProcess reports whether the source has a Procfile with a web
// process: then the image needs no default command.
func hasWebProcess(dir string) bool {
	if !isFile(dir, "Procfile") {
		return false
	}
	b, err := readManifest(dir, "Procfile")
	if err != nil {
		return false
	}
	procs, err := dk.ParseProcfile(b)
	return err == nil && procs["web"] != ""
}

// noCommand is the error for a source with no recognisable entry point.
func noCommand(buildpack, tried string) error {
	return dk.Errorf(dk.EINVALID, "the %s buildpack found no command to run: it looked for %s; add a Procfile with a web: line (e.g. web: ./start), or a Dockerfile", buildpack, tried)
}

// dockerfile writes a generated Dockerfile.
type dockerfile struct {
	strings.Builder
}

func newDockerfile(buildpack string) *dockerfile {
	df := &dockerfile{}
	df.line("# Generated by dk's %s buildpack for this source tree (ssh dk buildpacks:dockerfile APP).", buildpack)
	df.line("# To eject, commit it as Dockerfile at the repository root: dk then builds it as is.")
	return df
}

func (df *dockerfile) line(format string, args ...any) {
	fmt.Fprintf(df, format, args...)
	df.WriteByte('\n')
}

// cmd writes an exec-form CMD (no shell).
func (df *dockerfile) cmd(argv ...string) {
	b, _ := json.Marshal(argv)
	df.line("CMD %s", b)
}

func (df *dockerfile) bytes() []byte { return []byte(df.String()) }

// command is an image's default command: argv in exec form, or a shell
// command when it needs $PORT.
type command struct {
	argv  []string
	shell string
}

func (c command) String() string {
	if c.shell != "" {
		return c.shell
	}
	return strings.Join(c.argv, " ")
}

func (df *dockerfile) command(c command) {
	switch {
	case c.shell != "":
		df.line("CMD exec %s", c.shell)
	case len(c.argv) > 0:
		df.cmd(c.argv...)
	}
}
