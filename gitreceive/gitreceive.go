// Package gitreceive is the server side of `git push`: git-receive-pack
// spoken over an SSH channel, with go-git as the pkt-line codec and the
// on-disk object store of one bare repository per app.
//
// A push is deployed before its ref moves: the pack is stored, the pushed
// commit is checked out to a temp dir and handed to a DeployFunc, and only
// when that returns nil is the branch updated (compare-and-swap) and
// reported "ok". A failed deploy rejects the push and leaves the branch
// where it was, as on Heroku and Dokku.
//
// go-git's own transport/server receive-pack is not used: against real git
// 2.39 it hangs on delete-only pushes, breaks on thin packs, closes the
// channel before the report, has no side-band and moves refs without an
// old-value check.
package gitreceive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/dkhq/dk"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
)

// Server receives pushes into bare repositories under Dir. It must not be
// copied after first use.
type Server struct {
	Dir          string   // repos live at Dir/<app>.git (bare); created on first push
	MaxPushBytes int64    // 0 = unlimited; a bigger pack is refused with a clear error
	Branches     []string // deployable branches, default {"main","master"}
	Logger       *slog.Logger

	mu    sync.Mutex
	locks map[string]*sync.Mutex // per-app ref locks
}

// Push is one deploy request handed to the deploy callback.
type Push struct {
	App, Branch string
	Old, New    string // hex commit ids; Old is 40 zeros for a new ref
	// Dir is a temp dir holding the New commit's tree checked out (files,
	// exec bits, symlinks); it is removed after deploy returns.
	Dir string
	// Progress reaches the pusher as `remote: ...` lines (side-band channel 2).
	Progress io.Writer
}

// DeployFunc builds and releases a push. Its error's dk.ErrorMessage becomes
// the reason git shows for the rejected ref.
type DeployFunc func(ctx context.Context, p *Push) error

// defaultBranches are the deployable branches when Server.Branches is empty.
var defaultBranches = []string{"main", "master"}

const (
	zeroHex = "0000000000000000000000000000000000000000"

	msgShallow      = "shallow pushes are not supported: push the full history (git fetch --unshallow)"
	msgDeleteDeploy = "deleting the deploy branch is not supported"
	msgRefChanged   = "ref changed during push, fetch and retry"
	msgOneBranch    = "push one deploy branch at a time"
)

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (s *Server) branches() []string {
	if len(s.Branches) > 0 {
		return s.Branches
	}
	return defaultBranches
}

func (s *Server) isDeployBranch(ref plumbing.ReferenceName) (string, bool) {
	if !ref.IsBranch() {
		return "", false
	}
	b := ref.Short()
	for _, d := range s.branches() {
		if b == d {
			return b, true
		}
	}
	return "", false
}

// refusal is the message for a ref that is not a deploy branch, with the
// command that would deploy it.
func (s *Server) refusal(ref plumbing.ReferenceName) string {
	bs := s.branches()
	var who string
	switch len(bs) {
	case 1:
		who = "only " + bs[0] + " deploys"
	default:
		who = "only " + strings.Join(bs[:len(bs)-1], ", ") + " or " + bs[len(bs)-1] + " deploy"
	}
	if ref.IsBranch() {
		return fmt.Sprintf("%s: git push dk %s:%s", who, ref.Short(), bs[0])
	}
	return who
}

// repoPath returns where app's repository lives.
func (s *Server) repoPath(app string) string {
	return filepath.Join(s.Dir, app+".git")
}

func (s *Server) lock(app string) func() {
	s.mu.Lock()
	if s.locks == nil {
		s.locks = map[string]*sync.Mutex{}
	}
	l, ok := s.locks[app]
	if !ok {
		l = &sync.Mutex{}
		s.locks[app] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// open opens app's bare repository, creating it (with a symbolic HEAD to
// the first deploy branch) when create is set.
func (s *Server) open(app string, create bool) (*git.Repository, error) {
	if create {
		defer s.lock(app)()
	}
	path := s.repoPath(app)
	repo, err := git.PlainOpen(path)
	if err == nil || !errors.Is(err, git.ErrRepositoryNotExists) || !create {
		return repo, err
	}
	repo, err = git.PlainInitWithOptions(path, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(s.branches()[0])},
	})
	if err != nil {
		return nil, fmt.Errorf("init repository %s: %w", path, err)
	}
	return repo, nil
}

