package dk_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/dkhq/dk"
	"github.com/google/go-cmp/cmp"
)

func TestValidateAppName(t *testing.T) {
	for _, name := range []string{"hello", "a", "my-app-2", "0day", strings.Repeat("a", 63)} {
		if err := dk.ValidateAppName(name); err != nil {
			t.Errorf("ValidateAppName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "TestApp", "test_app", "test;id", "test/app", "-x", "app-", "a.b", "a b", strings.Repeat("a", 64), "héllo"} {
		err := dk.ValidateAppName(name)
		if dk.ErrorCode(err) != dk.EINVALID {
			t.Errorf("ValidateAppName(%q) = %v, want EINVALID", name, err)
		}
	}
}

func TestValidateConfigKey(t *testing.T) {
	for _, k := range []string{"A", "_X", "GREETING", "a1_B"} {
		if err := dk.ValidateConfigKey(k); err != nil {
			t.Errorf("%q: %v", k, err)
		}
	}
	for _, k := range []string{"", "1A", "A-B", "A B", "A=B", "Ä"} {
		if dk.ErrorCode(dk.ValidateConfigKey(k)) != dk.EINVALID {
			t.Errorf("%q accepted", k)
		}
	}
}

func TestErrors(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", dk.Errorf(dk.ENOTFOUND, "app %q not found", "x"))
	if got := dk.ErrorCode(err); got != dk.ENOTFOUND {
		t.Errorf("code = %q", got)
	}
	if got := dk.ErrorMessage(err); got != `app "x" not found` {
		t.Errorf("message = %q", got)
	}
	if got := dk.ErrorCode(errors.New("boom")); got != dk.EINTERNAL {
		t.Errorf("plain error code = %q", got)
	}
	if got := dk.ErrorMessage(errors.New("boom")); got != "internal error" {
		t.Errorf("plain error message = %q", got)
	}
	if dk.ErrorCode(nil) != "" {
		t.Error("nil error has a code")
	}
}

func TestReleaseEnv(t *testing.T) {
	r := &dk.Release{App: "hello", Version: 3,
		Global: dk.Config{"A": "global", "B": "global"},
		Config: dk.Config{"B": "app"}}
	want := dk.Config{"A": "global", "B": "app", "PORT": "5000", "DK_APP": "hello", "DK_RELEASE": "v3", "DK_PROCESS_TYPE": "web", "DK_PROCESS_INDEX": "1"}
	if diff := cmp.Diff(want, r.Env("web", 1)); diff != "" {
		t.Errorf("web env (-want +got):\n%s", diff)
	}
	if _, ok := r.Env("worker", 1)["PORT"]; ok {
		t.Error("worker got PORT")
	}
	r.Config["PORT"] = "8000"
	if r.Port() != 8000 || r.Env("web", 1)["PORT"] != "8000" {
		t.Errorf("PORT override not honoured: %d", r.Port())
	}
	r.Config["PORT"] = "nope"
	if r.Port() != dk.DefaultPort {
		t.Errorf("bad PORT not defaulted: %d", r.Port())
	}
}

func TestConfigLogValueRedacts(t *testing.T) {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "config", dk.Config{"SECRET": "hunter2"})
	if strings.Contains(b.String(), "hunter2") || !strings.Contains(b.String(), "SECRET") {
		t.Errorf("log = %q", b.String())
	}
}

func TestParseProcfile(t *testing.T) {
	tests := []struct {
		name, in string
		want     dk.Processes
		err      string
	}{
		{"OK", "web: ./server -p $PORT\n# comment\n\nworker:  ./jobs  \n", dk.Processes{"web": "./server -p $PORT", "worker": "./jobs"}, ""},
		{"ErrMalformed", "web ./server\n", nil, "Procfile line 1"},
		{"ErrDuplicate", "web: a\nweb: b\n", nil, "Procfile line 2: process type \"web\" is declared twice"},
		{"ErrBadName", "web: a\nWeb Server: b\n", nil, "Procfile line 2"},
		{"ErrEmptyCommand", "web:\n", nil, "Procfile line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := dk.ParseProcfile([]byte(tt.in))
			if tt.err != "" {
				if dk.ErrorCode(err) != dk.EINVALID || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
	if got := (dk.Processes{"worker": "", "web": "", "clock": ""}).Types(); !cmp.Equal(got, []string{"web", "clock", "worker"}) {
		t.Errorf("Types = %v", got)
	}
}
