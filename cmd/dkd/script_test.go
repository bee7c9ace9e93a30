package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dkhq/dk/engine"
	"github.com/dkhq/dk/internal/dockertest"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/rogpeppe/go-internal/testscript"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"dkd": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs each testdata/script/*.txtar as one user story: the real
// dkd (this test binary), the real git and OpenSSH clients, and the real
// Docker engine. Every image is made locally; nothing is pulled.
func TestScripts(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end scripts need Docker; skipped with -short")
	}
	for _, tool := range []string{"git", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the end-to-end tests drive the real %s (apt-get install git openssh-client)", tool, tool)
		}
	}
	cli := dockertest.Client(t)
	dockertest.Busybox(t, cli)
	t.Cleanup(func() {
		instancesMu.Lock()
		defer instancesMu.Unlock()
		for _, i := range instances {
			cleanupInstance(i)
		}
	})
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			return setupScript(env)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitdk":     cmdWaitDK,
			"dk":         cmdDK,
			"httpget":    cmdHTTPGet,
			"waithttp":   cmdWaitHTTP,
			"docker":     cmdDocker,
			"waitlocked": cmdWaitLocked,
			"followhttp": cmdFollowHTTP,
			"droppush":   cmdDropPush,
			"load":       cmdLoad,
			"waitcount":  cmdWaitCount,
			"waitstatus": cmdWaitStatus,
			"distinct":   cmdDistinct,
			"waitlogs":   cmdWaitLogs,
			"bpimages":   cmdBuildpackImages,
		},
	})
}

var (
	instancesMu sync.Mutex
	instances   []string // every script's instance, cleaned again once all dkd processes are gone
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func setupScript(env *testscript.Env) error {
	work := env.WorkDir
	home := filepath.Join(work, "home")
	sshDir := filepath.Join(home, ".ssh")
	if err := os.MkdirAll(sshDir, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"admin", "user", "stranger", "attacker"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(sshDir, "id_"+name)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	// The attacker offers the admin's public key but holds another private key.
	adminPub, err := os.ReadFile(filepath.Join(sshDir, "id_admin.pub"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sshDir, "id_attacker.pub"), adminPub, 0o644); err != nil {
		return err
	}
	gitconfig := "[user]\n\tname = Dev\n\temail = dev@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
	if err := os.WriteFile(filepath.Join(home, ".gitconfig"), []byte(gitconfig), 0o644); err != nil {
		return err
	}
	instance := "dkt-" + randHex(4)
	env.Setenv("HOME", home)
	env.Setenv("DK_INSTANCE", instance)
	env.Setenv("DK_DATA", filepath.Join(work, "data"))
	env.Setenv("DK_SSH_ADDR", "127.0.0.1:0")
	env.Setenv("DK_HTTP_ADDR", "127.0.0.1:0")
	env.Setenv("DK_DASHBOARD_ADDR", "127.0.0.1:0")
	env.Setenv("DK_DOMAIN", "localhost")
	env.Setenv("DK_ADMIN_KEY", filepath.Join(sshDir, "id_admin.pub"))
	env.Setenv("DK_BOOT_TIMEOUT", "20s")
	env.Setenv("BASE_IMAGE", dockertest.BusyboxImage)
	env.Setenv("GIT_SSH_COMMAND", sshCommand(sshDir, "admin"))
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "PATH"} {
		if v, ok := os.LookupEnv(k); ok {
			env.Setenv(k, v)
		}
	}
	env.Defer(func() { cleanupInstance(instance) })
	instancesMu.Lock()
	instances = append(instances, instance)
	instancesMu.Unlock()
	return nil
}

func sshCommand(sshDir, identity string) string {
	return fmt.Sprintf("ssh -F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -i %s",
		filepath.Join(sshDir, "id_"+identity))
}

// cleanupInstance removes what a script's dkd left on the engine.
func cleanupInstance(instance string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli, err := dockerClient()
	if err != nil {
		return
	}
	defer cli.Close()
	if rt, err := engine.New(ctx, cli, instance, nil); err == nil {
		_ = rt.RemoveAll(ctx)
	}
	imgs, _ := cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("reference", instance+"/*"))})
	for _, img := range imgs {
		_, _ = cli.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true})
	}
	_ = cli.NetworkRemove(ctx, instance)
}