// WriteError sends a pkt-line "ERR <msg>" (before any advertisement): git
// prints `fatal: remote error: <msg>`.
func WriteError(w io.Writer, msg string) error {
	return pktline.NewEncoder(w).EncodeString("ERR " + oneLine(msg, 1000) + "\n")
}

// Head returns the commit hex the deploy branch points to, "" if none.
func (s *Server) Head(app string) (string, error) {
	if err := dk.ValidateAppName(app); err != nil {
		return "", err
	}
	repo, err := s.open(app, false)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("open repository of %s: %w", app, err)
	}
	var names []plumbing.ReferenceName
	if head, err := repo.Storer.Reference(plumbing.HEAD); err == nil && head.Type() == plumbing.SymbolicReference {
		if _, ok := s.isDeployBranch(head.Target()); ok {
			names = append(names, head.Target())
		}
	}
	for _, b := range s.branches() {
		names = append(names, plumbing.NewBranchReferenceName(b))
	}
	for _, n := range names {
		ref, err := repo.Storer.Reference(n)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s of %s: %w", n, app, err)
		}
		return ref.Hash().String(), nil
	}
	return "", nil
}

// Remove deletes an app's repository. Removing one that does not exist is
// not an error.
func (s *Server) Remove(app string) error {
	if err := dk.ValidateAppName(app); err != nil {
		return err
	}
	defer s.lock(app)()
	if err := os.RemoveAll(s.repoPath(app)); err != nil {
		return fmt.Errorf("remove repository of %s: %w", app, err)
	}
	return nil
}

// command is one ref update the client asked for, and our answer to it.
type command struct {
	old, new plumbing.Hash
	name     plumbing.ReferenceName
	reason   string // "" = ok; else the ng reason
	err      error  // what ReceivePack returns for this refusal
}

func (c *command) refuse(err error, reason string) {
	if c.reason == "" {
		c.reason, c.err = reason, err
	}
}

func (c *command) isDelete() bool { return c.new.IsZero() }

// ReceivePack runs git-receive-pack for app: it advertises refs, reads the
// commands and pack, calls deploy for the deploy branch update, then (only if
// deploy returned nil) moves the ref with compare-and-swap and reports
// status. It returns nil when the push succeeded, or an error whose
// dk.ErrorMessage is what the user should see (git has already shown it), so
// the SSH layer can exit non-zero. It never closes in or out.
func (s *Server) ReceivePack(ctx context.Context, app string, in io.Reader, out io.Writer, deploy DeployFunc) error {
	log := s.logger().With("app", app)
	if deploy == nil {
		deploy = func(context.Context, *Push) error { return nil }
	}
	if err := dk.ValidateAppName(app); err != nil {
		_ = WriteError(out, dk.ErrorMessage(err))
		return err
	}
	repo, err := s.open(app, true)
	if err != nil {
		log.Error("open repository", "err", err)
		_ = WriteError(out, "internal error")
		return err
	}
	if err := s.advertise(repo, out); err != nil {
		return fmt.Errorf("advertise refs of %s: %w", app, err)
	}
	req, err := readRequest(ctx, in)
	if err != nil {
		return err
	}
	if len(req.cmds) == 0 {
		return nil // up to date: the client sent only a flush
	}
	c := &conn{out: out, sideband: req.caps["side-band-64k"], report: req.caps["report-status"]}

	// Decide what each command gets before reading the pack.
	var deployCmd *command
	hinted := false
	for _, cmd := range req.cmds {
		_, ok := s.isDeployBranch(cmd.name)
		switch {
		case req.shallow:
			cmd.refuse(dk.Errorf(dk.EINVALID, msgShallow), msgShallow)
		case !ok:
			msg := s.refusal(cmd.name)
			cmd.refuse(dk.Errorf(dk.EINVALID, "%s", msg), msg)
			if !hinted {
				c.progressf(" !     %s\n", msg)
				hinted = true
			}
		case cmd.isDelete():
			cmd.refuse(dk.Errorf(dk.EINVALID, msgDeleteDeploy), msgDeleteDeploy)
		case deployCmd != nil:
			cmd.refuse(dk.Errorf(dk.EINVALID, msgOneBranch), msgOneBranch)
		default:
			deployCmd = cmd
		}
	}
	if req.shallow {
		c.progressf(" !     %s\n", msgShallow)
	}

	// The client sends a pack unless every command is a delete.
	needPack := false
	for _, cmd := range req.cmds {
		needPack = needPack || !cmd.isDelete()
	}
	unpack := "ok"
	var packErr error
	if needPack {
		if err := s.receivePack(ctx, repo, s.repoPath(app), in, deployCmd != nil); err != nil {
			packErr = err
			if ctx.Err() != nil {
				return ctx.Err()
			}
			msg := dk.ErrorMessage(err)
			if dk.ErrorCode(err) == dk.EINTERNAL {
				log.Error("receive pack", "err", err)
			} else {
				log.Info("pack refused", "err", err)
			}
			c.progressf(" !     %s\n", msg)
			unpack = oneLine(msg, 200)
			for _, cmd := range req.cmds {
				cmd.refuse(err, oneLine(msg, 200))
			}
		}
	}

	if deployCmd != nil && deployCmd.reason == "" {
		s.deploy(ctx, log, repo, app, deployCmd, c, deploy)
	}

	if err := c.sendReport(unpack, req.cmds); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("send report to %s pusher: %w", app, err)
	}
	if packErr != nil {
		return packErr
	}
	if deployCmd != nil && deployCmd.err != nil {
		return deployCmd.err
	}
	for _, cmd := range req.cmds {
		if cmd.err != nil {
			return cmd.err
		}
	}
	return nil
}

