package gitreceive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/gitreceive"
	"github.com/google/go-cmp/cmp"
)

// The tests push with the real git client. git runs the remote's
// receivepack program (this test binary, re-executed) over pipes; that
// program joins its stdin/stdout to a unix socket served by the test, the
// way sshd joins them to an SSH channel, and the test process runs
// ReceivePack on the connection.
const socketEnv = "GITRECEIVE_TEST_SOCKET"

func TestMain(m *testing.M) {
	if sock := os.Getenv(socketEnv); sock != "" {
		os.Exit(relay(sock))
	}
	os.Exit(m.Run())
}

// relay copies stdin to the socket (half-closing it at EOF, as an SSH
// channel sends EOF) and the socket to stdout.
func relay(sock string) int {
	c, err := net.Dial("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return 1
	}
	uc := c.(*net.UnixConn)
	go func() {
		io.Copy(uc, os.Stdin)
		uc.CloseWrite()
	}()
	if _, err := io.Copy(os.Stdout, uc); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		return 1
	}
	return 0
}

// harness serves ReceivePack for app "myapp" to git pushes.
type harness struct {
	t       *testing.T
	srv     *gitreceive.Server
	sock    string
	results chan error

	mu     sync.Mutex
	deploy gitreceive.DeployFunc
	ctx    context.Context
	cancel context.CancelFunc
}

const app = "myapp"

func newHarness(t *testing.T, srv *gitreceive.Server) *harness {
	t.Helper()
	if srv.Dir == "" {
		srv.Dir = t.TempDir()
	}
	sockDir, err := os.MkdirTemp("", "gr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	h := &harness{t: t, srv: srv, sock: filepath.Join(sockDir, "s"), results: make(chan error, 10)}
	h.deploy = func(context.Context, *gitreceive.Push) error { return nil }
	ln, err := net.Listen("unix", h.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go h.serve(ln)
	return h
}

func (h *harness) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		deploy := h.deploy
		ctx, cancel := context.WithCancel(context.Background())
		h.ctx, h.cancel = ctx, cancel
		h.mu.Unlock()
		err = h.srv.ReceivePack(ctx, app, c, c, deploy)
		cancel()
		// The SSH layer's job, not ReceivePack's: send EOF, let the
		// client hang up, close.
		c.(*net.UnixConn).CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
		h.results <- err
	}
}

// setDeploy sets the deploy func for the next pushes.
func (h *harness) setDeploy(d gitreceive.DeployFunc) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deploy = d
}

// result returns what ReceivePack returned for the last push.
func (h *harness) result() error {
	h.t.Helper()
	select {
	case err := <-h.results:
		return err
	case <-time.After(30 * time.Second):
		h.t.Fatal("ReceivePack did not return")
		return nil
	}
}

// repoGit runs git on the server's bare repository.
func (h *harness) repoGit(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"--git-dir", filepath.Join(h.srv.Dir, app+".git")}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+h.t.TempDir())
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// serverRef returns the server's value of ref, "" if it does not exist.
func (h *harness) serverRef(ref string) string {
	h.t.Helper()
	out, err := h.repoGit("rev-parse", "--verify", "-q", ref)
	if err != nil {
		return ""
	}
	return out
}

// client is a git working repository with remote "dk" pointing at the harness.
type client struct {
	t   *testing.T
	dir string
	env []string
}

func newClient(t *testing.T, h *harness) *client {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	c := &client{t: t, dir: t.TempDir(), env: append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "LANG=C", "LC_ALL=C",
		"GIT_AUTHOR_NAME=Dev", "GIT_AUTHOR_EMAIL=dev@example.com",
		"GIT_COMMITTER_NAME=Dev", "GIT_COMMITTER_EMAIL=dev@example.com",
		socketEnv+"="+h.sock,
	)}
	c.must("init", "-q", "-b", "main")
	c.must("remote", "add", "dk", "file:///srv/git/"+app+".git")
	c.must("config", "remote.dk.receivepack", exe)
	return c
}

func (c *client) git(args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		c.t.Fatalf("git %s timed out; stderr:\n%s", strings.Join(args, " "), e.String())
	}
	return strings.TrimSpace(o.String()), e.String(), err
}

