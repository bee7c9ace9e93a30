package dockertest_test

import (
	"context"
	"testing"

	"github.com/dkhq/dk/internal/dockertest"
)

func TestBusybox(t *testing.T) {
	cli := dockertest.Client(t)
	ref := dockertest.Busybox(t, cli)
	img, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Architecture == "" || img.Os != "linux" {
		t.Errorf("image platform = %s/%s, want linux/<arch>", img.Os, img.Architecture)
	}
}
