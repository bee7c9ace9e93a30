package store

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/dkhq/dk"
	bolt "go.etcd.io/bbolt"
)

// Build logs live in their own buckets, made on first use:
//
//	builds      app → bucket: "meta" → 8-byte build number → Build (JSON, no log)
//	                          "log"  → 8-byte build number → the raw log
var (
	bucketBuilds    = []byte("builds")
	bucketBuildMeta = []byte("meta")
	bucketBuildLog  = []byte("log")
)

// NextBuild reserves app's next build number (1, 2, …). A number whose
// build is never saved (dkd stopped mid-build) is simply skipped.
func (db *DB) NextBuild(ctx context.Context, app string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var n int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := buildsBucket(tx, app)
		if err != nil {
			return err
		}
		seq, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("next build of %q: %w", app, err)
		}
		n = int(seq)
		return nil
	})
	return n, err
}

// SaveBuild stores a finished build and its log (b.Log, cut to
// dk.MaxBuildLog), and forgets the app's builds older than the newest
// dk.KeepBuilds.
func (db *DB) SaveBuild(ctx context.Context, b *dk.Build) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b == nil || b.Number < 1 {
		return dk.Errorf(dk.EINVALID, "no build number")
	}
	log := b.Log
	if len(log) > dk.MaxBuildLog {
		log, b.Truncated = log[len(log)-dk.MaxBuildLog:], true
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		bb, err := buildsBucket(tx, b.App)
		if err != nil {
			return err
		}
		meta, err := bb.CreateBucketIfNotExists(bucketBuildMeta)
		if err != nil {
			return fmt.Errorf("builds of %q: %w", b.App, err)
		}
		logs, err := bb.CreateBucketIfNotExists(bucketBuildLog)
		if err != nil {
			return fmt.Errorf("build logs of %q: %w", b.App, err)
		}
		k := versionKey(b.Number)
		if err := put(meta, k, b); err != nil {
			return err
		}
		if err := logs.Put(k, log); err != nil {
			return fmt.Errorf("put build log %d of %q: %w", b.Number, b.App, err)
		}
		// Prune: keep the newest KeepBuilds.
		var old [][]byte
		c := meta.Cursor()
		kept := 0
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			if kept++; kept > dk.KeepBuilds {
				old = append(old, append([]byte(nil), k...))
			}
		}
		for _, k := range old {
			if err := meta.Delete(k); err != nil {
				return fmt.Errorf("prune build %d of %q: %w", binary.BigEndian.Uint64(k), b.App, err)
			}
			if err := logs.Delete(k); err != nil {
				return fmt.Errorf("prune build log %d of %q: %w", binary.BigEndian.Uint64(k), b.App, err)
			}
		}
		return nil
	})
}

// Builds lists an app's kept builds, newest first, without their logs
// (never nil).
func (db *DB) Builds(ctx context.Context, app string) ([]*dk.Build, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []*dk.Build{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := buildMeta(tx, app)
		if meta == nil {
			return nil
		}
		c := meta.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			b := new(dk.Build)
			if err := decode(v, b); err != nil {
				return fmt.Errorf("decode build %x of %q: %w", k, app, err)
			}
			out = append(out, b)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BuildLog returns build n of app with its log.
func (db *DB) BuildLog(ctx context.Context, app string, n int) (*dk.Build, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var b *dk.Build
	err := db.bolt.View(func(tx *bolt.Tx) error {
		meta := buildMeta(tx, app)
		if meta == nil || n < 1 {
			return buildNotFound(app, n)
		}
		v := meta.Get(versionKey(n))
		if v == nil {
			return buildNotFound(app, n)
		}
		b = new(dk.Build)
		if err := decode(v, b); err != nil {
			return fmt.Errorf("decode build %d of %q: %w", n, app, err)
		}
		if logs := tx.Bucket(bucketBuilds).Bucket([]byte(app)).Bucket(bucketBuildLog); logs != nil {
			b.Log = append([]byte{}, logs.Get(versionKey(n))...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// buildsBucket returns app's builds bucket, creating it (inside a write
// transaction).
func buildsBucket(tx *bolt.Tx, app string) (*bolt.Bucket, error) {
	if err := dk.ValidateAppName(app); err != nil {
		return nil, err
	}
	all, err := tx.CreateBucketIfNotExists(bucketBuilds)
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", bucketBuilds, err)
	}
	b, err := all.CreateBucketIfNotExists([]byte(app))
	if err != nil {
		return nil, fmt.Errorf("create builds bucket of %q: %w", app, err)
	}
	return b, nil
}

func buildMeta(tx *bolt.Tx, app string) *bolt.Bucket {
	all := tx.Bucket(bucketBuilds)
	if all == nil {
		return nil
	}
	b := all.Bucket([]byte(app))
	if b == nil {
		return nil
	}
	return b.Bucket(bucketBuildMeta)
}

// deleteBuilds forgets an app's builds (DeleteApp).
func deleteBuilds(tx *bolt.Tx, app string) error {
	all := tx.Bucket(bucketBuilds)
	if all == nil {
		return nil
	}
	return deleteBucketIfExists(all, []byte(app))
}

func buildNotFound(app string, n int) error {
	return dk.Errorf(dk.ENOTFOUND, "build %d of %q not found", n, app)
}