func (c *client) must(args ...string) string {
	c.t.Helper()
	out, stderr, err := c.git(args...)
	if err != nil {
		c.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// write creates files (mode 0644, or 0755 when the name ends in ".sh").
func (c *client) write(files map[string]string) {
	c.t.Helper()
	for name, content := range files {
		p := filepath.Join(c.dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			c.t.Fatal(err)
		}
		perm := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			perm = 0o755
		}
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			c.t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			c.t.Fatal(err)
		}
	}
}

// commit commits everything and returns the new commit id.
func (c *client) commit(msg string) string {
	c.t.Helper()
	c.must("add", "-A")
	c.must("commit", "-q", "-m", msg)
	return c.must("rev-parse", "HEAD")
}

// push runs git push with args and returns its stderr and whether it succeeded.
func (c *client) push(args ...string) (string, bool) {
	c.t.Helper()
	_, stderr, err := c.git(append([]string{"push"}, args...)...)
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		c.t.Fatalf("git push: %v", err)
	}
	return stderr, err == nil
}

// snapshot describes the tree under dir: path → "dir", "link <target>" or
// "file <perm> <content>".
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %o %s", info.Mode().Perm(), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// recorder is a deploy func that records each push and a snapshot of its dir.
type recorder struct {
	t      *testing.T
	mu     sync.Mutex
	pushes []gitreceive.Push
	trees  []map[string]string
	err    error // returned by deploy
}

func (r *recorder) deploy(ctx context.Context, p *gitreceive.Push) error {
	fmt.Fprintf(p.Progress, "-----> Building %s\n", p.New[:7])
	tree := snapshot(r.t, p.Dir)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, *p)
	r.trees = append(r.trees, tree)
	if r.err != nil {
		fmt.Fprintf(p.Progress, " !     %s\n", dk.ErrorMessage(r.err))
		return r.err
	}
	fmt.Fprintln(p.Progress, "-----> Released")
	return nil
}

func (r *recorder) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pushes)
}

func (r *recorder) last() (gitreceive.Push, map[string]string) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pushes) == 0 {
		r.t.Fatal("deploy was not called")
	}
	return r.pushes[len(r.pushes)-1], r.trees[len(r.trees)-1]
}

func setup(t *testing.T, srv *gitreceive.Server) (*harness, *client, *recorder) {
	t.Helper()
	h := newHarness(t, srv)
	rec := &recorder{t: t}
	h.setDeploy(rec.deploy)
	return h, newClient(t, h), rec
}

func wantContains(t *testing.T, s, want string) {
	t.Helper()
	if !strings.Contains(s, want) {
		t.Errorf("want %q in:\n%s", want, s)
	}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := dk.ErrorCode(err); got != code {
		t.Errorf("ReceivePack error code = %q (%v), want %q", got, err, code)
	}
}

