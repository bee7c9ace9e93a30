package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/dkhq/dk"
)

type memBuilds struct {
	next  int
	saved []*dk.Build
}

func (m *memBuilds) NextBuild(context.Context, string) (int, error) { m.next++; return m.next, nil }
func (m *memBuilds) SaveBuild(_ context.Context, b *dk.Build) error {
	m.saved = append(m.saved, b)
	return nil
}

// failing is a pusher that went away.
type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestRecordBuild(t *testing.T) {
	ctx := context.Background()
	builds := &memBuilds{}
	key := &dk.Key{Name: "alice"}

	var pusher strings.Builder
	rec, w := recordBuild(ctx, builds, "hello", "abc123", key, &pusher)
	fmt.Fprintln(w, "-----> Building hello")
	if err := rec.finish(ctx, &dk.Release{Version: 4}, nil); err != nil {
		t.Fatal(err)
	}
	if pusher.String() != "-----> Building hello\n" {
		t.Errorf("the pusher saw %q", pusher.String())
	}
	b := builds.saved[0]
	if b.Number != 1 || b.Release != 4 || b.Status != dk.BuildSucceeded || b.Author != "alice" || b.Commit != "abc123" ||
		string(b.Log) != "-----> Building hello\n" || b.Size != 22 {
		t.Errorf("saved %+v", b)
	}

	// A gone pusher does not stop the log; the deploy's error is kept.
	rec, w = recordBuild(ctx, builds, "hello", "def456", key, failing{})
	fmt.Fprintln(w, " !     build failed: no Dockerfile")
	if err := rec.finish(ctx, nil, dk.Errorf(dk.EFAILED, "build failed: no Dockerfile")); err != nil {
		t.Fatal(err)
	}
	b = builds.saved[1]
	if b.Number != 2 || b.Status != dk.BuildFailed || b.Error != "build failed: no Dockerfile" || !strings.Contains(string(b.Log), "no Dockerfile") {
		t.Errorf("saved %+v", b)
	}

	// Without a store nothing is recorded and the pusher's writer is used as is.
	rec, w = recordBuild(ctx, nil, "hello", "x", key, &pusher)
	if w != io.Writer(&pusher) || rec.number() != 0 || rec.finish(ctx, nil, errors.New("x")) != nil {
		t.Errorf("recorded without a store")
	}
}
