package engine_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/go-cmp/cmp"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/engine"
	"github.com/dkhq/dk/internal/dockertest"
)

// MustNewRuntime returns a runtime for a fresh instance and removes its
// containers and network when the test ends.
func MustNewRuntime(tb testing.TB, cli *client.Client) *engine.Runtime {
	tb.Helper()
	instance := "dktest-" + randomHex(tb, 4)
	r, err := engine.New(context.Background(), cli, instance, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.RemoveAll(ctx); err != nil {
			tb.Errorf("remove containers: %v", err)
		}
		if err := cli.NetworkRemove(ctx, instance); err != nil && !cerrdefs.IsNotFound(err) {
			tb.Errorf("remove network: %v", err)
		}
	})
	return r
}

func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// waitFor polls cond until it holds or timeout passes, then fails with the
// last reason cond gave.
func waitFor(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gave up after %v: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const httpdCommand = `mkdir -p /www && echo "$GREETING" > /www/index.html && exec httpd -f -p $PORT -h /www`

func webSpec(img, app string, release int) dk.ContainerSpec {
	return dk.ContainerSpec{
		App: app, Release: release, Process: "web", Index: 1, Image: img,
		Command: httpdCommand,
		Env:     dk.Config{"GREETING": "hello from " + app, "PORT": "5000", "A_FIRST": "1"},
		Port:    5000,
	}
}

func mustStart(tb testing.TB, r *engine.Runtime, spec dk.ContainerSpec) dk.Container {
	tb.Helper()
	c, err := r.Start(context.Background(), spec)
	if err != nil {
		tb.Fatalf("start %+v: %v", spec, err)
	}
	return c
}

func httpGet(tb testing.TB, addr string) string {
	tb.Helper()
	waitFor(tb, 15*time.Second, func() (bool, string) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s %s", addr, resp.Status, body)
	}
	return string(body)
}

func TestStart(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	before := time.Now()
	c := mustStart(t, r, webSpec(img, "myapp", 3))

	t.Run("Container", func(t *testing.T) {
		if c.ID == "" || c.State != "running" {
			t.Errorf("got %+v, want an ID and state running", c)
		}
		want := dk.Container{ID: c.ID, App: "myapp", Release: 3, Process: "web", Index: 1, State: "running", Addr: c.Addr, StartedAt: c.StartedAt}
		if diff := cmp.Diff(want, c); diff != "" {
			t.Errorf("container (-want +got):\n%s", diff)
		}
		if !regexp.MustCompile(`^\d+\.\d+\.\d+\.\d+:5000$`).MatchString(c.Addr) {
			t.Errorf("addr = %q, want <ip>:5000", c.Addr)
		}
		if c.StartedAt.Before(before.Add(-5*time.Second)) || c.StartedAt.After(time.Now().Add(5*time.Second)) {
			t.Errorf("started at %v, want about now", c.StartedAt)
		}
	})

	t.Run("ServesHTTP", func(t *testing.T) {
		if got := httpGet(t, c.Addr); got != "hello from myapp\n" {
			t.Errorf("GET / = %q, want the GREETING", got)
		}
	})

	t.Run("DockerConfig", func(t *testing.T) {
		info, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		name := regexp.MustCompile("^/" + regexp.QuoteMeta(r.Instance()) + `-myapp-web-1-v3-[0-9a-f]{6}$`)
		if !name.MatchString(info.Name) {
			t.Errorf("name = %q, want %v", info.Name, name)
		}
		wantLabels := map[string]string{
			"dk.instance": r.Instance(), "dk.app": "myapp", "dk.release": "3",
			"dk.process": "web", "dk.index": "1", "dk.port": "5000",
		}
		if diff := cmp.Diff(wantLabels, info.Config.Labels); diff != "" {
			t.Errorf("labels (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"/bin/sh", "-c", httpdCommand}, []string(info.Config.Cmd)); diff != "" {
			t.Errorf("cmd (-want +got):\n%s", diff)
		}
		var env []string
		for _, e := range info.Config.Env {
			if !strings.HasPrefix(e, "PATH=") { // from the image
				env = append(env, e)
			}
		}
		if diff := cmp.Diff([]string{"A_FIRST=1", "GREETING=hello from myapp", "PORT=5000"}, env); diff != "" {
			t.Errorf("env (-want +got):\n%s", diff)
		}
		if info.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
			t.Errorf("restart policy = %q", info.HostConfig.RestartPolicy.Name)
		}
		lc := info.HostConfig.LogConfig
		if lc.Type != "json-file" || lc.Config["max-size"] != "10m" || lc.Config["max-file"] != "3" {
			t.Errorf("log config = %+v", lc)
		}
		if _, ok := info.NetworkSettings.Networks[r.Network()]; !ok || len(info.NetworkSettings.Networks) != 1 {
			t.Errorf("networks = %v, want only %s", info.NetworkSettings.Networks, r.Network())
		}
	})
}

func TestStartImageCmd(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)

	c := mustStart(t, r, dk.ContainerSpec{App: "plain", Release: 1, Process: "worker", Index: 1, Image: img})
	info, err := cli.ContainerInspect(context.Background(), c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/bin/sh"}, []string(info.Config.Cmd)); diff != "" {
		t.Errorf("cmd is not the image's (-want +got):\n%s", diff)
	}
	if c.Addr != "" {
		t.Errorf("addr = %q for a process without a port", c.Addr)
	}
}