func TestFirstPush(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.write(map[string]string{
		"Dockerfile":      "FROM busybox\n",
		"bin/run.sh":      "#!/bin/sh\necho hi\n",
		"deep/a/b/c.txt":  "nested\n",
		"empty-file.txt":  "",
		"docs/readme.txt": "read me\n",
	})
	if err := os.Symlink("docs/readme.txt", filepath.Join(c.dir, "README")); err != nil {
		t.Fatal(err)
	}
	// A submodule (gitlink) whose commit is not in the push.
	c.must("add", "-A")
	c.must("update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",vendor/lib")
	c.must("commit", "-q", "-m", "first")
	head := c.must("rev-parse", "HEAD")

	stderr, ok := c.push("dk", "main")
	if !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatalf("ReceivePack: %v", err)
	}
	wantContains(t, stderr, "remote: -----> Building "+head[:7])
	wantContains(t, stderr, "remote: -----> Released")
	wantContains(t, stderr, "* [new branch]      main -> main")

	p, tree := rec.last()
	want := gitreceive.Push{App: app, Branch: "main", Old: strings.Repeat("0", 40), New: head}
	if diff := cmp.Diff(want, p, cmpPush); diff != "" {
		t.Errorf("push (-want +got):\n%s", diff)
	}
	wantTree := map[string]string{
		"Dockerfile":      "file 644 FROM busybox\n",
		"README":          "link docs/readme.txt",
		"bin":             "dir",
		"bin/run.sh":      "file 755 #!/bin/sh\necho hi\n",
		"deep":            "dir",
		"deep/a":          "dir",
		"deep/a/b":        "dir",
		"deep/a/b/c.txt":  "file 644 nested\n",
		"docs":            "dir",
		"docs/readme.txt": "file 644 read me\n",
		"empty-file.txt":  "file 644 ",
		"vendor":          "dir",
		"vendor/lib":      "dir",
	}
	if diff := cmp.Diff(wantTree, tree); diff != "" {
		t.Errorf("checked-out tree (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(p.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("push dir %s still exists after deploy (err %v)", p.Dir, err)
	}

	if got := h.serverRef("refs/heads/main"); got != head {
		t.Errorf("server main = %q, want %q", got, head)
	}
	if out, err := h.repoGit("symbolic-ref", "HEAD"); err != nil || out != "refs/heads/main" {
		t.Errorf("server HEAD = %q (%v), want symbolic refs/heads/main", out, err)
	}
	if out, err := h.repoGit("fsck", "--strict"); err != nil {
		t.Errorf("git fsck: %v\n%s", err, out)
	}
	if got, err := h.srv.Head(app); err != nil || got != head {
		t.Errorf("Head = %q, %v; want %q", got, err, head)
	}
	// What a clone of the server sees.
	if out, err := h.repoGit("ls-tree", "-r", "HEAD"); err != nil || !strings.Contains(out, "100755 blob") {
		t.Errorf("ls-tree HEAD: %v\n%s", err, out)
	}
}

var cmpPush = cmp.FilterPath(func(p cmp.Path) bool {
	f := p.Last().String()
	return f == ".Dir" || f == ".Progress"
}, cmp.Ignore())

func TestFirstPushMasterSetsHEAD(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.must("checkout", "-q", "-b", "master")
	c.write(map[string]string{"app.txt": "v1\n"})
	head := c.commit("first")
	if stderr, ok := c.push("dk", "master"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	if p, _ := rec.last(); p.Branch != "master" {
		t.Errorf("branch = %q, want master", p.Branch)
	}
	if out, err := h.repoGit("symbolic-ref", "HEAD"); err != nil || out != "refs/heads/master" {
		t.Errorf("server HEAD = %q (%v), want refs/heads/master", out, err)
	}
	if got, err := h.srv.Head(app); err != nil || got != head {
		t.Errorf("Head = %q, %v; want %q", got, err, head)
	}
}

// bigText is text big enough that git sends the next version as a delta.
func bigText(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "line %d of a file that changes a little between pushes\n", i)
	}
	return b.String()
}

func TestSecondPushDeltas(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	text := bigText(2000)
	c.write(map[string]string{"big.txt": text, "keep.txt": "same\n"})
	first := c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("first push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}

	c.write(map[string]string{"big.txt": text + "one more line\n", "new.sh": "#!/bin/sh\n"})
	second := c.commit("second")
	stderr, ok := c.push("dk", "main")
	if !ok {
		t.Fatalf("second push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	wantContains(t, stderr, first[:7]+".."+second[:7]+"  main -> main")
	p, tree := rec.last()
	if p.Old != first || p.New != second {
		t.Errorf("push old/new = %s/%s, want %s/%s", p.Old, p.New, first, second)
	}
	if got, want := tree["big.txt"], "file 644 "+text+"one more line\n"; got != want {
		t.Errorf("big.txt differs (%d bytes, want %d)", len(got), len(want))
	}
	if got := tree["new.sh"]; got != "file 755 #!/bin/sh\n" {
		t.Errorf("new.sh = %q", got)
	}
	if got := h.serverRef("main"); got != second {
		t.Errorf("server main = %q, want %q", got, second)
	}
	if out, err := h.repoGit("fsck", "--strict"); err != nil {
		t.Errorf("git fsck: %v\n%s", err, out)
	}
}

func TestUpToDate(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"a.txt": "a\n"})
	c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	stderr, ok := c.push("dk", "main")
	if !ok {
		t.Fatalf("up-to-date push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Errorf("ReceivePack = %v, want nil", err)
	}
	wantContains(t, stderr, "Everything up-to-date")
	if n := rec.count(); n != 1 {
		t.Errorf("deploy called %d times, want 1", n)
	}
}

func TestDeployFails(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"a.txt": "a\n"})
	first := c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}

	rec.setErr(dk.Errorf(dk.EFAILED, "build failed\nstep 3/5: exit code 1"))
	c.write(map[string]string{"a.txt": "broken\n"})
	c.commit("broken")
	stderr, ok := c.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	err := h.result()
	wantCode(t, err, dk.EFAILED)
	wantContains(t, stderr, "! [remote rejected] main -> main (build failed)")
	wantContains(t, stderr, "remote:  !     build failed")
	if got := h.serverRef("main"); got != first {
		t.Errorf("server main = %q, want unchanged %q", got, first)
	}

	// An error that is not dk's own is "deploy failed" to the user.
	rec.setErr(errors.New("docker: connection refused"))
	stderr, ok = c.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	wantCode(t, h.result(), dk.EINTERNAL)
	wantContains(t, stderr, "! [remote rejected] main -> main (deploy failed)")
	if strings.Contains(stderr, "connection refused") {
		t.Errorf("internal error details leaked to the pusher:\n%s", stderr)
	}

	// A failed first push leaves no ref at all.
	h2, c2, rec2 := setup(t, &gitreceive.Server{})
	rec2.setErr(dk.Errorf(dk.EFAILED, "build failed"))
	c2.write(map[string]string{"a.txt": "a\n"})
	c2.commit("first")
	stderr, ok = c2.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	wantCode(t, h2.result(), dk.EFAILED)
	wantContains(t, stderr, "! [remote rejected] main -> main (build failed)")
	if got := h2.serverRef("main"); got != "" {
		t.Errorf("server main = %q after failed first push, want none", got)
	}
}

