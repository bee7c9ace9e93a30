package gitreceive_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/gitreceive"
)

func TestCheckout(t *testing.T) {
	t.Parallel()
	h, c, _ := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"go.mod": "module x\n", "cmd/x/main.go": "package main\n"})
	first := c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	head, err := h.srv.Head(app)
	if err != nil || head != first {
		t.Fatalf("Head = %q, %v; want %q", head, err, first)
	}
	t.Run("OK", func(t *testing.T) {
		dir, cleanup, err := h.srv.Checkout(t.Context(), app, head)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(dir, "cmd/x/main.go"))
		if err != nil || string(b) != "package main\n" {
			t.Errorf("cmd/x/main.go = %q, %v", b, err)
		}
		cleanup()
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%s still exists after cleanup (%v)", dir, err)
		}
	})
	for name, tc := range map[string]struct{ app, commit, code string }{
		"ErrUnknownCommit": {app, strings.Repeat("1", 40), dk.ENOTFOUND},
		"ErrUnknownApp":    {"nope", head, dk.ENOTFOUND},
		"ErrNotAHash":      {app, "HEAD", dk.EINVALID},
		"ErrAppName":       {"../x", head, dk.EINVALID},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := h.srv.Checkout(t.Context(), tc.app, tc.commit); dk.ErrorCode(err) != tc.code {
				t.Errorf("err = %v, want %s", err, tc.code)
			}
		})
	}
}
