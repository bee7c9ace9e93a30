package sshd_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/buildpacks"
	"github.com/dkhq/dk/internal/fake"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/sshd"
	"github.com/dkhq/dk/store"
	gossh "golang.org/x/crypto/ssh"
)

func TestRepoApp(t *testing.T) {
	for in, want := range map[string]string{"hello": "hello", "/hello.git": "hello", "~/hello.git": "hello", "hello.git/": "hello", "/my-app": "my-app"} {
		got, err := sshd.RepoApp(in)
		if err != nil || got != want {
			t.Errorf("RepoApp(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/TestApp.git", "test_app", "a/b", "../etc", "-x"} {
		if _, err := sshd.RepoApp(in); dk.ErrorCode(err) != dk.EINVALID {
			t.Errorf("RepoApp(%q) err = %v, want EINVALID", in, err)
		}
	}
}

type noGit struct{}

func (noGit) ReceivePack(context.Context, string, *dk.Key, io.Reader, io.Writer, io.Writer) error {
	return dk.Errorf(dk.EINTERNAL, "not in this test")
}
func (noGit) RejectPush(w io.Writer, msg string) error {
	_, err := io.WriteString(w, "ERR "+msg)
	return err
}

type server struct {
	addr  string
	admin gossh.Signer
	db    *store.DB
}

func newSigner(t *testing.T) gossh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startServer(t *testing.T) *server {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dk.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	rt := &fake.Runtime{}
	t.Cleanup(rt.Close)
	mgr := &releases.Manager{Store: db, Builder: &fake.Builder{}, Runtime: rt, Detector: buildpacks.Detector{}, Instance: "dk"}
	admin := newSigner(t)
	s := &sshd.Server{Addr: "127.0.0.1:0", HostKey: newSigner(t), Store: db, Service: mgr, Git: noGit{},
		AdminKeys: []gossh.PublicKey{admin.PublicKey()}}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return &server{addr: s.ListenAddr(), admin: admin, db: db}
}

// run runs a command as signer and returns stdout, stderr and the exit status.
func (s *server) run(t *testing.T, signer gossh.Signer, cmd, stdin string) (string, string, int, error) {
	t.Helper()
	c, err := gossh.Dial("tcp", s.addr, &gossh.ClientConfig{User: "dk", Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
	if err != nil {
		return "", "", -1, err
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		return "", "", -1, err
	}
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr, sess.Stdin = &out, &errb, strings.NewReader(stdin)
	err = sess.Run(cmd)
	code := 0
	var exit *gossh.ExitError
	if errors.As(err, &exit) {
		code, err = exit.ExitStatus(), nil
	}
	return out.String(), errb.String(), code, err
}

func TestAuth(t *testing.T) {
	s := startServer(t)
	if _, _, _, err := s.run(t, newSigner(t), "apps", ""); err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unknown key: err = %v", err)
	}
	out, _, code, err := s.run(t, s.admin, "apps --json", "")
	if err != nil || code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("admin: %q %d %v", out, code, err)
	}
	// A deploy key added by the admin gets in, without admin commands.
	user := newSigner(t)
	pub := string(gossh.MarshalAuthorizedKey(user.PublicKey()))
	if out, errs, code, err := s.run(t, s.admin, "keys:add alice", pub); code != 0 || err != nil {
		t.Fatalf("keys:add: %q %q %d %v", out, errs, code, err)
	}
	_, errs, code, _ := s.run(t, user, "keys", "")
	if code != 1 || errs != " !     keys needs an admin key\n" {
		t.Errorf("user keys: %q %d", errs, code)
	}
	if _, _, code, err := s.run(t, user, "apps", ""); code != 0 || err != nil {
		t.Errorf("user apps: %d %v", code, err)
	}
}

func TestCommands(t *testing.T) {
	s := startServer(t)
	if _, _, code, _ := s.run(t, s.admin, "apps:create hello", ""); code != 0 {
		t.Fatal("create failed")
	}
	tests := []struct {
		name, cmd     string
		code          int
		stdout, error string
	}{
		{"OK", "config:set hello 'A=x y' 'B=$HOME \"q\"' C== --no-restart", 0, "Config saved", ""},
		{"OKGet", "config:get hello B", 0, "$HOME \"q\"\n", ""},
		{"OKGetSpaces", "config:get hello A", 0, "x y\n", ""},
		{"OKGetEquals", "config:get hello C", 0, "=\n", ""},
		{"OKEncoded", "config:set hello --encoded --no-restart D=aGk=", 0, "Config saved", ""},
		{"OKJSON", "config hello --json", 0, `"D": "hi"`, ""},
		{"ErrUnknownCommand", "nope", 2, "", " !     unknown command \"nope\""},
		{"ErrNotFound", "config:get nope A", 1, "", " !     app \"nope\" not found\n"},
		{"ErrKeyUnset", "config:get hello ZZZ", 1, "", " !     ZZZ is not set\n"},
		{"ErrBadName", "releases Bad_Name", 2, "", " !     invalid app name \"Bad_Name\""},
		{"ErrMissingArgs", "rollback", 2, "", "missing arguments; usage: rollback APP [vN]"},
		{"ErrTooManyArgs", "ps hello extra", 2, "", "too many arguments"},
		{"ErrBadFlag", "logs hello --frob", 2, "", "unknown flag --frob"},
		{"ErrBadN", "logs hello -n x", 2, "", "-n takes a number of lines"},
		{"ErrQuote", "config:set hello 'A=unterminated", 2, "", "cannot parse command line"},
		{"ErrDestroyNoForce", "apps:destroy hello", 2, "", "apps:destroy hello --force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code, err := s.run(t, s.admin, tt.cmd, "")
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.error) {
				t.Errorf("%s: code %d stdout %q stderr %q; want %d, %q, %q", tt.cmd, code, out, errs, tt.code, tt.stdout, tt.error)
			}
			if tt.code != 0 && strings.Count(errs, "\n") > 1 && tt.name != "ErrUnknownCommand" {
				t.Errorf("error is more than one line: %q", errs)
			}
		})
	}
	// Errors changed nothing.
	app, _ := s.db.App(context.Background(), "hello")
	if len(app.Config) != 4 {
		t.Errorf("config = %v", app.Config.Keys())
	}
}
