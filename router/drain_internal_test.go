package router

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestDrainTiming(t *testing.T) {
	t.Run("ErrTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := New("localhost", nil)
			p.counter("10.0.0.1:5000").Add(1) // a request that never finishes
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			if err := p.Drain(ctx, []string{"10.0.0.1:5000"}); err == nil {
				t.Error("drain returned nil with a request in flight")
			}
			if got := time.Since(start); got != 30*time.Second {
				t.Errorf("drain gave up after %s, want 30s", got)
			}
		})
	})
	t.Run("OK", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := New("localhost", nil)
			n := p.counter("10.0.0.1:5000")
			n.Add(1)
			time.AfterFunc(2*time.Second, func() { n.Add(-1) }) // it finishes after 2s
			start := time.Now()
			if err := p.Drain(context.Background(), []string{"10.0.0.1:5000"}); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got < 2*time.Second || got > 2*time.Second+20*time.Millisecond {
				t.Errorf("drained after %s, want just over 2s", got)
			}
		})
	})
}
