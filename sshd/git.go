package sshd

import (
	"context"
	"log/slog"
	"strings"

	"github.com/dkhq/dk"
	"github.com/gliderlabs/ssh"
)

// gitReceive serves `git-receive-pack '<app>.git'`.
func (s *Server) gitReceive(ctx context.Context, sess ssh.Session, key *dk.Key, words []string, log *slog.Logger) int {
	if _, _, isPty := sess.Pty(); isPty {
		_ = s.Git.RejectPush(sess, "git over a terminal (PTY) would corrupt the pack; push without -t")
		return 1
	}
	if len(words) != 2 {
		_ = s.Git.RejectPush(sess, "usage: git-receive-pack APP")
		return 1
	}
	app, err := RepoApp(words[1])
	if err != nil {
		_ = s.Git.RejectPush(sess, dk.ErrorMessage(err))
		return 1
	}
	if err := s.Git.ReceivePack(ctx, app, key, sess, sess, sess.Stderr()); err != nil {
		if dk.ErrorCode(err) == dk.EINTERNAL {
			log.Error("push failed", "app", app, "err", err)
		}
		return 1
	}
	return 0
}

// RepoApp turns a git path ('/hello.git', '~/hello', 'hello') into an app
// name, validating it.
func RepoApp(path string) (string, error) {
	p := strings.TrimPrefix(path, "~/")
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	p = strings.TrimSuffix(p, ".git")
	if err := dk.ValidateAppName(p); err != nil {
		return "", err
	}
	return p, nil
}
