// Package store keeps dk's state in a single bbolt file: apps, their
// numbered releases, the global config layer, SSH keys and a few small
// metadata blobs. Values are stored as JSON.
//
// bbolt takes an exclusive lock on the file, so only one dkd process can
// use a store at a time; all administration goes through that process.
// Transactions never outlive a method call: every value handed out is a
// copy decoded inside its transaction.
//
// Layout:
//
//	apps        name → App
//	releases    name → bucket: 8-byte big-endian version → Release
//	global      "config" → Config
//	keys        name → Key
//	keys_by_fp  fingerprint → name
//	meta        name → bytes
//	builds      build logs per app, dashboard: login tokens and sessions
//	            (made on first use; see buildlogs.go)
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/dkhq/dk"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// LockTimeout is how long Open waits for another process to release the
// store's file lock before giving up.
const LockTimeout = 2 * time.Second

var (
	bucketApps     = []byte("apps")
	bucketReleases = []byte("releases")
	bucketGlobal   = []byte("global")
	bucketKeys     = []byte("keys")
	bucketKeysByFP = []byte("keys_by_fp")
	bucketMeta     = []byte("meta")

	keyGlobalConfig = []byte("config")
)

var allBuckets = [][]byte{bucketApps, bucketReleases, bucketGlobal, bucketKeys, bucketKeysByFP, bucketMeta}

// DB is a dk.Store backed by bbolt. It is safe for concurrent use.
type DB struct {
	bolt *bolt.DB
	path string
}

var _ dk.Store = (*DB)(nil)

// Open opens the store at path, creating the file (mode 0600) and its
// buckets if needed. If another process holds the store, Open fails after
// LockTimeout with a dk.ECONFLICT error.
func Open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, dk.Errorf(dk.ECONFLICT, "store %s is locked by another dkd process", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// The file may predate us with looser permissions; it holds config secrets.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &DB{bolt: b, path: path}, nil
}

// Close closes the store, releasing its file lock.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", db.path, err)
	}
	return nil
}

// App returns the named app.
func (db *DB) App(ctx context.Context, name string) (*dk.App, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var app *dk.App
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		app, err = getApp(tx, name)
		return err
	})
	return app, err
}

// Apps returns all apps, sorted by name (never nil).
func (db *DB) Apps(ctx context.Context) ([]*dk.App, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	apps := []*dk.App{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketApps).ForEach(func(k, v []byte) error {
			app := new(dk.App)
			if err := decode(v, app); err != nil {
				return fmt.Errorf("decode app %q: %w", k, err)
			}
			apps = append(apps, app)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	// Keys are already in byte order; sort anyway so the contract does not
	// depend on the storage layout.
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	return apps, nil
}

// CreateApp stores a new app. An app with that name must not exist.
func (db *DB) CreateApp(ctx context.Context, app *dk.App) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if app == nil {
		return dk.Errorf(dk.EINVALID, "no app given")
	}
	if err := dk.ValidateAppName(app.Name); err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		apps := tx.Bucket(bucketApps)
		if apps.Get([]byte(app.Name)) != nil {
			return dk.Errorf(dk.ECONFLICT, "app %q already exists", app.Name)
		}
		// Releases left behind by an earlier app of the same name (there
		// should be none: DeleteApp removes them) must not leak into this one.
		if err := deleteBucketIfExists(tx.Bucket(bucketReleases), []byte(app.Name)); err != nil {
			return err
		}
		return put(apps, []byte(app.Name), app)
	})
}

// UpdateApp applies fn to a copy of the stored app inside one write
// transaction and stores the result. An error from fn aborts the update and
// is returned as is. fn must not call the store (the write lock is held)
// and must not rename the app.
func (db *DB) UpdateApp(ctx context.Context, name string, fn func(*dk.App) error) (*dk.App, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out *dk.App
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		app, err := getApp(tx, name)
		if err != nil {
			return err
		}
		if err := fn(app); err != nil {
			return err
		}
		if app.Name != name {
			return dk.Errorf(dk.EINVALID, "app %q cannot be renamed to %q", name, app.Name)
		}
		if err := put(tx.Bucket(bucketApps), []byte(name), app); err != nil {
			return err
		}
		out = app
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteApp removes an app and all of its releases.
func (db *DB) DeleteApp(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		apps := tx.Bucket(bucketApps)
		if apps.Get([]byte(name)) == nil {
			return appNotFound(name)
		}
		if err := apps.Delete([]byte(name)); err != nil {
			return fmt.Errorf("delete app %q: %w", name, err)
		}
		if err := deleteBuilds(tx, name); err != nil {
			return err
		}
		return deleteBucketIfExists(tx.Bucket(bucketReleases), []byte(name))
	})
}