func TestStartErrImageNotFound(t *testing.T) {
	cli := dockertest.Client(t)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	ref := r.Instance() + "/nope:v1"
	_, err := r.Start(ctx, dk.ContainerSpec{App: "nope", Release: 1, Process: "web", Index: 1, Image: ref})
	if code := dk.ErrorCode(err); code != dk.EFAILED {
		t.Fatalf("error %v has code %q, want %q", err, code, dk.EFAILED)
	}
	if want := "image " + ref + " not found"; !strings.HasPrefix(dk.ErrorMessage(err), want) {
		t.Errorf("message %q, want it to start with %q", dk.ErrorMessage(err), want)
	}
	if cs, err := r.Containers(ctx, ""); err != nil || len(cs) != 0 {
		t.Errorf("containers = %v, %v; want none", cs, err)
	}
}

func TestStartRecreatesNetwork(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	// `docker network prune` removes the network while no container uses it.
	if err := cli.NetworkRemove(ctx, r.Network()); err != nil {
		t.Fatal(err)
	}
	c := mustStart(t, r, webSpec(img, "again", 1))
	if got := httpGet(t, c.Addr); got != "hello from again\n" {
		t.Errorf("GET / = %q", got)
	}
}

func TestContainers(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	other := MustNewRuntime(t, cli)
	ctx := context.Background()

	sleeper := func(app, proc string, index, release int) dk.ContainerSpec {
		return dk.ContainerSpec{App: app, Release: release, Process: proc, Index: index, Image: img, Command: "exec sleep 1000"}
	}
	// Started out of order: the list comes back sorted.
	specs := []dk.ContainerSpec{
		sleeper("b", "worker", 1, 1),
		webSpec(img, "b", 2),
		sleeper("a", "worker", 2, 1),
		sleeper("a", "worker", 1, 2),
		sleeper("a", "worker", 1, 1),
	}
	byID := map[string]dk.Container{}
	for _, s := range specs {
		c := mustStart(t, r, s)
		byID[c.ID] = c
	}
	foreign := mustStart(t, other, sleeper("a", "worker", 1, 1))

	got, err := r.Containers(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		App, Process string
		Index, Rel   int
		State        string
	}
	var keys []key
	for _, c := range got {
		keys = append(keys, key{c.App, c.Process, c.Index, c.Release, c.State})
		if c.ID == foreign.ID {
			t.Errorf("listed a container of another instance: %+v", c)
		}
		started, ok := byID[c.ID]
		if !ok {
			t.Errorf("listed an unknown container: %+v", c)
			continue
		}
		if c.Addr != started.Addr {
			t.Errorf("%s.%d addr = %q, Start said %q", c.Process, c.Index, c.Addr, started.Addr)
		}
	}
	want := []key{
		{"a", "worker", 1, 1, "running"},
		{"a", "worker", 1, 2, "running"},
		{"a", "worker", 2, 1, "running"},
		{"b", "web", 1, 2, "running"},
		{"b", "worker", 1, 1, "running"},
	}
	if diff := cmp.Diff(want, keys); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}

	t.Run("ByApp", func(t *testing.T) {
		got, err := r.Containers(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].App != "b" || got[1].App != "b" {
			t.Errorf("containers of b = %+v", got)
		}
	})

	t.Run("InspectMatchesList", func(t *testing.T) {
		for _, c := range got {
			in, err := r.Inspect(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			c.StartedAt, in.StartedAt = time.Time{}, time.Time{} // list has creation time
			if diff := cmp.Diff(c, in); diff != "" {
				t.Errorf("inspect vs list (-list +inspect):\n%s", diff)
			}
		}
	})

	t.Run("ErrOtherInstance", func(t *testing.T) {
		if _, err := r.Inspect(ctx, foreign.ID); dk.ErrorCode(err) != dk.ENOTFOUND {
			t.Errorf("inspect of another instance's container: %v, want not found", err)
		}
		if err := r.Stop(ctx, foreign.ID, 0); dk.ErrorCode(err) != dk.ENOTFOUND {
			t.Errorf("stop of another instance's container: %v, want not found", err)
		}
		if err := r.Logs(ctx, foreign.ID, -1, false, func(time.Time, string) {}); dk.ErrorCode(err) != dk.ENOTFOUND {
			t.Errorf("logs of another instance's container: %v, want not found", err)
		}
		if c, err := other.Inspect(ctx, foreign.ID); err != nil || c.State != "running" {
			t.Errorf("the other instance's container was touched: %+v, %v", c, err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := r.Inspect(ctx, "nonexistent-container"); dk.ErrorCode(err) != dk.ENOTFOUND {
			t.Errorf("inspect: %v, want not found", err)
		}
	})
}

func TestStop(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	c := mustStart(t, r, webSpec(img, "stopme", 1))
	httpGet(t, c.Addr)

	t.Run("TermBeforeGrace", func(t *testing.T) {
		start := time.Now()
		if err := r.Stop(ctx, c.ID, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		// httpd exits on SIGTERM: no waiting for the grace period.
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("stop took %v", d)
		}
		if _, err := cli.ContainerInspect(ctx, c.ID); !cerrdefs.IsNotFound(err) {
			t.Errorf("container still there after stop: %v", err)
		}
		if _, err := r.Inspect(ctx, c.ID); dk.ErrorCode(err) != dk.ENOTFOUND {
			t.Errorf("inspect after stop: %v, want not found", err)
		}
	})

	t.Run("AlreadyGone", func(t *testing.T) {
		if err := r.Stop(ctx, c.ID, time.Second); err != nil {
			t.Errorf("second stop: %v", err)
		}
	})

	t.Run("KillAfterGrace", func(t *testing.T) {
		// A process that ignores SIGTERM is killed once the grace ends.
		c := mustStart(t, r, dk.ContainerSpec{App: "stubborn", Release: 1, Process: "worker", Index: 1, Image: img,
			Command: `trap "" TERM; while true; do sleep 1; done`})
		start := time.Now()
		if err := r.Stop(ctx, c.ID, time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 900*time.Millisecond || d > 15*time.Second {
			t.Errorf("stop with 1s grace took %v", d)
		}
		if cs, _ := r.Containers(ctx, "stubborn"); len(cs) != 0 {
			t.Errorf("containers after stop: %+v", cs)
		}
	})
}

func TestCrashIsRestarted(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	c := mustStart(t, r, dk.ContainerSpec{App: "crashy", Release: 1, Process: "worker", Index: 1, Image: img,
		Command: "echo crashing; exit 3"})

	var states []string
	waitFor(t, 30*time.Second, func() (bool, string) {
		info, err := cli.ContainerInspect(ctx, c.ID)
		if err != nil {
			return false, err.Error()
		}
		cs, err := r.Containers(ctx, "crashy")
		if err != nil || len(cs) != 1 {
			return false, fmt.Sprintf("containers: %v %v", cs, err)
		}
		if !slices.Contains(states, cs[0].State) {
			states = append(states, cs[0].State)
		}
		return info.RestartCount >= 2 && info.State.ExitCode == 3,
			fmt.Sprintf("restart count %d, exit code %d, states %v", info.RestartCount, info.State.ExitCode, states)
	})
	t.Logf("states seen while crash-looping: %v", states)
	for _, s := range states {
		if s != "running" && s != "restarting" && s != "exited" {
			t.Errorf("unexpected state %q", s)
		}
	}

	var lines []string
	if err := r.Logs(ctx, c.ID, -1, false, func(_ time.Time, line string) { lines = append(lines, line) }); err != nil {
		t.Fatal(err)
	}
	if len(lines) < 2 || lines[0] != "crashing" || lines[1] != "crashing" {
		t.Errorf("logs across restarts = %q", lines)
	}
}

func TestLogs(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	// stderr first: stdout and stderr are copied separately, so only their
	// own order is certain.
	before := time.Now().Add(-5 * time.Second)
	c := mustStart(t, r, dk.ContainerSpec{App: "logs", Release: 1, Process: "worker", Index: 1, Image: img,
		Command: `echo oops >&2; sleep 0.2; echo one; echo "  two  "; echo three; printf 'four\r\n'; exec sleep 1000`})

	type entry struct {
		ts   time.Time
		line string
	}
	read := func(tail int) []entry {
		t.Helper()
		var out []entry
		err := r.Logs(ctx, c.ID, tail, false, func(ts time.Time, line string) { out = append(out, entry{ts, line}) })
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	lines := func(es []entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.line)
		}
		return out
	}
	waitFor(t, 15*time.Second, func() (bool, string) {
		got := read(-1)
		return len(got) == 5, fmt.Sprintf("lines %q", lines(got))
	})

	t.Run("All", func(t *testing.T) {
		got := read(-1)
		if diff := cmp.Diff([]string{"oops", "one", "  two  ", "three", "four"}, lines(got)); diff != "" {
			t.Errorf("lines (-want +got):\n%s", diff)
		}
		for i, e := range got {
			if e.ts.Before(before) || e.ts.After(time.Now()) {
				t.Errorf("line %d %q has timestamp %v, want about now", i, e.line, e.ts)
			}
			if i > 0 && e.ts.Before(got[i-1].ts) {
				t.Errorf("line %d %q is stamped before the line above it", i, e.line)
			}
		}
	})

	t.Run("Tail", func(t *testing.T) {
		if diff := cmp.Diff([]string{"three", "four"}, lines(read(2))); diff != "" {
			t.Errorf("tail 2 (-want +got):\n%s", diff)
		}
		if got := read(0); len(got) != 0 {
			t.Errorf("tail 0 = %q", lines(got))
		}
	})
}

func TestLogsNoFinalNewline(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	// The output ends without a newline when the process exits; Docker then
	// restarts it, and the next run's first line is a line of its own.
	c := mustStart(t, r, dk.ContainerSpec{App: "partial", Release: 1, Process: "worker", Index: 1, Image: img,
		Command: `echo first; printf last`})
	var lines []string
	waitFor(t, 15*time.Second, func() (bool, string) {
		lines = nil
		if err := r.Logs(ctx, c.ID, -1, false, func(_ time.Time, line string) { lines = append(lines, line) }); err != nil {
			return false, err.Error()
		}
		return len(lines) >= 3, fmt.Sprintf("lines %q", lines)
	})
	if diff := cmp.Diff([]string{"first", "last", "first"}, lines[:3]); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestLogsFollow(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)

	c := mustStart(t, r, dk.ContainerSpec{App: "ticker", Release: 1, Process: "worker", Index: 1, Image: img,
		Command: `i=0; while true; do echo "tick $i"; i=$((i+1)); sleep 0.1; done`})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1000)
	done := make(chan error, 1)
	go func() {
		done <- r.Logs(ctx, c.ID, 0, true, func(_ time.Time, line string) { got <- line })
	}()

	// tail 0: only new lines, in order.
	var first int = -1
	timeout := time.After(15 * time.Second)
	for n := 0; n < 5; n++ {
		select {
		case line := <-got:
			var i int
			if _, err := fmt.Sscanf(line, "tick %d", &i); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if first < 0 {
				first = i
			} else if i != first+n {
				t.Errorf("line %q, want tick %d", line, first+n)
			}
		case err := <-done:
			t.Fatalf("follow ended early: %v", err)
		case <-timeout:
			t.Fatal("no lines while following")
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow ended with %v, want nil on cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not end when ctx was cancelled")
	}
}

func TestLogsFollowEndsWithContainer(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	c := mustStart(t, r, dk.ContainerSpec{App: "short", Release: 1, Process: "worker", Index: 1, Image: img,
		Command: `echo ready; exec sleep 1000`})
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() { done <- r.Logs(ctx, c.ID, -1, true, func(_ time.Time, line string) { got <- line }) }()
	select {
	case line := <-got:
		if line != "ready" {
			t.Errorf("line %q", line)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no line")
	}
	if err := r.Stop(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("follow of a removed container ended with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("follow did not end when the container was removed")
	}
}

func TestLogsLongLine(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	// 40000 characters on one line: the engine stores it in 16 KiB pieces.
	c := mustStart(t, r, dk.ContainerSpec{App: "long", Release: 1, Process: "worker", Index: 1, Image: img,
		Command: `head -c 40000 /dev/zero | tr '\0' x; echo; echo after; exec sleep 1000`})
	var lines []string
	waitFor(t, 15*time.Second, func() (bool, string) {
		lines = nil
		if err := r.Logs(ctx, c.ID, -1, false, func(_ time.Time, line string) { lines = append(lines, line) }); err != nil {
			return false, err.Error()
		}
		return len(lines) >= 2, fmt.Sprintf("%d lines", len(lines))
	})
	if len(lines) != 2 || lines[0] != strings.Repeat("x", 40000) || lines[1] != "after" {
		var lens []int
		for _, l := range lines {
			lens = append(lens, len(l))
		}
		t.Errorf("got %d lines of lengths %v, want 40000 x's then after", len(lines), lens)
	}
}

func TestWatch(t *testing.T) {
	cli := dockertest.Client(t)
	img := dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	other := MustNewRuntime(t, cli)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Record the raw events too, to see what this engine sends.
	args := filters.NewArgs(filters.Arg("type", "container"), filters.Arg("label", "dk.instance="+r.Instance()))
	raw, _ := cli.Events(ctx, events.ListOptions{Filters: args})
	var (
		mu      sync.Mutex
		actions []string
	)
	go func() {
		for m := range raw {
			mu.Lock()
			actions = append(actions, string(m.Action))
			mu.Unlock()
		}
	}()

	apps := make(chan string, 100)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.Watch(ctx, func(app string) { apps <- app })
	}()
	expect := func(want string) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case app := <-apps:
				if app == want {
					return
				}
				if app != "crashy" && app != "calm" {
					t.Errorf("changed(%q): not an app of this instance", app)
				}
			case <-timeout:
				t.Fatalf("no change reported for %q", want)
			}
		}
	}
	// The event stream is live once an event of ours arrives; Docker sends
	// none for the past, so start something and wait for its start event.
	calm := mustStart(t, r, dk.ContainerSpec{App: "calm", Release: 1, Process: "worker", Index: 1, Image: img, Command: "exec sleep 1000"})
	expect("calm")

	mustStart(t, other, dk.ContainerSpec{App: "foreign", Release: 1, Process: "worker", Index: 1, Image: img, Command: "exit 1"})
	mustStart(t, r, dk.ContainerSpec{App: "crashy", Release: 1, Process: "worker", Index: 1, Image: img, Command: "exit 1"})
	expect("crashy") // start, then die, then start again…
	expect("crashy")
	expect("crashy")

	if err := r.Stop(ctx, calm.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	expect("calm")

	waitFor(t, 10*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(actions, "destroy"), fmt.Sprintf("actions %v", actions)
	})
	mu.Lock()
	t.Logf("container events seen (unfiltered by action): %v", actions)
	mu.Unlock()

	cancel()
	select {
	case <-watched:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return when ctx ended")
	}
}

