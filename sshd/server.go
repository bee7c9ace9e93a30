// Package sshd is dk's front door: an embedded SSH server (gliderlabs/ssh,
// public keys only) that receives `git push` and runs admin commands.
// It depends only on the domain; the services it drives are wired in by
// cmd/dkd through the small interfaces below.
package sshd

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/dkhq/dk"
	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Service is what SSH commands drive: the release manager.
type Service interface {
	CreateApp(ctx context.Context, name string) (*dk.App, error)
	DestroyApp(ctx context.Context, name, holder string) error
	SetConfig(ctx context.Context, ch dk.ConfigChange) (*dk.Release, error)
	SetGlobalConfig(ctx context.Context, ch dk.ConfigChange) ([]*dk.Release, error)
	Rollback(ctx context.Context, app string, version int, author string, w io.Writer) (*dk.Release, error)
	Restart(ctx context.Context, app, author string, w io.Writer) error
	Logs(ctx context.Context, app string, tail int, follow bool, w io.Writer) error
	Processes(ctx context.Context, app string) ([]dk.Container, error)
	Current(ctx context.Context, app string) (*dk.Release, error)
	LockHolder(app string) (holder string, since time.Time, ok bool)
	Scale(ctx context.Context, app string, scale map[string]int, author string, w io.Writer) (dk.Formation, error)
	SetChecks(ctx context.Context, app string, h *dk.HealthCheck) (*dk.App, error)
}

// Receiver handles `git push` (git-receive-pack) for an app.
type Receiver interface {
	// ReceivePack serves one push on in/out; key is the pusher. The returned
	// error's message (dk.ErrorMessage) has already been shown to the pusher.
	ReceivePack(ctx context.Context, app string, key *dk.Key, in io.Reader, out, errw io.Writer) error
	// RejectPush tells a git client, before any ref advertisement, why its
	// push cannot start.
	RejectPush(out io.Writer, msg string) error
}

// Server is the SSH server.
type Server struct {
	Addr    string // listen address, e.g. 127.0.0.1:2222
	HostKey gossh.Signer
	Store   dk.Store
	Service Service
	Git     Receiver
	Logger  *slog.Logger
	// AdminKeys are always admins (from --admin-key); they are not stored.
	AdminKeys []gossh.PublicKey
	// PushURL renders the git remote URL of an app, for help texts.
	PushURL func(app string) string
	// IdleTimeout closes silent connections; MaxTimeout bounds any connection.
	IdleTimeout time.Duration
	MaxTimeout  time.Duration
	// Dashboard makes dashboard login links (dashboard:url); nil when the
	// dashboard is off.
	Dashboard Dashboard
	// Buildpacks tells how an app's deployed commit is built
	// (buildpacks:detect, buildpacks:dockerfile).
	Buildpacks Buildpacks

	srv *ssh.Server
	ln  net.Listener
}

// Listen binds the address; Serve then accepts connections.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen ssh %s: %w", s.Addr, err)
	}
	s.ln = ln
	return nil
}

// ListenAddr is the bound address (after Listen).
func (s *Server) ListenAddr() string { return s.ln.Addr().String() }

// Serve accepts connections until Shutdown.
func (s *Server) Serve() error {
	s.srv = &ssh.Server{
		Handler:          s.handle,
		PublicKeyHandler: s.publicKeyAllowed,
		IdleTimeout:      s.IdleTimeout,
		MaxTimeout:       s.MaxTimeout,
		PtyCallback:      func(ssh.Context, ssh.Pty) bool { return true },
		Version:          "dk_" + dk.Version,
	}
	if s.srv.IdleTimeout == 0 {
		s.srv.IdleTimeout = 10 * time.Minute
	}
	s.srv.AddHostKey(s.HostKey)
	err := s.srv.Serve(s.ln)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for sessions until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return s.ln.Close()
	}
	return s.srv.Shutdown(ctx)
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// publicKeyAllowed only says whether a key is known; it sees candidate keys
// that the client may not hold, so identity is derived again in the session.
func (s *Server) publicKeyAllowed(ctx ssh.Context, key ssh.PublicKey) bool {
	_, err := s.identify(ctx, key)
	return err == nil
}

// identify maps a public key to a dk key: an --admin-key, or a stored key.
func (s *Server) identify(ctx context.Context, key gossh.PublicKey) (*dk.Key, error) {
	if key == nil {
		return nil, dk.Errorf(dk.EFORBIDDEN, "no public key")
	}
	fp := gossh.FingerprintSHA256(key)
	for _, a := range s.AdminKeys {
		if subtle.ConstantTimeCompare(a.Marshal(), key.Marshal()) == 1 {
			return &dk.Key{Name: "admin", Fingerprint: fp, Admin: true}, nil
		}
	}
	k, err := s.Store.KeyByFingerprint(ctx, fp)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(k.PublicKey)), []byte(strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key))))) != 1 {
		// Fingerprint collision without the same key: refuse.
		return nil, dk.Errorf(dk.EFORBIDDEN, "unknown key")
	}
	return k, nil
}

func (s *Server) handle(sess ssh.Session) {
	ctx := sess.Context()
	// Identity comes from the key this session authenticated with.
	key, err := s.identify(ctx, sess.PublicKey())
	if err != nil {
		fmt.Fprintln(sess.Stderr(), " !     unknown key")
		_ = sess.Exit(1)
		return
	}
	log := s.logger().With("key", key.Name, "remote", sess.RemoteAddr().String())
	raw := sess.RawCommand()
	// Keepalives keep quiet sessions (logs -t, a long silent build step)
	// inside the idle timeout, and notice dead clients.
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := sess.SendRequest("keepalive@openssh.com", true, nil); err != nil {
					return
				}
			}
		}
	}()
	start := time.Now()
	code := s.run(ctx, sess, key, raw, log)
	log.Info("ssh command", "cmd", commandName(raw), "exit", code, "duration", time.Since(start).Round(time.Millisecond))
	_ = sess.CloseWrite()
	_ = sess.Exit(code)
}

// commandName is the first word of a command line, for logs (arguments may
// hold secrets).
func commandName(raw string) string {
	f := strings.Fields(raw)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