// waitdk waits until the dkd started in the background writes its ready
// file, then sets SSH_PORT, HTTP_ADDR and DK_REMOTE (ssh://dk@127.0.0.1:PORT).
func cmdWaitDK(ts *testscript.TestScript, neg bool, args []string) {
	path := filepath.Join(ts.Getenv("DK_DATA"), readyFile)
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			var r struct {
				SSHAddr  string `json:"ssh_addr"`
				HTTPAddr string `json:"http_addr"`
				PID      int    `json:"pid"`
			}
			// A killed dkd leaves its file behind: the pid must be alive
			// and the port must answer.
			if json.Unmarshal(b, &r) == nil && syscall.Kill(r.PID, 0) == nil && dials(r.SSHAddr) {
				_, port, _ := net.SplitHostPort(r.SSHAddr)
				ts.Setenv("SSH_PORT", port)
				ts.Setenv("HTTP_ADDR", r.HTTPAddr)
				ts.Setenv("DK_REMOTE", "ssh://dk@127.0.0.1:"+port)
				return
			}
		}
		if time.Now().After(deadline) {
			ts.Fatalf("dkd did not become ready within 60s (no %s)", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func dials(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// dk [-as IDENTITY] COMMAND ARGS… runs a command over the real ssh client
// (use the stdin builtin to feed it input).
func cmdDK(ts *testscript.TestScript, neg bool, args []string) {
	identity := "admin"
	if len(args) >= 2 && args[0] == "-as" {
		identity, args = args[1], args[2:]
	}
	sshArgs := strings.Fields(sshCommand(filepath.Join(ts.Getenv("HOME"), ".ssh"), identity))[1:]
	sshArgs = append(sshArgs, "-p", ts.Getenv("SSH_PORT"), "dk@127.0.0.1", "--")
	// Quote like a user's shell would, so the server's POSIX split gets the words back.
	for _, a := range args {
		sshArgs = append(sshArgs, shellQuote(a))
	}
	err := ts.Exec("ssh", sshArgs...)
	if err != nil && !neg {
		ts.Fatalf("dk %s: %v", strings.Join(args, " "), err)
	}
	if err == nil && neg {
		ts.Fatalf("dk %s: unexpected success", strings.Join(args, " "))
	}
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=.,:/@", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// httpget [-status N] HOST PATH: GET through dk's router with Host: HOST;
// the body goes to stdout. The status must be 200 unless -status says.
func cmdHTTPGet(ts *testscript.TestScript, neg bool, args []string) {
	want := 200
	if len(args) >= 2 && args[0] == "-status" {
		want, _ = strconv.Atoi(args[1])
		args = args[2:]
	}
	if len(args) != 2 {
		ts.Fatalf("usage: httpget [-status N] HOST PATH")
	}
	code, body, err := get(ts.Getenv("HTTP_ADDR"), args[0], args[1])
	if err != nil {
		ts.Fatalf("GET %s%s: %v", args[0], args[1], err)
	}
	ts.Stdout().Write([]byte(body))
	if (code == want) == neg {
		ts.Fatalf("GET %s%s: status %d (want %d): %s", args[0], args[1], code, want, body)
	}
}

// waithttp HOST PATH TEXT: poll through the router until the body contains TEXT (60s).
func cmdWaitHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: waithttp HOST PATH TEXT")
	}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		code, body, err := get(ts.Getenv("HTTP_ADDR"), args[0], args[1])
		last = fmt.Sprintf("%d %q %v", code, body, err)
		if err == nil && code == 200 && strings.Contains(body, args[2]) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	ts.Fatalf("waithttp %s%s: %q never appeared; last: %s", args[0], args[1], args[2], last)
}

func get(addr, host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// docker kill-app APP PROCESS: kill an app's container behind dk's back.
// docker count APP N: expect N containers of APP.
func cmdDocker(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: docker kill-app APP | docker count APP N")
	}
	ctx := context.Background()
	cli, err := dockerClient()
	ts.Check(err)
	defer cli.Close()
	rt, err := engine.New(ctx, cli, ts.Getenv("DK_INSTANCE"), nil)
	ts.Check(err)
	cs, err := rt.Containers(ctx, args[1])
	ts.Check(err)
	switch args[0] {
	case "kill-app":
		if len(cs) == 0 {
			ts.Fatalf("no containers for %s", args[1])
		}
		for _, c := range cs {
			ts.Check(cli.ContainerKill(ctx, c.ID, "KILL"))
			ts.Logf("killed %s", c.ID[:12])
		}
	case "count":
		want, _ := strconv.Atoi(args[2])
		if (len(cs) == want) == neg {
			ts.Fatalf("%s has %d containers, want %d", args[1], len(cs), want)
		}
	default:
		ts.Fatalf("docker: unknown subcommand %s", args[0])
	}
}

func dockerClient() (*client.Client, error) {
	return client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
}

// waitlocked APP: poll apps:info over ssh until APP's deploy lock is held.
func cmdWaitLocked(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitlocked APP")
	}
	if !waitLock(ts, args[0], true) {
		ts.Fatalf("%s was never locked", args[0])
	}
}

// sshOutput runs a dk command as the admin over the real ssh client.
func sshOutput(ts *testscript.TestScript, args ...string) (string, error) {
	sshArgs := strings.Fields(sshCommand(filepath.Join(ts.Getenv("HOME"), ".ssh"), "admin"))[1:]
	sshArgs = append(sshArgs, "-p", ts.Getenv("SSH_PORT"), "dk@127.0.0.1")
	sshArgs = append(sshArgs, args...)
	out, err := exec.Command("ssh", sshArgs...).CombinedOutput()
	return string(out), err
}

// waitLock polls apps:info until APP's lock is held (or free), for 60s.
func waitLock(ts *testscript.TestScript, app string, held bool) bool {
	sshArgs := strings.Fields(sshCommand(filepath.Join(ts.Getenv("HOME"), ".ssh"), "admin"))[1:]
	sshArgs = append(sshArgs, "-p", ts.Getenv("SSH_PORT"), "dk@127.0.0.1", "apps:info", app, "--json")
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		out, err := exec.Command("ssh", sshArgs...).CombinedOutput()
		if err == nil && strings.Contains(string(out), `"lock"`) == held {
			return true
		}
		if !held && strings.Contains(string(out), "not found") {
			return true // the app is gone, and its lock with it
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// droppush APP GITARGS…: run git GITARGS (a push to APP) in its own process
// group, wait until APP is locked (its deploy started), then kill the whole
// group, as a dropped connection would; APP's lock must then clear.
func cmdDropPush(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: droppush APP GITARGS…")
	}
	cmd := exec.Command("git", args[1:]...)
	cmd.Dir = ts.MkAbs(".")
	env := []string{}
	for _, k := range []string{"HOME", "PATH", "GIT_SSH_COMMAND"} {
		env = append(env, k+"="+ts.Getenv(k))
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	ts.Check(cmd.Start())
	if !waitLock(ts, args[0], true) {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		ts.Fatalf("%s was never locked", args[0])
	}
	ts.Check(syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL))
	cmd.Wait()
	if !waitLock(ts, args[0], false) {
		ts.Fatalf("%s stayed locked after the push was dropped: its build was not cancelled", args[0])
	}
}

// followhttp FILE HOST PATH: request PATH through the router until FILE
// (a follower's output) mentions it, for up to 60s.
func cmdFollowHTTP(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: followhttp FILE HOST PATH")
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		get(ts.Getenv("HTTP_ADDR"), args[1], args[2])
		if b, _ := os.ReadFile(ts.MkAbs(args[0])); strings.Contains(string(b), args[2]) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	b, _ := os.ReadFile(ts.MkAbs(args[0]))
	ts.Fatalf("%s never showed %s; it has:\n%s", args[0], args[2], b)
}
