package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/store"
	"github.com/google/go-cmp/cmp"
)

// MustOpenStore opens a fresh store in a temporary directory, closed when
// the test ends.
func MustOpenStore(tb testing.TB) *store.DB {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "dk.db"))
}

func mustOpenAt(tb testing.TB, path string) *store.DB {
	tb.Helper()
	db, err := store.Open(path)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return db
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// wantErr checks err's dk code and message; an empty code means no error.
func wantErr(t *testing.T, err error, code, msg string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got no error, want %s %q", code, msg)
	}
	if got := dk.ErrorCode(err); got != code {
		t.Errorf("error code = %q, want %q (err: %v)", got, code, err)
	}
	if got := dk.ErrorMessage(err); got != msg {
		t.Errorf("error message = %q, want %q", got, msg)
	}
}

func mustCreateApp(t *testing.T, db *store.DB, name string) *dk.App {
	t.Helper()
	app := &dk.App{Name: name, CreatedAt: t0}
	if err := db.CreateApp(context.Background(), app); err != nil {
		t.Fatalf("create app %s: %v", name, err)
	}
	return app
}

func mustCreateRelease(t *testing.T, db *store.DB, app, image string) *dk.Release {
	t.Helper()
	r := &dk.Release{App: app, Image: image, Status: dk.ReleasePending, CreatedAt: t0,
		Config: dk.Config{"A": "1"}, Global: dk.Config{}, Processes: dk.Processes{"web": ""}}
	if err := db.CreateRelease(context.Background(), r); err != nil {
		t.Fatalf("create release of %s: %v", app, err)
	}
	return r
}

func TestOpen(t *testing.T) {
	t.Run("Perms", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dk.db")
		if err := os.WriteFile(path, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		mustOpenAt(t, path)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode = %o, want 600", got)
		}
	})
	t.Run("ErrLocked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "dk.db")
		mustOpenAt(t, path)
		start := time.Now()
		db, err := store.Open(path)
		if err == nil {
			db.Close()
			t.Fatal("second Open succeeded")
		}
		wantErr(t, err, dk.ECONFLICT, "store "+path+" is locked by another dkd process")
		if d := time.Since(start); d > store.LockTimeout+5*time.Second {
			t.Errorf("second Open took %v, want about %v", d, store.LockTimeout)
		}
	})
	t.Run("ErrNoDir", func(t *testing.T) {
		_, err := store.Open(filepath.Join(t.TempDir(), "missing", "dk.db"))
		if err == nil {
			t.Fatal("Open in a missing directory succeeded")
		}
		if got := dk.ErrorCode(err); got != dk.EINTERNAL {
			t.Errorf("error code = %q, want %q", got, dk.EINTERNAL)
		}
	})
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "dk.db")
		db, err := store.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		app := &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"K": "v"}, Formation: dk.Formation{"web": 2}}
		key := &dk.Key{Name: "alice", PublicKey: "ssh-ed25519 AAAA", Fingerprint: "SHA256:a", Admin: true, CreatedAt: t0}
		r := &dk.Release{App: "myapp", Image: "dk/myapp:v1", Status: dk.ReleaseSucceeded, CreatedAt: t0,
			Timings: []dk.Timing{{Stage: "build", Duration: time.Second}}}
		steps := []error{
			db.CreateApp(ctx, app),
			db.CreateKey(ctx, key),
			db.CreateRelease(ctx, r),
			db.SetMeta("instance", []byte("id-1")),
		}
		_, err = db.UpdateGlobalConfig(ctx, func(c dk.Config) error { c["G"] = "g"; return nil })
		steps = append(steps, err, db.Close())
		if err := errors.Join(steps...); err != nil {
			t.Fatal(err)
		}

		db = mustOpenAt(t, path)
		gotApp, err := db.App(ctx, "myapp")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(app, gotApp); diff != "" {
			t.Errorf("app (-want +got):\n%s", diff)
		}
		gotKey, err := db.KeyByFingerprint(ctx, "SHA256:a")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(key, gotKey); diff != "" {
			t.Errorf("key (-want +got):\n%s", diff)
		}
		gotRel, err := db.Release(ctx, "myapp", 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, gotRel); diff != "" {
			t.Errorf("release (-want +got):\n%s", diff)
		}
		gotMeta, err := db.Meta("instance")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]byte("id-1"), gotMeta); diff != "" {
			t.Errorf("meta (-want +got):\n%s", diff)
		}
		gotGlobal, err := db.GlobalConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(dk.Config{"G": "g"}, gotGlobal); diff != "" {
			t.Errorf("global (-want +got):\n%s", diff)
		}
		// Versions continue after a reopen.
		if r2 := mustCreateRelease(t, db, "myapp", "dk/myapp:v2"); r2.Version != 2 {
			t.Errorf("version after reopen = %d, want 2", r2.Version)
		}
	})
}

