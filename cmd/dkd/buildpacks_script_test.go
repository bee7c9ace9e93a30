package main

import (
	"context"
	"strings"

	"github.com/dkhq/dk/internal/dockertest"
	"github.com/rogpeppe/go-internal/testscript"
)

// bpimages makes the buildpacks' stand-in base images (once per engine; the
// first time takes minutes) and sets BP_GO, BP_NODE, BP_PYTHON, BP_RUNTIME
// and BP_STATIC to them, for dkd serve --buildpack-image KEY=$BP_KEY.
func cmdBuildpackImages(ts *testscript.TestScript, neg bool, args []string) {
	cli, err := dockerClient()
	ts.Check(err)
	defer cli.Close()
	ts.Check(dockertest.EnsureBuildpackImages(context.Background(), cli, nil))
	for key, ref := range dockertest.BuildpackImages() {
		ts.Setenv("BP_"+strings.ToUpper(key), ref)
	}
}