func TestNonDeployBranch(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.must("checkout", "-q", "-b", "dev")
	c.write(map[string]string{"a.txt": "a\n"})
	c.commit("first")
	stderr, ok := c.push("dk", "dev")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	err := h.result()
	wantCode(t, err, dk.EINVALID)
	if got, want := dk.ErrorMessage(err), "only main or master deploy: git push dk dev:main"; got != want {
		t.Errorf("ReceivePack message = %q, want %q", got, want)
	}
	wantContains(t, stderr, "! [remote rejected] dev -> dev (only main or master deploy: git push dk dev:main)")
	wantContains(t, stderr, "remote:  !     only main or master deploy: git push dk dev:main")
	if n := rec.count(); n != 0 {
		t.Errorf("deploy called %d times, want 0", n)
	}
	if out, _ := h.repoGit("for-each-ref"); out != "" {
		t.Errorf("server refs after refused push:\n%s", out)
	}

	// The hint works; and a custom branch list is named.
	stderr, ok = c.push("dk", "dev:main")
	if !ok {
		t.Fatalf("push dev:main failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	if p, _ := rec.last(); p.Branch != "main" {
		t.Errorf("branch = %q, want main", p.Branch)
	}

	h2, c2, _ := setup(t, &gitreceive.Server{Branches: []string{"prod"}})
	c2.write(map[string]string{"a.txt": "a\n"})
	c2.commit("first")
	stderr, ok = c2.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	h2.result()
	wantContains(t, stderr, "(only prod deploys: git push dk main:prod)")
}

func TestTwoDeployBranchesInOnePush(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"a.txt": "a\n"})
	head := c.commit("first")
	stderr, ok := c.push("dk", "main", "main:master")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	h.result()
	wantContains(t, stderr, "* [new branch]      main -> main")
	wantContains(t, stderr, "! [remote rejected] main -> master (push one deploy branch at a time)")
	if n := rec.count(); n != 1 {
		t.Errorf("deploy called %d times, want 1", n)
	}
	if got := h.serverRef("main"); got != head {
		t.Errorf("server main = %q, want %q", got, head)
	}
}

