package store

import (
	"context"
	"fmt"
	"time"

	"github.com/dkhq/dk"
	bolt "go.etcd.io/bbolt"
)

// The dashboard's login tokens and sessions, made on first use:
//
//	dashboard   "login" → sha256 hex → Session; "sessions" → sha256 hex → Session

// ReleaseHeads returns an app's newest release and its current one (the
// newest succeeded), or nil for either, reading no further back than the
// current release: the dashboard's overview needs only these.
func (db *DB) ReleaseHeads(ctx context.Context, app string) (newest, current *dk.Release, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	err = db.bolt.View(func(tx *bolt.Tx) error {
		return eachRelease(tx, app, func(r *dk.Release) bool {
			if newest == nil {
				newest = r
			}
			if r.Status == dk.ReleaseSucceeded {
				current = r
				return false
			}
			return true
		})
	})
	if err != nil {
		return nil, nil, err
	}
	return newest, current, nil
}

var (
	bucketDashboard = []byte("dashboard")
	bucketLogins    = []byte("login")
	bucketSessions  = []byte("sessions")
)

// CreateLoginToken stores a one-time dashboard login token under the hash
// of its secret, and forgets expired tokens.
func (db *DB) CreateLoginToken(ctx context.Context, hash string, s *dk.Session) error {
	return db.putSession(ctx, bucketLogins, hash, s)
}

// ConsumeLoginToken returns the login token stored under hash and deletes
// it, in one transaction: a token works once. An unknown, used or expired
// token is dk.ENOTFOUND.
func (db *DB) ConsumeLoginToken(ctx context.Context, hash string, now time.Time) (*dk.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *dk.Session
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := sessionBucket(tx, bucketLogins)
		if b == nil {
			return dk.Errorf(dk.ENOTFOUND, "login link not found")
		}
		v := b.Get([]byte(hash))
		if v == nil {
			return dk.Errorf(dk.ENOTFOUND, "login link not found")
		}
		s = new(dk.Session)
		if err := decode(v, s); err != nil {
			return fmt.Errorf("decode login token: %w", err)
		}
		if err := b.Delete([]byte(hash)); err != nil {
			return fmt.Errorf("delete login token: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !now.Before(s.Expires) {
		return nil, dk.Errorf(dk.ENOTFOUND, "login link expired")
	}
	return s, nil
}

// CreateSession stores a dashboard session under the hash of its id, and
// forgets expired sessions.
func (db *DB) CreateSession(ctx context.Context, hash string, s *dk.Session) error {
	return db.putSession(ctx, bucketSessions, hash, s)
}

// Session returns the unexpired session stored under hash (dk.ENOTFOUND
// otherwise).
func (db *DB) Session(ctx context.Context, hash string, now time.Time) (*dk.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var s *dk.Session
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := sessionBucket(tx, bucketSessions)
		var v []byte
		if b != nil {
			v = b.Get([]byte(hash))
		}
		if v == nil {
			return dk.Errorf(dk.ENOTFOUND, "session not found")
		}
		s = new(dk.Session)
		return decode(v, s)
	})
	if err != nil {
		return nil, err
	}
	if !now.Before(s.Expires) {
		return nil, dk.Errorf(dk.ENOTFOUND, "session expired")
	}
	return s, nil
}

// DeleteSession forgets the session stored under hash (no error if none).
func (db *DB) DeleteSession(ctx context.Context, hash string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if b := sessionBucket(tx, bucketSessions); b != nil {
			return b.Delete([]byte(hash))
		}
		return nil
	})
}

func (db *DB) putSession(ctx context.Context, kind []byte, hash string, s *dk.Session) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if hash == "" || s == nil {
		return dk.Errorf(dk.EINVALID, "no session given")
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		d, err := tx.CreateBucketIfNotExists(bucketDashboard)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketDashboard, err)
		}
		b, err := d.CreateBucketIfNotExists(kind)
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", kind, err)
		}
		// Forget expired entries: there are few, and this keeps them few.
		var expired [][]byte
		err = b.ForEach(func(k, v []byte) error {
			var old dk.Session
			if decode(v, &old) != nil || !s.CreatedAt.Before(old.Expires) {
				expired = append(expired, append([]byte(nil), k...))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range expired {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("delete expired %s: %w", kind, err)
			}
		}
		return put(b, []byte(hash), s)
	})
}

func sessionBucket(tx *bolt.Tx, kind []byte) *bolt.Bucket {
	d := tx.Bucket(bucketDashboard)
	if d == nil {
		return nil
	}
	return d.Bucket(kind)
}
