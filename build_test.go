package dk_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dkhq/dk"
)

func TestLogBuffer(t *testing.T) {
	t.Run("Small", func(t *testing.T) {
		var b dk.LogBuffer
		b.Write([]byte("-----> Building\n"))
		b.Write([]byte("done\n"))
		got, cut := b.Bytes()
		if string(got) != "-----> Building\ndone\n" || cut {
			t.Errorf("got %q, cut %v", got, cut)
		}
	})
	t.Run("Capped", func(t *testing.T) {
		b := dk.LogBuffer{Max: 100}
		b.Write([]byte(strings.Repeat("a", 30)))
		for i := 0; i < 50; i++ {
			b.Write([]byte("0123456789"))
		}
		b.Write([]byte("THE END"))
		got, cut := b.Bytes()
		if !cut || b.Len() != 537 {
			t.Fatalf("cut %v, len %d", cut, b.Len())
		}
		if !bytes.HasPrefix(got, []byte(strings.Repeat("a", 25)+"\n[… 437 bytes of output not kept …]\n")) {
			t.Errorf("head: %q", got)
		}
		if !bytes.HasSuffix(got, []byte("3456789THE END")) {
			t.Errorf("tail: %q", got)
		}
		if n := len(got) - len("\n[… 437 bytes of output not kept …]\n"); n != 100 {
			t.Errorf("kept %d bytes, want 100", n)
		}
	})
	t.Run("OneHugeWrite", func(t *testing.T) {
		b := dk.LogBuffer{Max: 8}
		b.Write([]byte("abcdefghijklmnopqrstuvwxyz"))
		got, _ := b.Bytes()
		if !bytes.HasPrefix(got, []byte("ab\n")) || !bytes.HasSuffix(got, []byte("\nuvwxyz")) {
			t.Errorf("got %q", got)
		}
	})
}