func TestForcePushOlderCommit(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"v.txt": "1\n"})
	first := c.commit("v1")
	c.write(map[string]string{"v.txt": "2\n"})
	second := c.commit("v2")
	for _, ref := range []string{first + ":refs/heads/main", "main"} {
		if stderr, ok := c.push("dk", ref); !ok {
			t.Fatalf("push %s failed:\n%s", ref, stderr)
		}
		if err := h.result(); err != nil {
			t.Fatal(err)
		}
	}
	stderr, ok := c.push("--force", "dk", first+":main")
	if !ok {
		t.Fatalf("force push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	wantContains(t, stderr, "+ "+second[:7]+"..."+first[:7]+" "+first+" -> main (forced update)")
	p, tree := rec.last()
	if p.Old != second || p.New != first {
		t.Errorf("push old/new = %s/%s, want %s/%s", p.Old, p.New, second, first)
	}
	if tree["v.txt"] != "file 644 1\n" {
		t.Errorf("v.txt = %q, want version 1", tree["v.txt"])
	}
	if got := h.serverRef("main"); got != first {
		t.Errorf("server main = %q, want %q", got, first)
	}

	// Without --force git refuses by itself; the server is not asked.
	stderr, ok = c.push("dk", second+":main")
	if !ok {
		t.Fatalf("fast-forward push failed:\n%s", stderr)
	}
	h.result()
}

func TestRefChangedDuringDeploy(t *testing.T) {
	t.Parallel()
	h, c, _ := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"a.txt": "a\n"})
	first := c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	c.write(map[string]string{"a.txt": "b\n"})
	second := c.commit("second")
	// Someone moves main while the deploy runs (dk holds a deploy lock, so
	// only something outside dk could).
	c.write(map[string]string{"a.txt": "c\n"})
	third := c.commit("third")
	c.must("reset", "-q", "--hard", second)
	h.setDeploy(func(ctx context.Context, p *gitreceive.Push) error {
		out, err := h.repoGit("fetch", "-q", c.dir, third)
		if err == nil {
			out, err = h.repoGit("update-ref", "refs/heads/main", third)
		}
		if err != nil {
			t.Errorf("move main: %v\n%s", err, out)
		}
		return nil
	})
	stderr, ok := c.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	wantCode(t, h.result(), dk.ECONFLICT)
	wantContains(t, stderr, "! [remote rejected] main -> main (ref changed during push, fetch and retry)")
	if got := h.serverRef("main"); got != third {
		t.Errorf("server main = %q, want %q (first was %s)", got, third, first)
	}
}

func TestMaxPushBytes(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{MaxPushBytes: 64 << 10})
	c.write(map[string]string{"small.txt": "small\n"})
	small := c.commit("small")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("small push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}

	noise := make([]byte, 1<<20) // incompressible: the pack is > 1 MiB
	rand.Read(noise)
	c.write(map[string]string{"noise.bin": string(noise)})
	c.commit("big")
	stderr, ok := c.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	err := h.result()
	wantCode(t, err, dk.ETOOLARGE)
	if got, want := dk.ErrorMessage(err), "push is larger than the 64 KiB limit"; got != want {
		t.Errorf("ReceivePack message = %q, want %q", got, want)
	}
	wantContains(t, stderr, "push is larger than the 64 KiB limit")
	if n := rec.count(); n != 1 {
		t.Errorf("deploy called %d times, want 1", n)
	}
	if got := h.serverRef("main"); got != small {
		t.Errorf("server main = %q, want unchanged %q", got, small)
	}
	leftovers, _ := filepath.Glob(filepath.Join(h.srv.Dir, app+".git", "incoming-*"))
	packs, _ := filepath.Glob(filepath.Join(h.srv.Dir, app+".git", "objects", "pack", "*.pack"))
	if len(leftovers) > 0 || len(packs) != 1 {
		t.Errorf("after refused push: temp files %v, packs %v (want none, one)", leftovers, packs)
	}
	t.Logf("git stderr:\n%s", stderr)
}

func TestDeleteRefused(t *testing.T) {
	t.Parallel()
	h, c, rec := setup(t, &gitreceive.Server{})
	c.write(map[string]string{"a.txt": "a\n"})
	head := c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	stderr, ok := c.push("dk", ":main")
	if ok {
		t.Fatalf("delete succeeded, want failure:\n%s", stderr)
	}
	wantCode(t, h.result(), dk.EINVALID)
	wantContains(t, stderr, "! [remote rejected] main (deleting the deploy branch is not supported)")
	if got := h.serverRef("main"); got != head {
		t.Errorf("server main = %q, want %q", got, head)
	}
	if n := rec.count(); n != 1 {
		t.Errorf("deploy called %d times, want 1", n)
	}
}

func TestShallowRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, &gitreceive.Server{})
	rec := &recorder{t: t}
	h.setDeploy(rec.deploy)
	origin := newClient(t, h)
	for i := range 3 {
		origin.write(map[string]string{"a.txt": fmt.Sprint(i)})
		origin.commit(fmt.Sprint("c", i))
	}
	c := newClient(t, h)
	os.RemoveAll(c.dir)
	origin.must("clone", "-q", "--depth", "1", "file://"+origin.dir, c.dir)
	c.must("remote", "add", "dk", "file:///srv/git/"+app+".git")
	c.must("config", "remote.dk.receivepack", mustExecutable(t))
	c.write(map[string]string{"b.txt": "b\n"})
	c.commit("on shallow")

	stderr, ok := c.push("dk", "main")
	if ok {
		t.Fatalf("shallow push succeeded, want failure:\n%s", stderr)
	}
	wantCode(t, h.result(), dk.EINVALID)
	wantContains(t, stderr, "shallow pushes are not supported: push the full history (git fetch --unshallow)")
	if n := rec.count(); n != 0 {
		t.Errorf("deploy called %d times, want 0", n)
	}
	if got := h.serverRef("main"); got != "" {
		t.Errorf("server main = %q, want none", got)
	}
}

