package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dkhq/dk/engine"
	"github.com/rogpeppe/go-internal/testscript"
)

// A load run keeps requests flowing through dk's router while a script
// deploys, and counts every request that did not get a 2xx.
type loadRun struct {
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	ok, bad, errs    atomic.Int64
	mu               sync.Mutex
	firstBad, badMsg string
}

var (
	loadsMu sync.Mutex
	loads   = map[*testscript.TestScript]*loadRun{}
)

// load start HOST [WORKERS] | load stop: with stop, prints
// "requests N ok N non2xx N errors N" and fails unless every request got a 2xx.
func cmdLoad(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 1 {
		ts.Fatalf("usage: load start HOST [WORKERS] | load stop")
	}
	loadsMu.Lock()
	defer loadsMu.Unlock()
	switch args[0] {
	case "start":
		if len(args) < 2 {
			ts.Fatalf("usage: load start HOST [WORKERS]")
		}
		workers := 4
		if len(args) > 2 {
			workers, _ = strconv.Atoi(args[2])
		}
		ctx, cancel := context.WithCancel(context.Background())
		l := &loadRun{cancel: cancel}
		loads[ts] = l
		addr, host := ts.Getenv("HTTP_ADDR"), args[1]
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		for i := 0; i < workers; i++ {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
					req.Host = host
					resp, err := client.Do(req)
					if ctx.Err() != nil {
						return
					}
					if err != nil {
						l.errs.Add(1)
						l.note(err.Error())
						continue
					}
					resp.Body.Close()
					if resp.StatusCode/100 != 2 {
						l.bad.Add(1)
						l.note(resp.Status)
						continue
					}
					l.ok.Add(1)
				}
			}()
		}
	case "stop":
		l := loads[ts]
		if l == nil {
			ts.Fatalf("load stop without load start")
		}
		delete(loads, ts)
		l.cancel()
		l.wg.Wait()
		total := l.ok.Load() + l.bad.Load() + l.errs.Load()
		fmt.Fprintf(ts.Stdout(), "requests %d ok %d non2xx %d errors %d\n", total, l.ok.Load(), l.bad.Load(), l.errs.Load())
		failed := l.bad.Load()+l.errs.Load() > 0
		if failed != neg {
			ts.Fatalf("load: %d of %d requests failed (first: %s)", l.bad.Load()+l.errs.Load(), total, l.firstBad)
		}
		if total == 0 {
			ts.Fatalf("load: no requests were made")
		}
	default:
		ts.Fatalf("usage: load start HOST [WORKERS] | load stop")
	}
}

func (l *loadRun) note(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.firstBad == "" {
		l.firstBad = msg
	}
}

// waitcount APP N [PROCESS]: wait (60s) until APP has exactly N containers (of PROCESS).
func cmdWaitCount(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: waitcount APP N [PROCESS]")
	}
	want, _ := strconv.Atoi(args[1])
	cli, err := dockerClient()
	ts.Check(err)
	defer cli.Close()
	rt, err := engine.New(context.Background(), cli, ts.Getenv("DK_INSTANCE"), nil)
	ts.Check(err)
	deadline := time.Now().Add(60 * time.Second)
	n := -1
	for time.Now().Before(deadline) {
		cs, err := rt.Containers(context.Background(), args[0])
		ts.Check(err)
		n = 0
		for _, c := range cs {
			if len(args) < 3 || c.Process == args[2] {
				n++
			}
		}
		if n == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	ts.Fatalf("%s has %d containers, want %d", args[0], n, want)
}

// waitstatus APP VERSION STATUS: poll releases:info until vN has STATUS (60s).
func cmdWaitStatus(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: waitstatus APP vN STATUS")
	}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		out, _ := sshOutput(ts, "releases:info", args[0], args[1], "--json")
		last = out
		if strings.Contains(out, `"status": "`+args[2]+`"`) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.Fatalf("%s %s never reached %s; last: %s", args[0], args[1], args[2], last)
}

// distinct N HOST PATH: N requests through the router must get at least two
// different bodies (the router balances across containers).
func cmdDistinct(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: distinct N HOST PATH")
	}
	n, _ := strconv.Atoi(args[0])
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		code, body, err := get(ts.Getenv("HTTP_ADDR"), args[1], args[2])
		if err != nil || code != 200 {
			ts.Fatalf("GET %s%s: %d %v", args[1], args[2], code, err)
		}
		seen[body] = true
	}
	if (len(seen) >= 2) == neg {
		ts.Fatalf("%d requests got %d distinct bodies", n, len(seen))
	}
	fmt.Fprintf(ts.Stdout(), "distinct %d\n", len(seen))
}

// waitlogs APP TEXT: poll `logs APP` until it contains TEXT (90s).
func cmdWaitLogs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitlogs APP TEXT")
	}
	deadline := time.Now().Add(90 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last, _ = sshOutput(ts, "logs", args[0], "-n", "300")
		if strings.Contains(last, args[1]) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	ts.Fatalf("logs of %s never showed %q; last:\n%s", args[0], args[1], last)
}
