package main

import (
	"context"
	"io"
	"time"

	"github.com/dkhq/dk"
)

// buildStore keeps builds' logs (store.DB).
type buildStore interface {
	NextBuild(ctx context.Context, app string) (int, error)
	SaveBuild(ctx context.Context, b *dk.Build) error
}

// buildRecord captures one push's progress output (size-capped) for the
// dashboard's build log pages.
type buildRecord struct {
	builds buildStore
	b      dk.Build
	buf    dk.LogBuffer
	start  time.Time
}

// recordBuild numbers app's next build and returns a writer that tees
// progress into its log; finish stores it. Without a store, or when
// numbering fails, it records nothing and returns progress unchanged.
func recordBuild(ctx context.Context, builds buildStore, app, commit string, key *dk.Key, progress io.Writer) (*buildRecord, io.Writer) {
	if builds == nil {
		return nil, progress
	}
	n, err := builds.NextBuild(ctx, app)
	if err != nil {
		return nil, progress
	}
	r := &buildRecord{builds: builds, start: time.Now(),
		b: dk.Build{App: app, Number: n, Commit: commit, Author: key.Name, StartedAt: time.Now().UTC()}}
	// The buffer first: it never fails, so a gone pusher does not stop the log.
	return r, io.MultiWriter(&r.buf, progress)
}

// number is the build's number (0 when not recording).
func (r *buildRecord) number() int {
	if r == nil {
		return 0
	}
	return r.b.Number
}

// finish stores the build with its outcome (the deploy's error, if any).
func (r *buildRecord) finish(ctx context.Context, rel *dk.Release, err error) error {
	if r == nil {
		return nil
	}
	r.b.Status, r.b.Duration = dk.BuildSucceeded, time.Since(r.start)
	if err != nil {
		r.b.Status, r.b.Error = dk.BuildFailed, dk.ErrorMessage(err)
	}
	if rel != nil {
		r.b.Release = rel.Version
	}
	r.b.Size = r.buf.Len()
	r.b.Log, r.b.Truncated = r.buf.Bytes()
	return r.builds.SaveBuild(context.WithoutCancel(ctx), &r.b)
}