// deploy checks out cmd.new, calls deploy and, when it succeeds, moves the ref.
func (s *Server) deploy(ctx context.Context, log *slog.Logger, repo *git.Repository, app string, cmd *command, c *conn, deploy DeployFunc) {
	log = log.With("ref", cmd.name.String(), "old", cmd.old.String(), "new", cmd.new.String())
	if !s.refIs(repo, cmd.name, cmd.old) {
		cmd.refuse(dk.Errorf(dk.ECONFLICT, msgRefChanged), msgRefChanged)
		return
	}
	commit, err := repo.CommitObject(cmd.new)
	if err != nil {
		log.Info("pushed object is not a commit", "err", err)
		msg := "pushed object is not a commit in this push: push a branch"
		cmd.refuse(dk.Errorf(dk.EINVALID, "%s", msg), msg)
		return
	}
	dir, err := os.MkdirTemp("", "dk-push-"+app+"-")
	if err != nil {
		log.Error("make checkout dir", "err", err)
		cmd.refuse(fmt.Errorf("make checkout dir: %w", err), "internal error")
		return
	}
	defer os.RemoveAll(dir)
	if err := checkout(ctx, repo, commit, dir); err != nil {
		if ctx.Err() != nil {
			cmd.refuse(ctx.Err(), "push cancelled")
			return
		}
		if dk.ErrorCode(err) == dk.EINTERNAL {
			log.Error("check out", "err", err)
		}
		cmd.refuse(err, oneLine(dk.ErrorMessage(err), 200))
		return
	}

	branch := cmd.name.Short()
	log.Info("deploying")
	err = deploy(ctx, &Push{
		App: app, Branch: branch,
		Old: cmd.old.String(), New: cmd.new.String(),
		Dir:      dir,
		Progress: c.progressWriter(),
	})
	if err != nil {
		log.Info("deploy failed", "err", err)
		cmd.refuse(err, shortReason(err))
		return
	}

	unlock := s.lock(app)
	defer unlock()
	if !s.refIs(repo, cmd.name, cmd.old) {
		log.Warn("ref changed during deploy")
		cmd.refuse(dk.Errorf(dk.ECONFLICT, msgRefChanged), msgRefChanged)
		return
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(cmd.name, cmd.new)); err != nil {
		log.Error("update ref", "err", err)
		cmd.refuse(fmt.Errorf("update %s: %w", cmd.name, err), "internal error")
		return
	}
	// Point HEAD at the pushed branch when it points nowhere yet.
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err == nil && head.Type() == plumbing.SymbolicReference {
		if _, err := repo.Storer.Reference(head.Target()); errors.Is(err, plumbing.ErrReferenceNotFound) {
			if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, cmd.name)); err != nil {
				log.Error("set HEAD", "err", err)
			}
		}
	}
	log.Info("ref updated")
}

