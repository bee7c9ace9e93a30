// Package buildpacks decides how an app's source becomes an image: the app's
// own Dockerfile, or (as buildpacks are added) a Dockerfile dk generates for
// a recognised stack. It only reads the source tree; BuildKit runs the result.
package buildpacks

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/dkhq/dk"
)

// Detector detects the build plan for a source tree.
type Detector struct{}

var _ dk.Detector = Detector{}

// detector is one buildpack's detection rule, tried in order.
type detector struct {
	name   string
	looks  string // what it looks for, for the error message
	detect func(dir string) (*dk.BuildPlan, bool)
}

var detectors = []detector{
	{name: "dockerfile", looks: "a Dockerfile at the repository root", detect: func(dir string) (*dk.BuildPlan, bool) {
		if isFile(filepath.Join(dir, "Dockerfile")) {
			return &dk.BuildPlan{Buildpack: "dockerfile", Reason: "found Dockerfile", Dockerfile: "Dockerfile"}, true
		}
		return nil, false
	}},
}

// Detect returns the first plan that applies to dir, or an EINVALID error
// listing what was looked for.
func (Detector) Detect(dir string) (*dk.BuildPlan, error) {
	var looked []string
	for _, d := range detectors {
		if plan, ok := d.detect(dir); ok {
			return plan, nil
		}
		looked = append(looked, d.looks)
	}
	return nil, dk.Errorf(dk.EINVALID, "cannot tell how to build this app: looked for %s; add a Dockerfile at the repository root", strings.Join(looked, ", "))
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}
