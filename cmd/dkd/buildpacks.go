package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/buildpacks"
	"github.com/dkhq/dk/gitreceive"
	"github.com/docker/docker/client"
)

// buildpackImages merges DK_BUILDPACK_IMAGES (comma-separated KEY=IMAGE)
// with --buildpack-image flags, the flags winning.
func buildpackImages(flags []string) (map[string]string, error) {
	images, err := buildpacks.ParseImages(strings.Split(os.Getenv("DK_BUILDPACK_IMAGES"), ","))
	if err != nil {
		return nil, fmt.Errorf("DK_BUILDPACK_IMAGES: %w", err)
	}
	fromFlags, err := buildpacks.ParseImages(flags)
	if err != nil {
		return nil, fmt.Errorf("--buildpack-image: %w", err)
	}
	maps.Copy(images, fromFlags)
	return images, nil
}

// newDetector returns the buildpacks detector with the configured images,
// following an app's language version when the engine has that image.
func newDetector(images map[string]string, docker *client.Client) buildpacks.Detector {
	return buildpacks.Detector{Images: images, ImageExists: func(ref string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := docker.ImageInspect(ctx, ref)
		return err == nil
	}}
}

// buildpackPlans answers buildpacks:detect and buildpacks:dockerfile: the
// plan for an app's deployed commit, checked out from its repository.
type buildpackPlans struct {
	git      *gitreceive.Server
	store    dk.Store
	detector dk.Detector
}

func (b buildpackPlans) Names() []string { return buildpacks.Names() }

func (b buildpackPlans) Detect(ctx context.Context, app string) (*dk.BuildPlan, string, error) {
	a, err := b.store.App(ctx, app)
	if err != nil {
		return nil, "", err
	}
	commit, err := b.git.Head(app)
	if err != nil {
		return nil, "", err
	}
	if commit == "" {
		return nil, "", dk.Errorf(dk.ENOTFOUND, "%s has no deployed commit yet: git push first", app)
	}
	dir, cleanup, err := b.git.Checkout(ctx, app, commit)
	if err != nil {
		return nil, "", err
	}
	defer cleanup()
	plan, err := b.detector.Detect(dir, a.Config)
	if err != nil {
		return nil, "", err
	}
	if plan.DockerfileContent == nil && plan.Dockerfile != "" {
		// The app's own Dockerfile, as it is built.
		path := filepath.Join(dir, filepath.FromSlash(plan.Dockerfile))
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			return nil, "", dk.Errorf(dk.EFAILED, "%s is not a regular file in commit %s", plan.Dockerfile, commit[:7])
		}
		if plan.DockerfileContent, err = os.ReadFile(path); err != nil {
			return nil, "", fmt.Errorf("read %s: %w", plan.Dockerfile, err)
		}
	}
	return plan, commit, nil
}
