package gitreceive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/dkhq/dk"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// maxSymlinkTarget bounds a symlink blob (PATH_MAX).
const maxSymlinkTarget = 4096

// Checkout writes the tree of commit (full hex) in app's repository into a
// new temporary directory, for reading what a deployed commit holds; cleanup
// removes the directory. An unknown app or commit is ENOTFOUND.
func (s *Server) Checkout(ctx context.Context, app, commit string) (dir string, cleanup func(), err error) {
	if err := dk.ValidateAppName(app); err != nil {
		return "", nil, err
	}
	if !plumbing.IsHash(commit) {
		return "", nil, dk.Errorf(dk.EINVALID, "%q is not a full commit id", commit)
	}
	repo, err := s.open(app, false)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return "", nil, dk.Errorf(dk.ENOTFOUND, "%s has no repository yet: git push first", app)
	}
	if err != nil {
		return "", nil, fmt.Errorf("open repository of %s: %w", app, err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return "", nil, dk.Errorf(dk.ENOTFOUND, "commit %s not found in %s's repository", commit, app)
	}
	if err != nil {
		return "", nil, fmt.Errorf("read commit %s of %s: %w", commit, app, err)
	}
	dir, err = os.MkdirTemp("", "dk-checkout-"+app+"-")
	if err != nil {
		return "", nil, fmt.Errorf("make checkout dir: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	if err := checkout(ctx, repo, c, dir); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// checkout writes commit's tree into dir, which must be empty: regular
// files with their exec bit, symlinks and directories. Submodules (gitlinks)
// are not fetched: they become empty directories. Every write goes through an os.Root so that a hostile tree
// (names like "..", a symlink followed by a path through it) cannot write
// outside dir.
func checkout(ctx context.Context, repo *git.Repository, commit *object.Commit, dir string) error {
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("read tree of %s: %w", commit.Hash, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open checkout dir: %w", err)
	}
	defer root.Close()
	return checkoutTree(ctx, repo, root, tree, "")
}

func checkoutTree(ctx context.Context, repo *git.Repository, root *os.Root, tree *object.Tree, dir string) error {
	for _, e := range tree.Entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Name == "" || e.Name == "." || e.Name == ".." || strings.ContainsAny(e.Name, "/\x00") ||
			strings.EqualFold(e.Name, ".git") {
			return dk.Errorf(dk.EINVALID, "the pushed tree has an invalid path %q", path.Join(dir, e.Name))
		}
		name := path.Join(dir, e.Name)
		switch e.Mode {
		case filemode.Dir:
			if err := root.Mkdir(name, 0o755); err != nil {
				return createError(name, err)
			}
			sub, err := repo.TreeObject(e.Hash)
			if err != nil {
				return fmt.Errorf("read tree %s: %w", name, err)
			}
			if err := checkoutTree(ctx, repo, root, sub, name); err != nil {
				return err
			}
		case filemode.Regular, filemode.Deprecated, filemode.Executable:
			perm := os.FileMode(0o644)
			if e.Mode == filemode.Executable {
				perm = 0o755
			}
			if err := writeBlob(repo, root, name, e, perm); err != nil {
				return err
			}
		case filemode.Symlink:
			blob, err := repo.BlobObject(e.Hash)
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			if blob.Size > maxSymlinkTarget {
				return dk.Errorf(dk.EINVALID, "the pushed tree has a symlink %q with a %d-byte target", name, blob.Size)
			}
			r, err := blob.Reader()
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			target, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", name, err)
			}
			if err := root.Symlink(string(target), name); err != nil {
				return createError(name, err)
			}
		case filemode.Submodule:
			// Not fetched: a build sees what `git clone` without
			// --recurse-submodules would, an empty directory.
			if err := root.Mkdir(name, 0o755); err != nil {
				return createError(name, err)
			}
		default:
			return dk.Errorf(dk.EINVALID, "the pushed tree has %q with unknown mode %o", name, uint32(e.Mode))
		}
	}
	return nil
}

func writeBlob(repo *git.Repository, root *os.Root, name string, e object.TreeEntry, perm os.FileMode) error {
	blob, err := repo.BlobObject(e.Hash)
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	r, err := blob.Reader()
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer r.Close()
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return createError(name, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("check out %s: %w", name, err)
	}
	if err := f.Chmod(perm); err != nil { // not subject to the umask
		f.Close()
		return fmt.Errorf("check out %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("check out %s: %w", name, err)
	}
	return nil
}

// createError reports a failure to create name; a name the tree holds twice
// is the pusher's doing.
func createError(name string, err error) error {
	if errors.Is(err, fs.ErrExist) {
		return dk.Errorf(dk.EINVALID, "the pushed tree has %q twice", name)
	}
	return fmt.Errorf("check out %s: %w", name, err)
}
