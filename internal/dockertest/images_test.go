package dockertest_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/dkhq/dk/internal/dockertest"
)

func TestBuildpackStandIns(t *testing.T) {
	cli := dockertest.Client(t)
	if err := dockertest.EnsureBuildpackImages(context.Background(), cli, os.Stderr); err != nil {
		t.Fatal(err)
	}
	for key, ref := range dockertest.BuildpackImages() {
		img, err := cli.ImageInspect(context.Background(), ref)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			continue
		}
		if img.Config == nil || !strings.Contains(strings.Join(img.Config.Env, " "), "PATH=") {
			t.Errorf("%s: %s has no PATH", key, ref)
		}
		t.Logf("%s\t%s\t%.1f MB", key, ref, float64(img.Size)/1e6)
	}
	if !strings.HasPrefix(dockertest.GoImage(), "dk-test/golang:1.") {
		t.Errorf("GoImage() = %s", dockertest.GoImage())
	}
}