// refIs reports whether ref currently holds want (zero: does not exist).
func (s *Server) refIs(repo *git.Repository, name plumbing.ReferenceName, want plumbing.Hash) bool {
	ref, err := repo.Storer.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return want.IsZero()
	}
	return err == nil && ref.Type() == plumbing.HashReference && ref.Hash() == want
}

// receivePack reads the pack that follows the commands, enforcing
// MaxPushBytes, and stores it when store is set (else discards it).
func (s *Server) receivePack(ctx context.Context, repo *git.Repository, dir string, in io.Reader, store bool) error {
	r := &limitReader{ctx: ctx, r: in, max: s.MaxPushBytes}
	if !store {
		_, err := copyPack(r, io.Discard)
		return packError(err)
	}
	f, err := os.CreateTemp(dir, "incoming-*.pack")
	if err != nil {
		return fmt.Errorf("create pack file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	n, err := copyPack(r, f)
	if err != nil {
		return packError(err)
	}
	if n == 0 {
		return nil // nothing new: e.g. a force-push to a commit we have
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind pack file: %w", err)
	}
	if err := packfile.UpdateObjectStorage(repo.Storer, f); err != nil {
		return fmt.Errorf("store pack: %w", err)
	}
	return nil
}

// packError turns a pack read failure into what the pusher should see.
func packError(err error) error {
	if err == nil {
		return nil
	}
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return dk.Errorf(dk.ETOOLARGE, "push is larger than the %s limit", formatBytes(tl.max))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *packFormatError
	if errors.As(err, &pe) {
		return dk.Errorf(dk.EINVALID, "invalid pack: %s", pe.msg)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return dk.Errorf(dk.EINVALID, "invalid pack: unexpected end of pack")
	}
	return fmt.Errorf("read pack: %w", err)
}

// advertise sends the ref advertisement (protocol v0).
func (s *Server) advertise(repo *git.Repository, out io.Writer) error {
	iter, err := repo.Storer.IterReferences()
	if err != nil {
		return err
	}
	var refs []*plumbing.Reference
	err = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() == plumbing.HashReference && strings.HasPrefix(r.Name().String(), "refs/") {
			refs = append(refs, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name() < refs[j].Name() })

	caps := "report-status delete-refs ofs-delta side-band-64k no-thin quiet object-format=sha1 agent=dk/" + dk.Version
	var buf bytes.Buffer
	e := pktline.NewEncoder(&buf)
	if len(refs) == 0 {
		err = e.EncodeString(zeroHex + " capabilities^{}\x00" + caps + "\n")
	}
	for i, r := range refs {
		line := r.Hash().String() + " " + r.Name().String()
		if i == 0 {
			line += "\x00" + caps
		}
		if err = e.EncodeString(line + "\n"); err != nil {
			break
		}
	}
	if err == nil {
		err = e.Flush()
	}
	if err != nil {
		return err
	}
	_, err = out.Write(buf.Bytes())
	return err
}

// shortReason is the one-line ng reason for a failed deploy.
func shortReason(err error) string {
	if dk.ErrorCode(err) == dk.EINTERNAL {
		if errors.Is(err, context.Canceled) {
			return "push cancelled"
		}
		return "deploy failed"
	}
	// The whole message already reached the pusher as remote: lines; the
	// ref status carries its leading phrase ("build failed", "deploy failed").
	msg := oneLine(dk.ErrorMessage(err), 200)
	if head, _, ok := strings.Cut(msg, ": "); ok && head != "" {
		return head
	}
	return msg
}

// oneLine returns the first non-empty line of s, trimmed to at most max bytes.
func oneLine(s string, max int) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			s = l
			break
		}
	}
	s = strings.TrimSpace(strings.ReplaceAll(s, "\n", " "))
	if len(s) > max {
		cut := max - 3
		for cut > 0 && s[cut]&0xC0 == 0x80 { // don't split a UTF-8 sequence
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// formatBytes writes n in binary units, e.g. "100 MiB".
func formatBytes(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", n)
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[i])
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}