func TestImages(t *testing.T) {
	cli := dockertest.Client(t)
	dockertest.Busybox(t, cli)
	r := MustNewRuntime(t, cli)
	ctx := context.Background()

	rootfs, err := dockertest.BusyboxRootfs()
	if err != nil {
		t.Fatal(err)
	}
	repo := r.Instance() + "/app"
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, repo+":v1", image.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, rc)
	rc.Close()
	if err := cli.ImageTag(ctx, repo+":v1", repo+":v2"); err != nil {
		t.Fatal(err)
	}
	if err := cli.ImageTag(ctx, repo+":v1", repo+"-other:v1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, ref := range []string{repo + ":v1", repo + ":v2", repo + "-other:v1"} {
			cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})

	images := func() []string {
		t.Helper()
		got, err := r.Images(ctx, "app")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if diff := cmp.Diff([]string{repo + ":v1", repo + ":v2"}, images()); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	if _, err := cli.ImageRemove(ctx, repo+"-other:v1", image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}

	c := mustStart(t, r, dk.ContainerSpec{App: "app", Release: 1, Process: "worker", Index: 1, Image: repo + ":v1", Command: "exec sleep 1000"})

	// One of two tags: only untagged, in use or not.
	if err := r.RemoveImage(ctx, repo+":v2"); err != nil {
		t.Errorf("remove v2: %v", err)
	}
	err = r.RemoveImage(ctx, repo+":v1")
	if dk.ErrorCode(err) != dk.ECONFLICT {
		t.Errorf("remove of an image in use: %v, want %s", err, dk.ECONFLICT)
	}
	if diff := cmp.Diff([]string{repo + ":v1"}, images()); diff != "" {
		t.Errorf("images (-want +got):\n%s", diff)
	}
	if err := r.Stop(ctx, c.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveImage(ctx, repo+":v1"); err != nil {
		t.Errorf("remove v1 after stop: %v", err)
	}
	if err := r.RemoveImage(ctx, repo+":v1"); err != nil {
		t.Errorf("remove of a missing image: %v", err)
	}
	if got := images(); len(got) != 0 {
		t.Errorf("images after removal = %v", got)
	}
}

func TestNewConcurrent(t *testing.T) {
	cli := dockertest.Client(t)
	ctx := context.Background()
	instance := "dktest-" + randomHex(t, 4)
	t.Cleanup(func() {
		nets, _ := cli.NetworkList(context.Background(), network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", instance))})
		for _, n := range nets {
			cli.NetworkRemove(context.Background(), n.ID)
		}
	})

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = engine.New(ctx, cli, instance, nil)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", instance))})
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || nets[0].Name != instance || nets[0].Driver != "bridge" {
		t.Errorf("networks = %+v, want one bridge named %s", nets, instance)
	}

	r, err := engine.New(ctx, cli, instance, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
}
