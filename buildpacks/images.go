package buildpacks

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Image keys: the base images a generated Dockerfile is built FROM. Each is
// configurable (dkd serve --buildpack-image KEY=REF).
const (
	ImageGo      = "go"      // Go toolchain (build stage)
	ImageNode    = "node"    // Node.js with npm (build and runtime stages)
	ImagePython  = "python"  // Python with venv/pip (build and runtime stages)
	ImageRuntime = "runtime" // small Debian for compiled apps (Go runtime stage)
	ImageStatic  = "static"  // a busybox with httpd, serving static sites
)

// DefaultImages are the well-known public images each key defaults to.
// dk never pulls: the operator loads them into the engine (or points the
// keys at their own registry's copies).
var DefaultImages = map[string]string{
	ImageGo:      "golang:1.26",
	ImageNode:    "node:22-slim",
	ImagePython:  "python:3.12-slim",
	ImageRuntime: "debian:bookworm-slim",
	ImageStatic:  "busybox:1.36",
}

// ImageKeys lists the image keys, sorted.
func ImageKeys() []string {
	keys := make([]string, 0, len(DefaultImages))
	for k := range DefaultImages {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParseImages parses KEY=REF pairs (from flags or a comma-separated
// environment variable) into an image map, checking the keys.
func ParseImages(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		k, v, ok := strings.Cut(p, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("%q is not KEY=IMAGE, e.g. go=registry.local/golang:1.26", p)
		}
		if _, known := DefaultImages[k]; !known {
			return nil, fmt.Errorf("unknown buildpack image key %q: use one of %s", k, strings.Join(ImageKeys(), ", "))
		}
		if strings.ContainsAny(v, " \t\n\"'\\$") {
			return nil, fmt.Errorf("buildpack image %s=%q is not an image reference", k, v)
		}
		out[k] = v
	}
	return out, nil
}

// leadingVersion is the version at the start of an image tag: "1.26" in
// golang:1.26, "22" in node:22-slim, "3.12" in python:3.12-slim.
var leadingVersion = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)*)(.*)$`)

// versionedRef returns ref with the version at the start of its tag replaced
// by version, keeping the rest of the tag (golang:1.26 + 1.22 → golang:1.22,
// node:22-slim + 18 → node:18-slim). It reports false when ref's tag does not
// start with a version (or ref is pinned by digest): then dk cannot follow
// the app's version.
func versionedRef(ref, version string) (string, bool) {
	if version == "" || strings.Contains(ref, "@") {
		return "", false
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return "", false
	}
	m := leadingVersion.FindStringSubmatch(ref[i+1:])
	if m == nil {
		return "", false
	}
	return ref[:i+1] + version + m[2], true
}

// image returns the configured reference for key.
func (d Detector) image(key string) string {
	if ref, ok := d.Images[key]; ok && ref != "" {
		return ref
	}
	return DefaultImages[key]
}

// pickImage returns the image for key that follows the app's wanted version
// (when the engine has it), and a note for the plan's reason. source names
// where the version came from, e.g. "go.mod".
func (d Detector) pickImage(key, version, source string) (ref, note string) {
	def := d.image(key)
	if version == "" {
		return def, "using " + def
	}
	want, ok := versionedRef(def, version)
	switch {
	case !ok:
		return def, fmt.Sprintf("%s asks for %s; the configured image %s has no version tag to follow, using it", source, version, def)
	case want == def:
		return def, fmt.Sprintf("%s asks for %s: using %s", source, version, def)
	case d.ImageExists != nil && d.ImageExists(want):
		return want, fmt.Sprintf("%s asks for %s: using %s", source, version, want)
	default:
		return def, fmt.Sprintf("%s asks for %s but the Docker engine has no %s: using the default %s", source, version, want, def)
	}
}
