package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	loadDeploys = flag.Int("load-deploys", 20, "deploys (alternating git push and config:set) during the deploy-under-load run")
	loadIdle    = flag.Duration("load-idle", 10*time.Second, "length of the no-deploy load run (the p99 baseline)")
)

// dkSSH runs a dk command over ssh.
func dkSSH(sshCmd, port string, args ...string) error {
	c := exec.Command("ssh", append(append(strings.Fields(sshCmd)[1:], "-p", port, "dk@127.0.0.1"), args...)...)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("ssh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// benchRollback times `rollback bench` until the rolled-back value serves.
// The app must have had config:set rounds, so each rollback flips between
// the last two GREETING values.
func benchRollback(sshCmd, port, httpAddr string, rounds int) ([]time.Duration, error) {
	var out []time.Duration
	for i := 0; i < rounds; i++ {
		want := fmt.Sprintf("rb-%d", i)
		if err := dkSSH(sshCmd, port, "config:set", "bench", "GREETING="+want); err != nil {
			return nil, err
		}
		prev := fmt.Sprintf("rb-%d-next", i)
		if err := dkSSH(sshCmd, port, "config:set", "bench", "GREETING="+prev); err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := dkSSH(sshCmd, port, "rollback", "bench"); err != nil {
			return nil, err
		}
		if err := waitBody(httpAddr, "bench.localhost", want, 30*time.Second); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// wrkResult is what wrk reports.
type wrkResult struct {
	requests           int64
	non2xx, socketErrs int64
	p99                time.Duration
	raw                string
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkP99      = regexp.MustCompile(`(?m)^\s+99%\s+([\d.]+)(us|ms|s)\s*$`)
)

func parseWrk(out string) wrkResult {
	r := wrkResult{raw: out}
	if m := wrkRequests.FindStringSubmatch(out); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkNon2xx.FindStringSubmatch(out); m != nil {
		r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := wrkSocket.FindStringSubmatch(out); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.socketErrs += n
		}
	}
	if m := wrkP99.FindStringSubmatch(out); m != nil {
		f, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		r.p99 = time.Duration(f * float64(unit))
	}
	return r
}

// startWrk runs wrk against the router until stop is called.
func startWrk(httpAddr string) (stop func() (wrkResult, error), err error) {
	if _, err := exec.LookPath("wrk"); err != nil {
		return nil, fmt.Errorf("wrk not found: apt-get install wrk")
	}
	var out bytes.Buffer
	c := exec.Command("wrk", "-t2", "-c8", "-d600s", "--latency", "-H", "Host: bench.localhost", "http://"+httpAddr+"/")
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		return nil, err
	}
	return func() (wrkResult, error) {
		_ = c.Process.Signal(syscall.SIGINT) // wrk prints its report on SIGINT
		_ = c.Wait()
		return parseWrk(out.String()), nil
	}, nil
}

// benchUnderLoad keeps wrk's requests flowing through the router while
// deploys run (alternating git push and config:set), and beside it measures
// the same load with no deploy running.
func benchUnderLoad(sshCmd, port, httpAddr string, push func(msg string) error) error {
	stop, err := startWrk(httpAddr)
	if err != nil {
		return err
	}
	time.Sleep(*loadIdle)
	idle, _ := stop()

	stop, err = startWrk(httpAddr)
	if err != nil {
		return err
	}
	t0 := time.Now()
	for i := 0; i < *loadDeploys; i++ {
		if i%2 == 0 {
			err = push(fmt.Sprintf("load %d", i))
		} else {
			err = dkSSH(sshCmd, port, "config:set", "bench", fmt.Sprintf("GREETING=load-%d", i))
		}
		if err != nil {
			stop()
			return err
		}
	}
	took := time.Since(t0)
	busy, _ := stop()

	fmt.Printf("\ndeploy under load: %d deploys (alternating git push and config:set) in %s, wrk -t2 -c8 through dk's router\n", *loadDeploys, took.Round(100*time.Millisecond))
	fmt.Printf("%-28s %12s %10s %14s %10s\n", "", "requests", "non-2xx", "socket errors", "p99")
	fmt.Printf("%-28s %12d %10d %14d %10s\n", "during deploys", busy.requests, busy.non2xx, busy.socketErrs, round(busy.p99))
	fmt.Printf("%-28s %12d %10d %14d %10s\n", "no deploy (same run)", idle.requests, idle.non2xx, idle.socketErrs, round(idle.p99))
	if idle.p99 > 0 {
		fmt.Printf("p99 during deploys / p99 idle: %.2fx\n", float64(busy.p99)/float64(idle.p99))
	}
	if busy.non2xx+busy.socketErrs > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d failed requests during deploys (target: 0)\nwrk said:\n%s\n", busy.non2xx+busy.socketErrs, firstLines(busy.raw, 30))
	}
	return nil
}

func firstLines(s string, n int) string {
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	for i := 0; i < n && sc.Scan(); i++ {
		b.WriteString(sc.Text() + "\n")
	}
	return b.String()
}
