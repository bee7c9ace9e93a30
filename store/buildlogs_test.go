package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/google/go-cmp/cmp"
)

func TestBuilds(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	mustCreateApp(t, db, "hello")

	t.Run("NumberedPerApp", func(t *testing.T) {
		for want := 1; want <= 3; want++ {
			n, err := db.NextBuild(ctx, "hello")
			wantErr(t, err, "", "")
			if n != want {
				t.Errorf("NextBuild = %d, want %d", n, want)
			}
		}
		n, err := db.NextBuild(ctx, "other")
		wantErr(t, err, "", "")
		if n != 1 {
			t.Errorf("NextBuild(other) = %d, want 1", n)
		}
	})

	t.Run("SaveAndRead", func(t *testing.T) {
		b := &dk.Build{App: "hello", Number: 3, Commit: "abc", Author: "admin", Release: 2, Status: dk.BuildSucceeded,
			StartedAt: t0, Duration: 2 * time.Second, Size: 15, Log: []byte("-----> Building\n")}
		wantErr(t, db.SaveBuild(ctx, b), "", "")
		got, err := db.BuildLog(ctx, "hello", 3)
		wantErr(t, err, "", "")
		if diff := cmp.Diff(b, got); diff != "" {
			t.Errorf("BuildLog (-want +got):\n%s", diff)
		}
		list, err := db.Builds(ctx, "hello")
		wantErr(t, err, "", "")
		if len(list) != 1 || list[0].Log != nil || list[0].Number != 3 {
			t.Errorf("Builds = %+v, want build 3 without its log", list)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := db.BuildLog(ctx, "hello", 9)
		wantErr(t, err, dk.ENOTFOUND, `build 9 of "hello" not found`)
		_, err = db.BuildLog(ctx, "nope", 1)
		wantErr(t, err, dk.ENOTFOUND, `build 1 of "nope" not found`)
		list, err := db.Builds(ctx, "nope")
		wantErr(t, err, "", "")
		if len(list) != 0 {
			t.Errorf("Builds(nope) = %v", list)
		}
	})

	t.Run("KeepsTheNewest", func(t *testing.T) {
		for i := 0; i < dk.KeepBuilds+5; i++ {
			n, err := db.NextBuild(ctx, "hello")
			wantErr(t, err, "", "")
			wantErr(t, db.SaveBuild(ctx, &dk.Build{App: "hello", Number: n, Status: dk.BuildFailed, Log: []byte(fmt.Sprint(n))}), "", "")
		}
		list, err := db.Builds(ctx, "hello")
		wantErr(t, err, "", "")
		if len(list) != dk.KeepBuilds || list[0].Number != 3+dk.KeepBuilds+5 || list[len(list)-1].Number != 3+6 {
			t.Errorf("kept %d builds, %d…%d", len(list), list[0].Number, list[len(list)-1].Number)
		}
		_, err = db.BuildLog(ctx, "hello", 3)
		wantErr(t, err, dk.ENOTFOUND, `build 3 of "hello" not found`)
	})

	t.Run("GoWithTheApp", func(t *testing.T) {
		wantErr(t, db.DeleteApp(ctx, "hello"), "", "")
		mustCreateApp(t, db, "hello")
		list, err := db.Builds(ctx, "hello")
		wantErr(t, err, "", "")
		if len(list) != 0 {
			t.Errorf("a new app of the same name has %d builds", len(list))
		}
	})
}

func TestLoginTokensAndSessions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	s := &dk.Session{Key: dk.Key{Name: "alice"}, CreatedAt: t0, Expires: t0.Add(5 * time.Minute)}

	t.Run("TokenWorksOnce", func(t *testing.T) {
		wantErr(t, db.CreateLoginToken(ctx, "h1", s), "", "")
		got, err := db.ConsumeLoginToken(ctx, "h1", t0.Add(time.Minute))
		wantErr(t, err, "", "")
		if got.Key.Name != "alice" {
			t.Errorf("token is for %q", got.Key.Name)
		}
		_, err = db.ConsumeLoginToken(ctx, "h1", t0.Add(time.Minute))
		wantErr(t, err, dk.ENOTFOUND, "login link not found")
	})
	t.Run("TokenExpires", func(t *testing.T) {
		wantErr(t, db.CreateLoginToken(ctx, "h2", s), "", "")
		_, err := db.ConsumeLoginToken(ctx, "h2", t0.Add(5*time.Minute))
		wantErr(t, err, dk.ENOTFOUND, "login link expired")
	})
	t.Run("Sessions", func(t *testing.T) {
		wantErr(t, db.CreateSession(ctx, "s1", s), "", "")
		got, err := db.Session(ctx, "s1", t0.Add(time.Minute))
		wantErr(t, err, "", "")
		if got.Key.Name != "alice" {
			t.Errorf("session is for %q", got.Key.Name)
		}
		_, err = db.Session(ctx, "s1", t0.Add(6*time.Minute))
		wantErr(t, err, dk.ENOTFOUND, "session expired")
		wantErr(t, db.DeleteSession(ctx, "s1"), "", "")
		_, err = db.Session(ctx, "s1", t0.Add(time.Minute))
		wantErr(t, err, dk.ENOTFOUND, "session not found")
	})
	t.Run("ExpiredOnesAreForgotten", func(t *testing.T) {
		wantErr(t, db.CreateSession(ctx, "old", s), "", "")
		later := &dk.Session{Key: dk.Key{Name: "bob"}, CreatedAt: t0.Add(time.Hour), Expires: t0.Add(2 * time.Hour)}
		wantErr(t, db.CreateSession(ctx, "new", later), "", "")
		// Even asked with an old clock, the expired session is gone.
		_, err := db.Session(ctx, "old", t0)
		wantErr(t, err, dk.ENOTFOUND, "session not found")
	})
}

func TestReleaseHeads(t *testing.T) {
	ctx := context.Background()
	db := MustOpenStore(t)
	mustCreateApp(t, db, "hello")
	newest, cur, err := db.ReleaseHeads(ctx, "hello")
	if err != nil || newest != nil || cur != nil {
		t.Fatalf("no releases: %v %v %v", newest, cur, err)
	}
	for _, status := range []string{dk.ReleaseSucceeded, dk.ReleaseSucceeded, dk.ReleaseFailed, dk.ReleasePending} {
		r := mustCreateRelease(t, db, "hello", "img")
		r.Status = status
		wantErr(t, db.UpdateRelease(ctx, r), "", "")
	}
	newest, cur, err = db.ReleaseHeads(ctx, "hello")
	wantErr(t, err, "", "")
	if newest.Version != 4 || cur.Version != 2 {
		t.Errorf("newest v%d, current v%d; want v4, v2", newest.Version, cur.Version)
	}
	_, _, err = db.ReleaseHeads(ctx, "nope")
	wantErr(t, err, dk.ENOTFOUND, `app "nope" not found`)
}