// GlobalConfig returns the global config layer (never nil).
func (db *DB) GlobalConfig(ctx context.Context) (dk.Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var c dk.Config
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		c, err = getGlobal(tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// UpdateGlobalConfig applies fn to a copy of the global config inside one
// write transaction and stores the result. An error from fn aborts the
// update and is returned as is. fn must not call the store.
func (db *DB) UpdateGlobalConfig(ctx context.Context, fn func(dk.Config) error) (dk.Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out dk.Config
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		c, err := getGlobal(tx)
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		if err := put(tx.Bucket(bucketGlobal), keyGlobalConfig, c); err != nil {
			return err
		}
		out = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CreateRelease assigns r the next version of its app (v1, v2, … with no
// gaps) and stores it. r.App must name an existing app. r.Version is set
// only when the release was stored.
func (db *DB) CreateRelease(ctx context.Context, r *dk.Release) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r == nil {
		return dk.Errorf(dk.EINVALID, "no release given")
	}
	var version int
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketApps).Get([]byte(r.App)) == nil {
			return appNotFound(r.App)
		}
		rels, err := tx.Bucket(bucketReleases).CreateBucketIfNotExists([]byte(r.App))
		if err != nil {
			return fmt.Errorf("create releases bucket of %q: %w", r.App, err)
		}
		seq, err := rels.NextSequence()
		if err != nil {
			return fmt.Errorf("next release of %q: %w", r.App, err)
		}
		stored := *r
		stored.Version = int(seq)
		if err := put(rels, versionKey(stored.Version), &stored); err != nil {
			return err
		}
		version = stored.Version
		return nil
	})
	if err != nil {
		return err
	}
	r.Version = version
	return nil
}

// UpdateRelease replaces a stored release (matched by r.App and r.Version).
func (db *DB) UpdateRelease(ctx context.Context, r *dk.Release) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r == nil {
		return dk.Errorf(dk.EINVALID, "no release given")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		rels := tx.Bucket(bucketReleases).Bucket([]byte(r.App))
		if r.Version < 1 || rels == nil || rels.Get(versionKey(r.Version)) == nil {
			return releaseNotFound(r.App, r.Version)
		}
		return put(rels, versionKey(r.Version), r)
	})
}