func mustExecutable(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestInvalidAppName(t *testing.T) {
	t.Parallel()
	srv := &gitreceive.Server{Dir: t.TempDir()}
	h := newHarness(t, srv)
	c := newClient(t, h)
	c.write(map[string]string{"a.txt": "a\n"})
	c.commit("first")
	// Serve a bad name on the next connection, via a second harness-free server.
	ln, err := net.Listen("unix", h.sock+"2")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		done <- srv.ReceivePack(context.Background(), "Bad_Name", conn, conn, nil)
	}()
	c.env = append(c.env, socketEnv+"="+h.sock+"2")
	stderr, ok := c.push("dk", "main")
	if ok {
		t.Fatal("push succeeded, want failure")
	}
	wantCode(t, <-done, dk.EINVALID)
	wantContains(t, stderr, `fatal: remote error: invalid app name "Bad_Name"`)
}

func TestWriteError(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := gitreceive.WriteError(&buf, "app \"x\" not found"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("001aERR app \"x\" not found\n", buf.String()); diff != "" {
		t.Error(diff)
	}
}

func TestCancelDuringDeploy(t *testing.T) {
	t.Parallel()
	h, c, _ := setup(t, &gitreceive.Server{})
	started := make(chan struct{})
	h.setDeploy(func(ctx context.Context, p *gitreceive.Push) error {
		close(started)
		<-ctx.Done() // a build that only ends when cancelled
		return ctx.Err()
	})
	go func() {
		<-started
		h.mu.Lock()
		h.cancel() // what the SSH layer does when the client disconnects
		h.mu.Unlock()
	}()
	c.write(map[string]string{"a.txt": "a\n"})
	c.commit("first")
	stderr, ok := c.push("dk", "main")
	if ok {
		t.Fatalf("push succeeded, want failure:\n%s", stderr)
	}
	if err := h.result(); !errors.Is(err, context.Canceled) {
		t.Errorf("ReceivePack = %v, want context.Canceled", err)
	}
	if got := h.serverRef("main"); got != "" {
		t.Errorf("server main = %q, want none", got)
	}
}

func TestHeadAndRemove(t *testing.T) {
	t.Parallel()
	h, c, _ := setup(t, &gitreceive.Server{})
	if got, err := h.srv.Head(app); err != nil || got != "" {
		t.Errorf("Head before any push = %q, %v; want \"\", nil", got, err)
	}
	c.write(map[string]string{"a.txt": "a\n"})
	head := c.commit("first")
	if stderr, ok := c.push("dk", "main"); !ok {
		t.Fatalf("push failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	if got, err := h.srv.Head(app); err != nil || got != head {
		t.Errorf("Head = %q, %v; want %q", got, err, head)
	}
	if err := h.srv.Remove(app); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.srv.Dir, app+".git")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("repository still there after Remove: %v", err)
	}
	if got, err := h.srv.Head(app); err != nil || got != "" {
		t.Errorf("Head after Remove = %q, %v", got, err)
	}
	if err := h.srv.Remove(app); err != nil {
		t.Errorf("second Remove = %v, want nil", err)
	}
	wantCode(t, h.srv.Remove("../etc"), dk.EINVALID)

	// A push after Remove starts a new repository.
	stderr, ok := c.push("dk", "main")
	if !ok {
		t.Fatalf("push after Remove failed:\n%s", stderr)
	}
	if err := h.result(); err != nil {
		t.Fatal(err)
	}
	wantContains(t, stderr, "* [new branch]")
}

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