func TestCanceledContext(t *testing.T) {
	db := MustOpenStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := map[string]func() error{
		"App":                func() error { _, err := db.App(ctx, "a"); return err },
		"Apps":               func() error { _, err := db.Apps(ctx); return err },
		"CreateApp":          func() error { return db.CreateApp(ctx, &dk.App{Name: "a"}) },
		"UpdateApp":          func() error { _, err := db.UpdateApp(ctx, "a", nil); return err },
		"DeleteApp":          func() error { return db.DeleteApp(ctx, "a") },
		"GlobalConfig":       func() error { _, err := db.GlobalConfig(ctx); return err },
		"UpdateGlobalConfig": func() error { _, err := db.UpdateGlobalConfig(ctx, nil); return err },
		"CreateRelease":      func() error { return db.CreateRelease(ctx, &dk.Release{App: "a"}) },
		"UpdateRelease":      func() error { return db.UpdateRelease(ctx, &dk.Release{App: "a", Version: 1}) },
		"Release":            func() error { _, err := db.Release(ctx, "a", 1); return err },
		"Releases":           func() error { _, err := db.Releases(ctx, "a"); return err },
		"PendingReleases":    func() error { _, err := db.PendingReleases(ctx); return err },
		"Keys":               func() error { _, err := db.Keys(ctx); return err },
		"KeyByFingerprint":   func() error { _, err := db.KeyByFingerprint(ctx, "x"); return err },
		"CreateKey":          func() error { return db.CreateKey(ctx, &dk.Key{Name: "k", Fingerprint: "x"}) },
		"DeleteKey":          func() error { return db.DeleteKey(ctx, "k") },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want context.Canceled", err)
			}
		})
	}
}