// Release returns version v of an app.
func (db *DB) Release(ctx context.Context, app string, version int) (*dk.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var r *dk.Release
	err := db.bolt.View(func(tx *bolt.Tx) error {
		rels := tx.Bucket(bucketReleases).Bucket([]byte(app))
		if version < 1 || rels == nil {
			return releaseNotFound(app, version)
		}
		v := rels.Get(versionKey(version))
		if v == nil {
			return releaseNotFound(app, version)
		}
		r = new(dk.Release)
		if err := decode(v, r); err != nil {
			return fmt.Errorf("decode release v%d of %q: %w", version, app, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Releases lists an app's releases, newest first (never nil). The app must
// exist.
func (db *DB) Releases(ctx context.Context, app string) ([]*dk.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []*dk.Release{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return eachRelease(tx, app, func(r *dk.Release) bool {
			out = append(out, r)
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachRelease calls fn with an app's releases, newest first, until fn
// returns false. The app must exist.
func eachRelease(tx *bolt.Tx, app string, fn func(*dk.Release) bool) error {
	if tx.Bucket(bucketApps).Get([]byte(app)) == nil {
		return appNotFound(app)
	}
	rels := tx.Bucket(bucketReleases).Bucket([]byte(app))
	if rels == nil {
		return nil
	}
	c := rels.Cursor()
	for k, v := c.Last(); k != nil; k, v = c.Prev() {
		r := new(dk.Release)
		if err := decode(v, r); err != nil {
			return fmt.Errorf("decode release %x of %q: %w", k, app, err)
		}
		if !fn(r) {
			return nil
		}
	}
	return nil
}

// PendingReleases returns every release, across all apps, whose status is
// still dk.ReleasePending, ordered by app name then version. At startup
// these are deploys a crash interrupted.
func (db *DB) PendingReleases(ctx context.Context) ([]*dk.Release, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := []*dk.Release{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReleases).ForEachBucket(func(app []byte) error {
			rels := tx.Bucket(bucketReleases).Bucket(app)
			return rels.ForEach(func(k, v []byte) error {
				// A status probe first would save little: releases are small.
				r := new(dk.Release)
				if err := decode(v, r); err != nil {
					return fmt.Errorf("decode release %x of %q: %w", k, app, err)
				}
				if r.Status == dk.ReleasePending {
					out = append(out, r)
				}
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Keys returns all SSH keys, sorted by name (never nil).
func (db *DB) Keys(ctx context.Context) ([]*dk.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	keys := []*dk.Key{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketKeys).ForEach(func(k, v []byte) error {
			key := new(dk.Key)
			if err := decode(v, key); err != nil {
				return fmt.Errorf("decode key %q: %w", k, err)
			}
			keys = append(keys, key)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	return keys, nil
}

// KeyByFingerprint returns the key with the given fingerprint (SHA256:…).
func (db *DB) KeyByFingerprint(ctx context.Context, fp string) (*dk.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var key *dk.Key
	err := db.bolt.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketKeysByFP).Get([]byte(fp))
		if name == nil {
			return dk.Errorf(dk.ENOTFOUND, "key %s not found", fp)
		}
		v := tx.Bucket(bucketKeys).Get(name)
		if v == nil {
			return fmt.Errorf("fingerprint %s indexes missing key %q", fp, name)
		}
		key = new(dk.Key)
		if err := decode(v, key); err != nil {
			return fmt.Errorf("decode key %q: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return key, nil
}

// CreateKey stores a new SSH key. Neither its name nor its fingerprint may
// be in use.
func (db *DB) CreateKey(ctx context.Context, k *dk.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if k == nil {
		return dk.Errorf(dk.EINVALID, "no key given")
	}
	if err := dk.ValidateKeyName(k.Name); err != nil {
		return err
	}
	if k.Fingerprint == "" {
		return dk.Errorf(dk.EINVALID, "key %q has no fingerprint", k.Name)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		keys, byFP := tx.Bucket(bucketKeys), tx.Bucket(bucketKeysByFP)
		if owner := byFP.Get([]byte(k.Fingerprint)); owner != nil {
			return dk.Errorf(dk.ECONFLICT, "key already added as %q", owner)
		}
		if keys.Get([]byte(k.Name)) != nil {
			return dk.Errorf(dk.ECONFLICT, "key %q already exists", k.Name)
		}
		if err := byFP.Put([]byte(k.Fingerprint), []byte(k.Name)); err != nil {
			return fmt.Errorf("index key %q: %w", k.Name, err)
		}
		return put(keys, []byte(k.Name), k)
	})
}

// DeleteKey removes the named SSH key.
func (db *DB) DeleteKey(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		keys, byFP := tx.Bucket(bucketKeys), tx.Bucket(bucketKeysByFP)
		v := keys.Get([]byte(name))
		if v == nil {
			return dk.Errorf(dk.ENOTFOUND, "key %q not found", name)
		}
		var key dk.Key
		if err := decode(v, &key); err != nil {
			return fmt.Errorf("decode key %q: %w", name, err)
		}
		// Only drop the index entry if it points at this key.
		if owner := byFP.Get([]byte(key.Fingerprint)); bytes.Equal(owner, []byte(name)) {
			if err := byFP.Delete([]byte(key.Fingerprint)); err != nil {
				return fmt.Errorf("unindex key %q: %w", name, err)
			}
		}
		if err := keys.Delete([]byte(name)); err != nil {
			return fmt.Errorf("delete key %q: %w", name, err)
		}
		return nil
	})
}

// Meta returns the metadata blob stored under name (host key, instance id
// …), or nil and no error if there is none.
func (db *DB) Meta(name string) ([]byte, error) {
	var out []byte
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(name)); v != nil {
			out = append([]byte{}, v...) // v is only valid inside the transaction
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetMeta stores a metadata blob under name, replacing any previous value.
func (db *DB) SetMeta(name string, value []byte) error {
	if name == "" {
		return dk.Errorf(dk.EINVALID, "meta name is empty")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketMeta).Put([]byte(name), value); err != nil {
			return fmt.Errorf("set meta %q: %w", name, err)
		}
		return nil
	})
}

func getApp(tx *bolt.Tx, name string) (*dk.App, error) {
	v := tx.Bucket(bucketApps).Get([]byte(name))
	if v == nil {
		return nil, appNotFound(name)
	}
	app := new(dk.App)
	if err := decode(v, app); err != nil {
		return nil, fmt.Errorf("decode app %q: %w", name, err)
	}
	return app, nil
}

func getGlobal(tx *bolt.Tx) (dk.Config, error) {
	c := dk.Config{}
	if v := tx.Bucket(bucketGlobal).Get(keyGlobalConfig); v != nil {
		if err := decode(v, &c); err != nil {
			return nil, fmt.Errorf("decode global config: %w", err)
		}
	}
	if c == nil { // stored as JSON null
		c = dk.Config{}
	}
	return c, nil
}

func appNotFound(name string) error {
	return dk.Errorf(dk.ENOTFOUND, "app %q not found", name)
}

func releaseNotFound(app string, version int) error {
	return dk.Errorf(dk.ENOTFOUND, "release v%d of %q not found", version, app)
}

// versionKey is the 8-byte big-endian key of a release, so that byte order
// is version order.
func versionKey(v int) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, uint64(v))
	return k
}

func put(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	if err := b.Put(key, data); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// decode unmarshals v, which json.Unmarshal copies out of the bbolt page.
func decode(v []byte, dst any) error {
	return json.Unmarshal(v, dst)
}

func deleteBucketIfExists(b *bolt.Bucket, name []byte) error {
	err := b.DeleteBucket(name)
	if err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
		return fmt.Errorf("delete bucket %q: %w", name, err)
	}
	return nil
}
