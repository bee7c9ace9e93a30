package releases

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dkhq/dk"
)

// Timing logic runs on synctest's fake clock: no real sleeps, exact times.

func TestWaitHealthyTiming(t *testing.T) {
	notYet := errors.New("connection refused")
	never := func(context.Context) error { return nil }
	t.Run("OK", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			healthyAt := start.Add(3 * time.Second)
			probe := func(context.Context) error {
				if time.Now().Before(healthyAt) {
					return notYet
				}
				return nil
			}
			check := dk.HealthCheck{Timeout: 10 * time.Second, Interval: time.Second}
			if err := waitHealthy(context.Background(), check, probe, never); err != nil {
				t.Fatal(err)
			}
			if got := time.Since(start); got != 3*time.Second {
				t.Errorf("healthy after %s, want 3s (first probe at 0, then every 1s)", got)
			}
		})
	})
	t.Run("ErrTimeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			probes := 0
			probe := func(context.Context) error { probes++; return notYet }
			check := dk.HealthCheck{Timeout: 5 * time.Second, Interval: 500 * time.Millisecond}
			err := waitHealthy(context.Background(), check, probe, never)
			if !errors.Is(err, notYet) {
				t.Fatalf("err = %v, want the last probe error", err)
			}
			if got := time.Since(start); got != 5*time.Second {
				t.Errorf("gave up after %s, want 5s", got)
			}
			if probes != 10 {
				t.Errorf("probes = %d, want 10", probes)
			}
		})
	})
	t.Run("ErrAttempts", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			probe := func(context.Context) error { return notYet }
			check := dk.HealthCheck{Timeout: time.Minute, Interval: time.Second, Attempts: 3}
			err := waitHealthy(context.Background(), check, probe, never)
			if !errorsIsAttempts(err) {
				t.Fatalf("err = %v, want attempts exhausted", err)
			}
			if got := time.Since(start); got != 2*time.Second {
				t.Errorf("gave up after %s, want 2s (3 attempts, 1s apart)", got)
			}
		})
	})
	t.Run("ErrExited", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			start := time.Now()
			exitAt := start.Add(1500 * time.Millisecond)
			exited := func(context.Context) error {
				if time.Now().Before(exitAt) {
					return nil
				}
				return dk.Errorf(dk.EFAILED, "web.1 exited")
			}
			check := dk.HealthCheck{Timeout: time.Minute, Interval: 100 * time.Millisecond}
			err := waitHealthy(context.Background(), check, func(context.Context) error { return notYet }, exited)
			if dk.ErrorCode(err) != dk.EFAILED {
				t.Fatalf("err = %v", err)
			}
			// Exits are looked at every 200ms at most: noticed within that.
			if got := time.Since(start); got < 1500*time.Millisecond || got > 1700*time.Millisecond {
				t.Errorf("exit noticed after %s, want 1.5s–1.7s", got)
			}
		})
	})
	t.Run("Cancelled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(2*time.Second, cancel)
			err := waitHealthy(ctx, dk.HealthCheck{Timeout: time.Minute, Interval: time.Second}, func(context.Context) error { return notYet }, never)
			if err == nil {
				t.Fatal("no error after cancel")
			}
		})
	})
}

func TestHealthCheckDefaults(t *testing.T) {
	h := dk.HealthCheck{}.Overlay(&dk.HealthCheck{Path: "/up"}).WithDefaults(20 * time.Second)
	if h.Path != "/up" || h.Timeout != 20*time.Second || h.Interval != dk.DefaultCheckInterval {
		t.Errorf("check = %+v", h)
	}
	if got := (dk.HealthCheck{}).WithDefaults(0).Timeout; got != dk.DefaultCheckTimeout {
		t.Errorf("default timeout = %s", got)
	}
}

// failingStarts is a runtime whose starts fail, as while the engine shuts down.
type failingStarts struct {
	dk.Runtime
	starts int
}

func (f *failingStarts) Start(context.Context, dk.ContainerSpec) (dk.Container, error) {
	f.starts++
	return dk.Container{}, errors.New("Cannot connect to the Docker daemon")
}

func TestReconcileStartBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &failingStarts{}
		m := &Manager{Runtime: rt}
		tryStart := func() {
			if m.mayStart("app") {
				_, err := m.Runtime.Start(context.Background(), dk.ContainerSpec{})
				m.startResult("app", err)
			}
		}
		// A burst of die events: one start, then nothing until the backoff passes.
		for i := 0; i < 20; i++ {
			tryStart()
		}
		if rt.starts != 1 {
			t.Fatalf("starts in a burst = %d, want 1", rt.starts)
		}
		// Then 1s, 2s, 4s … apart, capped at 30s.
		var gaps []time.Duration
		last := time.Now()
		for rt.starts < 9 {
			time.Sleep(100 * time.Millisecond)
			before := rt.starts
			tryStart()
			if rt.starts > before {
				gaps = append(gaps, time.Since(last))
				last = time.Now()
			}
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
		for i, g := range gaps {
			if g != want[i] {
				t.Errorf("gap %d = %s, want %s (gaps %v)", i, g, want[i], gaps)
				break
			}
		}
		// Another app is not held back.
		if !m.mayStart("other") {
			t.Error("backoff leaked to another app")
		}
		// A success resets it.
		m.startResult("app", nil)
		if !m.mayStart("app") {
			t.Error("backoff not reset after a successful start")
		}
	})
}