func TestApp(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	want := &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"A": "1"}, Formation: dk.Formation{"worker": 2}}
	if err := db.CreateApp(ctx, want); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		app     string
		want    *dk.App
		code    string
		message string
	}{
		{name: "OK", app: "myapp", want: want},
		{name: "ErrNotFound", app: "nope", code: dk.ENOTFOUND, message: `app "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.App(ctx, tt.app)
			wantErr(t, err, tt.code, tt.message)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("app (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("Copy", func(t *testing.T) {
		got, err := db.App(ctx, "myapp")
		if err != nil {
			t.Fatal(err)
		}
		got.Config["A"] = "changed"
		again, err := db.App(ctx, "myapp")
		if err != nil {
			t.Fatal(err)
		}
		if again.Config["A"] != "1" {
			t.Errorf("mutating a returned app changed the store: %v", again.Config["A"])
		}
	})
}

func TestCreateApp(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	mustCreateApp(t, db, "taken")
	tests := []struct {
		name    string
		app     *dk.App
		code    string
		message string
	}{
		{name: "OK", app: &dk.App{Name: "fresh", CreatedAt: t0}},
		{name: "ErrExists", app: &dk.App{Name: "taken"}, code: dk.ECONFLICT, message: `app "taken" already exists`},
		{name: "ErrNameInvalid", app: &dk.App{Name: "Bad_Name"}, code: dk.EINVALID,
			message: `invalid app name "Bad_Name": use lowercase letters, digits and dashes, starting and ending with a letter or digit, at most 63 characters`},
		{name: "ErrNameEmpty", app: &dk.App{}, code: dk.EINVALID,
			message: "app name is empty: use lowercase letters, digits and dashes, e.g. myapp"},
		{name: "ErrNil", app: nil, code: dk.EINVALID, message: "no app given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.CreateApp(ctx, tt.app)
			wantErr(t, err, tt.code, tt.message)
			if err != nil {
				return
			}
			got, err := db.App(ctx, tt.app.Name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.app, got); diff != "" {
				t.Errorf("stored app (-want +got):\n%s", diff)
			}
		})
	}
}

func TestApps(t *testing.T) {
	ctx := context.Background()
	t.Run("Empty", func(t *testing.T) {
		got, err := MustOpenStore(t).Apps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*dk.App{}, got); diff != "" {
			t.Errorf("apps (-want +got):\n%s", diff)
		}
	})
	t.Run("SortedByName", func(t *testing.T) {
		db := MustOpenStore(t)
		for _, name := range []string{"zeta", "alpha", "mid", "alpha-2"} {
			mustCreateApp(t, db, name)
		}
		got, err := db.Apps(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, a := range got {
			names = append(names, a.Name)
		}
		if diff := cmp.Diff([]string{"alpha", "alpha-2", "mid", "zeta"}, names); diff != "" {
			t.Errorf("app names (-want +got):\n%s", diff)
		}
	})
}

func TestUpdateApp(t *testing.T) {
	ctx := context.Background()
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		app     string
		fn      func(*dk.App) error
		want    *dk.App // the stored app afterwards
		code    string
		message string
		err     error // if set, the exact error expected
	}{
		{
			name: "OK",
			app:  "myapp",
			fn: func(a *dk.App) error {
				a.Config = a.Config.Clone()
				a.Config["NEW"] = "x"
				a.Formation = dk.Formation{"web": 3}
				return nil
			},
			want: &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"A": "1", "NEW": "x"}, Formation: dk.Formation{"web": 3}},
		},
		{
			name: "ErrNotFound",
			app:  "nope",
			fn:   func(*dk.App) error { t.Error("fn called for a missing app"); return nil },
			code: dk.ENOTFOUND, message: `app "nope" not found`,
		},
		{
			name: "ErrFromFnAborts",
			app:  "myapp",
			fn:   func(a *dk.App) error { a.Config["A"] = "changed"; return errBoom },
			want: &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"A": "1"}},
			err:  errBoom,
		},
		{
			name: "ErrDkFromFn",
			app:  "myapp",
			fn:   func(a *dk.App) error { return dk.Errorf(dk.EINVALID, "bad scale") },
			want: &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"A": "1"}},
			code: dk.EINVALID, message: "bad scale",
		},
		{
			name: "ErrRename",
			app:  "myapp",
			fn:   func(a *dk.App) error { a.Name = "other"; return nil },
			want: &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"A": "1"}},
			code: dk.EINVALID, message: `app "myapp" cannot be renamed to "other"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpenStore(t)
			if err := db.CreateApp(ctx, &dk.App{Name: "myapp", CreatedAt: t0, Config: dk.Config{"A": "1"}}); err != nil {
				t.Fatal(err)
			}
			got, err := db.UpdateApp(ctx, tt.app, tt.fn)
			switch {
			case tt.err != nil:
				if err != tt.err {
					t.Fatalf("err = %v, want %v as is", err, tt.err)
				}
			default:
				wantErr(t, err, tt.code, tt.message)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("returned app (-want +got):\n%s", diff)
				}
			} else if got != nil {
				t.Errorf("returned app = %v on error, want nil", got)
			}
			if tt.want == nil {
				return
			}
			stored, err := db.App(ctx, tt.want.Name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, stored); diff != "" {
				t.Errorf("stored app (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteApp(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		mustCreateApp(t, db, "myapp")
		mustCreateApp(t, db, "other")
		mustCreateRelease(t, db, "myapp", "img:1")
		mustCreateRelease(t, db, "other", "img:1")
		if err := db.DeleteApp(ctx, "myapp"); err != nil {
			t.Fatal(err)
		}
		_, err := db.App(ctx, "myapp")
		wantErr(t, err, dk.ENOTFOUND, `app "myapp" not found`)
		_, err = db.Release(ctx, "myapp", 1)
		wantErr(t, err, dk.ENOTFOUND, `release v1 of "myapp" not found`)
		if _, err := db.Release(ctx, "other", 1); err != nil {
			t.Errorf("other app's release: %v", err)
		}
		// Re-created, the app starts again at v1 with no old releases.
		mustCreateApp(t, db, "myapp")
		rels, err := db.Releases(ctx, "myapp")
		if err != nil {
			t.Fatal(err)
		}
		if len(rels) != 0 {
			t.Errorf("re-created app has %d releases, want 0", len(rels))
		}
		if r := mustCreateRelease(t, db, "myapp", "img:2"); r.Version != 1 {
			t.Errorf("first release of re-created app is v%d, want v1", r.Version)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		err := MustOpenStore(t).DeleteApp(ctx, "nope")
		wantErr(t, err, dk.ENOTFOUND, `app "nope" not found`)
	})
}

func TestGlobalConfig(t *testing.T) {
	ctx := context.Background()
	t.Run("EmptyNotNil", func(t *testing.T) {
		got, err := MustOpenStore(t).GlobalConfig(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Fatal("GlobalConfig returned a nil map")
		}
		if diff := cmp.Diff(dk.Config{}, got); diff != "" {
			t.Errorf("config (-want +got):\n%s", diff)
		}
	})
}

func TestUpdateGlobalConfig(t *testing.T) {
	ctx := context.Background()
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      func(dk.Config) error
		want    dk.Config // stored afterwards
		code    string
		message string
		err     error
	}{
		{
			name: "OK",
			fn:   func(c dk.Config) error { c["B"] = "2"; delete(c, "A"); return nil },
			want: dk.Config{"B": "2"},
		},
		{
			name: "ErrFromFnAborts",
			fn:   func(c dk.Config) error { c["B"] = "2"; return errBoom },
			want: dk.Config{"A": "1"},
			err:  errBoom,
		},
		{
			name: "ErrDkFromFn",
			fn:   func(c dk.Config) error { return dk.Errorf(dk.EINVALID, `invalid config key "1X"`) },
			want: dk.Config{"A": "1"},
			code: dk.EINVALID, message: `invalid config key "1X"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := MustOpenStore(t)
			if _, err := db.UpdateGlobalConfig(ctx, func(c dk.Config) error { c["A"] = "1"; return nil }); err != nil {
				t.Fatal(err)
			}
			got, err := db.UpdateGlobalConfig(ctx, tt.fn)
			if tt.err != nil {
				if err != tt.err {
					t.Fatalf("err = %v, want %v as is", err, tt.err)
				}
			} else {
				wantErr(t, err, tt.code, tt.message)
			}
			if err == nil {
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("returned config (-want +got):\n%s", diff)
				}
			}
			stored, err := db.GlobalConfig(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, stored); diff != "" {
				t.Errorf("stored config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateRelease(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		mustCreateApp(t, db, "myapp")
		r := &dk.Release{App: "myapp", Version: 42, Description: "Deploy abc1234", Image: "dk/myapp:abc",
			Commit: "abc1234", Config: dk.Config{"A": "1"}, Global: dk.Config{"G": "2"},
			Processes: dk.Processes{"web": "./server", "worker": ""}, Status: dk.ReleasePending,
			Author: "alice", CreatedAt: t0}
		if err := db.CreateRelease(ctx, r); err != nil {
			t.Fatal(err)
		}
		if r.Version != 1 {
			t.Errorf("version = %d, want 1 (the given 42 is ignored)", r.Version)
		}
		got, err := db.Release(ctx, "myapp", 1)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Errorf("stored release (-want +got):\n%s", diff)
		}
	})
	t.Run("DensePerApp", func(t *testing.T) {
		db := MustOpenStore(t)
		mustCreateApp(t, db, "a")
		mustCreateApp(t, db, "b")
		var got []string
		for _, app := range []string{"a", "a", "b", "a", "b"} {
			r := mustCreateRelease(t, db, app, "img")
			got = append(got, app+r.Name())
		}
		if diff := cmp.Diff([]string{"av1", "av2", "bv1", "av3", "bv2"}, got); diff != "" {
			t.Errorf("versions (-want +got):\n%s", diff)
		}
	})
	t.Run("ErrAppNotFound", func(t *testing.T) {
		r := &dk.Release{App: "nope"}
		err := MustOpenStore(t).CreateRelease(ctx, r)
		wantErr(t, err, dk.ENOTFOUND, `app "nope" not found`)
		if r.Version != 0 {
			t.Errorf("version = %d after a failed create, want 0", r.Version)
		}
	})
	t.Run("ErrNil", func(t *testing.T) {
		err := MustOpenStore(t).CreateRelease(ctx, nil)
		wantErr(t, err, dk.EINVALID, "no release given")
	})
	t.Run("Concurrent", func(t *testing.T) {
		db := MustOpenStore(t)
		mustCreateApp(t, db, "myapp")
		const n = 50
		versions := make([]int, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				r := &dk.Release{App: "myapp", Image: "img", Status: dk.ReleasePending}
				errs[i] = db.CreateRelease(ctx, r)
				versions[i] = r.Version
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		sort.Ints(versions)
		want := make([]int, n)
		for i := range want {
			want[i] = i + 1
		}
		if diff := cmp.Diff(want, versions); diff != "" {
			t.Errorf("versions (-want +got):\n%s", diff)
		}
		rels, err := db.Releases(ctx, "myapp")
		if err != nil {
			t.Fatal(err)
		}
		if len(rels) != n {
			t.Errorf("stored %d releases, want %d", len(rels), n)
		}
	})
}

func TestUpdateRelease(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	mustCreateApp(t, db, "myapp")
	mustCreateApp(t, db, "empty")
	base := mustCreateRelease(t, db, "myapp", "img:1")
	updated := *base
	updated.Status = dk.ReleaseFailed
	updated.Error = "app never listened on PORT 5000"
	updated.Timings = []dk.Timing{{Stage: "start", Duration: 3 * time.Second}}
	tests := []struct {
		name    string
		r       *dk.Release
		code    string
		message string
	}{
		{name: "OK", r: &updated},
		{name: "ErrNotFound", r: &dk.Release{App: "myapp", Version: 2}, code: dk.ENOTFOUND, message: `release v2 of "myapp" not found`},
		{name: "ErrVersionZero", r: &dk.Release{App: "myapp"}, code: dk.ENOTFOUND, message: `release v0 of "myapp" not found`},
		{name: "ErrAppHasNoReleases", r: &dk.Release{App: "empty", Version: 1}, code: dk.ENOTFOUND, message: `release v1 of "empty" not found`},
		{name: "ErrAppNotFound", r: &dk.Release{App: "nope", Version: 1}, code: dk.ENOTFOUND, message: `release v1 of "nope" not found`},
		{name: "ErrNil", r: nil, code: dk.EINVALID, message: "no release given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.UpdateRelease(ctx, tt.r)
			wantErr(t, err, tt.code, tt.message)
			if err != nil {
				return
			}
			got, err := db.Release(ctx, tt.r.App, tt.r.Version)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.r, got); diff != "" {
				t.Errorf("stored release (-want +got):\n%s", diff)
			}
		})
	}
	// Updating does not advance the sequence.
	if r := mustCreateRelease(t, db, "myapp", "img:2"); r.Version != 2 {
		t.Errorf("next version = %d, want 2", r.Version)
	}
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	mustCreateApp(t, db, "myapp")
	v1 := mustCreateRelease(t, db, "myapp", "img:1")
	v2 := mustCreateRelease(t, db, "myapp", "img:2")
	tests := []struct {
		name    string
		app     string
		version int
		want    *dk.Release
		code    string
		message string
	}{
		{name: "OK", app: "myapp", version: 1, want: v1},
		{name: "OKLatest", app: "myapp", version: 2, want: v2},
		{name: "ErrNotFound", app: "myapp", version: 3, code: dk.ENOTFOUND, message: `release v3 of "myapp" not found`},
		{name: "ErrNegative", app: "myapp", version: -1, code: dk.ENOTFOUND, message: `release v-1 of "myapp" not found`},
		{name: "ErrAppNotFound", app: "nope", version: 1, code: dk.ENOTFOUND, message: `release v1 of "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Release(ctx, tt.app, tt.version)
			wantErr(t, err, tt.code, tt.message)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("release (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReleases(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	mustCreateApp(t, db, "myapp")
	mustCreateApp(t, db, "empty")
	var want []*dk.Release
	// 300 releases cross the 255 boundary, where a little-endian or
	// string key would sort wrongly.
	for range 300 {
		want = append([]*dk.Release{mustCreateRelease(t, db, "myapp", "img")}, want...)
	}
	tests := []struct {
		name    string
		app     string
		want    []*dk.Release
		code    string
		message string
	}{
		{name: "NewestFirst", app: "myapp", want: want},
		{name: "Empty", app: "empty", want: []*dk.Release{}},
		{name: "ErrAppNotFound", app: "nope", code: dk.ENOTFOUND, message: `app "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Releases(ctx, tt.app)
			wantErr(t, err, tt.code, tt.message)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("releases (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPendingReleases(t *testing.T) {
	ctx := context.Background()
	t.Run("Empty", func(t *testing.T) {
		got, err := MustOpenStore(t).PendingReleases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*dk.Release{}, got); diff != "" {
			t.Errorf("pending (-want +got):\n%s", diff)
		}
	})
	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		mustCreateApp(t, db, "b")
		mustCreateApp(t, db, "a")
		mustCreateApp(t, db, "c")
		b1 := mustCreateRelease(t, db, "b", "img") // pending
		b2 := mustCreateRelease(t, db, "b", "img") // succeeded below
		a1 := mustCreateRelease(t, db, "a", "img") // failed below
		a2 := mustCreateRelease(t, db, "a", "img") // pending
		b3 := mustCreateRelease(t, db, "b", "img") // pending
		b2.Status = dk.ReleaseSucceeded
		a1.Status = dk.ReleaseFailed
		if err := errors.Join(db.UpdateRelease(ctx, b2), db.UpdateRelease(ctx, a1)); err != nil {
			t.Fatal(err)
		}
		got, err := db.PendingReleases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*dk.Release{a2, b1, b3}, got); diff != "" {
			t.Errorf("pending (-want +got):\n%s", diff)
		}
		// Marking them failed (what dkd does at startup) empties the list.
		for _, r := range got {
			r.Status = dk.ReleaseFailed
			if err := db.UpdateRelease(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got, err = db.PendingReleases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 0 {
			t.Errorf("still pending: %d", len(got))
		}
	})
}

func TestKeys(t *testing.T) {
	ctx := context.Background()
	t.Run("Empty", func(t *testing.T) {
		got, err := MustOpenStore(t).Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*dk.Key{}, got); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
	})
	t.Run("SortedByName", func(t *testing.T) {
		db := MustOpenStore(t)
		var want []*dk.Key
		for _, name := range []string{"carol", "alice", "bob"} {
			k := &dk.Key{Name: name, PublicKey: "ssh-ed25519 " + name, Fingerprint: "SHA256:" + name, CreatedAt: t0}
			if err := db.CreateKey(ctx, k); err != nil {
				t.Fatal(err)
			}
			want = append(want, k)
		}
		sort.Slice(want, func(i, j int) bool { return want[i].Name < want[j].Name })
		got, err := db.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("keys (-want +got):\n%s", diff)
		}
	})
}

func TestCreateKey(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	alice := &dk.Key{Name: "alice", PublicKey: "ssh-ed25519 AAAA alice", Fingerprint: "SHA256:alice", Admin: true, CreatedAt: t0}
	if err := db.CreateKey(ctx, alice); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		key     *dk.Key
		code    string
		message string
	}{
		{name: "OK", key: &dk.Key{Name: "bob@laptop", PublicKey: "ssh-ed25519 BBBB", Fingerprint: "SHA256:bob", CreatedAt: t0}},
		{name: "ErrNameExists", key: &dk.Key{Name: "alice", Fingerprint: "SHA256:other"},
			code: dk.ECONFLICT, message: `key "alice" already exists`},
		{name: "ErrFingerprintExists", key: &dk.Key{Name: "alice2", Fingerprint: "SHA256:alice"},
			code: dk.ECONFLICT, message: `key already added as "alice"`},
		{name: "ErrNameInvalid", key: &dk.Key{Name: "a b", Fingerprint: "SHA256:x"},
			code: dk.EINVALID, message: `invalid key name "a b": use letters, digits, dots, dashes, underscores and @`},
		{name: "ErrNoFingerprint", key: &dk.Key{Name: "carol"},
			code: dk.EINVALID, message: `key "carol" has no fingerprint`},
		{name: "ErrNil", key: nil, code: dk.EINVALID, message: "no key given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.CreateKey(ctx, tt.key)
			wantErr(t, err, tt.code, tt.message)
			if err != nil {
				return
			}
			got, err := db.KeyByFingerprint(ctx, tt.key.Fingerprint)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.key, got); diff != "" {
				t.Errorf("stored key (-want +got):\n%s", diff)
			}
		})
	}
}

func TestKeyByFingerprint(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	alice := &dk.Key{Name: "alice", PublicKey: "ssh-ed25519 AAAA", Fingerprint: "SHA256:alice", Admin: true, CreatedAt: t0}
	if err := db.CreateKey(ctx, alice); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fp      string
		want    *dk.Key
		code    string
		message string
	}{
		{name: "OK", fp: "SHA256:alice", want: alice},
		{name: "ErrNotFound", fp: "SHA256:nope", code: dk.ENOTFOUND, message: "key SHA256:nope not found"},
		{name: "ErrEmpty", fp: "", code: dk.ENOTFOUND, message: "key  not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.KeyByFingerprint(ctx, tt.fp)
			wantErr(t, err, tt.code, tt.message)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("key (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteKey(t *testing.T) {
	ctx := context.Background()
	t.Run("OK", func(t *testing.T) {
		db := MustOpenStore(t)
		k := &dk.Key{Name: "alice", Fingerprint: "SHA256:alice"}
		if err := db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteKey(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		_, err := db.KeyByFingerprint(ctx, "SHA256:alice")
		wantErr(t, err, dk.ENOTFOUND, "key SHA256:alice not found")
		keys, err := db.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 0 {
			t.Errorf("%d keys left, want 0", len(keys))
		}
		// The fingerprint is free again, under a new name.
		if err := db.CreateKey(ctx, &dk.Key{Name: "alice-new", Fingerprint: "SHA256:alice"}); err != nil {
			t.Errorf("re-adding the key: %v", err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		err := MustOpenStore(t).DeleteKey(ctx, "nope")
		wantErr(t, err, dk.ENOTFOUND, `key "nope" not found`)
	})
}

func TestMeta(t *testing.T) {
	db := MustOpenStore(t)
	if err := db.SetMeta("host_key", []byte("PEM")); err != nil {
		t.Fatal(err)
	}
	if err := db.SetMeta("empty", []byte{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  string
		want []byte
	}{
		{name: "OK", key: "host_key", want: []byte("PEM")},
		{name: "Missing", key: "nope", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Meta(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("meta (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("Empty", func(t *testing.T) {
		got, err := db.Meta("empty")
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || len(got) != 0 {
			t.Errorf("meta = %#v, want empty non-nil", got)
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		if err := db.SetMeta("host_key", []byte("PEM2")); err != nil {
			t.Fatal(err)
		}
		got, err := db.Meta("host_key")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]byte("PEM2"), got); diff != "" {
			t.Errorf("meta (-want +got):\n%s", diff)
		}
	})
	t.Run("ErrEmptyName", func(t *testing.T) {
		wantErr(t, db.SetMeta("", []byte("x")), dk.EINVALID, "meta name is empty")
	})
}