// TestRawProtocol drives ReceivePack with hand-written requests, for what
// the git client cannot be made to send.
func TestRawProtocol(t *testing.T) {
	t.Parallel()
	const (
		zero = "0000000000000000000000000000000000000000"
		some = "1111111111111111111111111111111111111111"
		caps = "\x00report-status side-band-64k agent=test"
	)
	run := func(t *testing.T, in io.Reader) (string, error) {
		t.Helper()
		srv := &gitreceive.Server{Dir: t.TempDir()}
		var out bytes.Buffer
		done := make(chan error, 1)
		go func() {
			done <- srv.ReceivePack(context.Background(), app, in, &out, func(context.Context, *gitreceive.Push) error {
				t.Error("deploy called")
				return nil
			})
		}()
		select {
		case err := <-done:
			return out.String(), err
		case <-time.After(10 * time.Second):
			t.Fatal("ReceivePack did not return")
			return "", nil
		}
	}

	t.Run("AdvertiseEmpty", func(t *testing.T) {
		out, err := run(t, strings.NewReader("0000"))
		if err != nil {
			t.Fatal(err)
		}
		wantContains(t, out, zero+" capabilities^{}\x00report-status delete-refs ofs-delta side-band-64k no-thin")
		wantContains(t, out, " agent=dk/"+dk.Version+"\n0000")
	})
	t.Run("EOFBeforeCommands", func(t *testing.T) {
		if _, err := run(t, strings.NewReader("")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("DeleteOnlyDoesNotWaitForPack", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		go io.WriteString(pw, pkt(some+" "+zero+" refs/heads/main"+caps)+"0000") // and never EOF
		out, err := run(t, pr)
		wantCode(t, err, dk.EINVALID)
		wantContains(t, out, "ng refs/heads/main deleting the deploy branch is not supported")
	})
	t.Run("MalformedPack", func(t *testing.T) {
		pack := "PACK\x00\x00\x00\x02\x00\x00\x00\x01\x35not zlib data at all"
		out, err := run(t, strings.NewReader(pkt(zero+" "+some+" refs/heads/main"+caps)+"0000"+pack))
		wantCode(t, err, dk.EINVALID)
		wantContains(t, out, "ng refs/heads/main invalid pack: ")
	})
	t.Run("TruncatedPack", func(t *testing.T) {
		out, err := run(t, strings.NewReader(pkt(zero+" "+some+" refs/heads/main"+caps)+"0000PACK\x00\x00"))
		wantCode(t, err, dk.EINVALID)
		wantContains(t, out, "unpack invalid pack: unexpected end of pack")
	})
	t.Run("MalformedCommand", func(t *testing.T) {
		_, err := run(t, strings.NewReader(pkt("nonsense"+caps)+"0000"))
		wantCode(t, err, dk.EINVALID)
	})
}

// TestHostileTree pushes trees git's porcelain would never make; the
// checkout must refuse them without writing outside its dir.
func TestHostileTree(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	for _, tc := range []struct {
		name, tree, reason string
	}{
		{"DotDot", "100644 blob {blob}\t..\n", `the pushed tree has an invalid path ".."`},
		{"DotGit", "100644 blob {blob}\t.GIT\n", `the pushed tree has an invalid path ".GIT"`},
		{"SymlinkThenDir", "120000 blob {link}\tevil\n040000 tree {sub}\tevil\n", `the pushed tree has "evil" twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, c, rec := setup(t, &gitreceive.Server{})
			blob := c.gitIn("hi\n", "hash-object", "-w", "--stdin")
			link := c.gitIn(outside, "hash-object", "-w", "--stdin")
			sub := c.gitIn("100644 blob "+blob+"\tpwned\n", "mktree")
			r := strings.NewReplacer("{blob}", blob, "{link}", link, "{sub}", sub)
			tree := c.gitIn(r.Replace(tc.tree), "mktree")
			commit := c.must("commit-tree", "-m", "hostile", tree)

			stderr, ok := c.push("dk", commit+":refs/heads/main")
			if ok {
				t.Fatalf("push succeeded, want failure:\n%s", stderr)
			}
			wantCode(t, h.result(), dk.EINVALID)
			wantContains(t, stderr, "! [remote rejected] "+commit+" -> main ("+tc.reason+")")
			if n := rec.count(); n != 0 {
				t.Errorf("deploy called %d times", n)
			}
			if got := h.serverRef("main"); got != "" {
				t.Errorf("server main = %q, want none", got)
			}
			if _, err := os.Lstat(filepath.Join(outside, "pwned")); err == nil {
				t.Error("checkout wrote through a symlink outside its dir")
			}
		})
	}
}

// gitIn runs git with stdin and returns its trimmed stdout.
func (c *client) gitIn(stdin string, args ...string) string {
	c.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env, cmd.Stdin = c.dir, c.env, strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}
