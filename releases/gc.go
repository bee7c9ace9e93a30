package releases

import (
	"context"
	"fmt"

	"github.com/dkhq/dk"
)

func (m *Manager) keepReleases() int {
	if m.KeepReleases > 0 {
		return m.KeepReleases
	}
	return 5
}

// gc keeps the images of an app's newest KeepReleases successful releases
// (so rolling back to them never rebuilds) and removes the rest: older
// release tags and build tags no kept release uses.
func (m *Manager) gc(ctx context.Context, app string) {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	rels, err := m.Store.Releases(ctx, app)
	if err != nil {
		return
	}
	keepImages, keepCommits := map[string]bool{}, map[string]bool{}
	kept := 0
	for _, r := range rels { // newest first
		if r.Status == dk.ReleaseSucceeded && !r.ImagePruned && kept < m.keepReleases() {
			kept++
			keepImages[r.Image] = true
			keepCommits[r.Commit] = true
		}
	}
	removed := map[string]bool{}
	for _, r := range rels {
		if r.Status != dk.ReleaseSucceeded || r.ImagePruned || keepImages[r.Image] {
			continue
		}
		if err := m.Runtime.RemoveImage(ctx, r.Image); err != nil {
			m.logger().Warn("prune release image", "app", app, "image", r.Image, "err", err)
			continue
		}
		r.ImagePruned = true
		if err := m.Store.UpdateRelease(ctx, r); err != nil {
			m.logger().Warn("mark release image pruned", "app", app, "release", r.Version, "err", err)
		}
		m.logger().Info("pruned release image", "app", app, "release", r.Version, "image", r.Image)
	}
	// Every other tag of the app goes: build tags of commits no kept release
	// uses, and leftovers of deploys cut short (a build exported just before
	// a crash, a failed release's tag).
	keepTags := map[string]bool{}
	for img := range keepImages {
		keepTags[img] = true
	}
	for c := range keepCommits {
		keepTags[fmt.Sprintf("%s/%s:%s", m.Instance, app, shortSHA(c))] = true
	}
	tags, err := m.Runtime.Images(ctx, app)
	if err != nil {
		m.logger().Warn("list images", "app", app, "err", err)
	}
	for _, tag := range tags {
		if keepTags[tag] || removed[tag] {
			continue
		}
		removed[tag] = true
		if err := m.Runtime.RemoveImage(ctx, tag); err != nil && dk.ErrorCode(err) != dk.ENOTFOUND {
			m.logger().Warn("prune image", "app", app, "image", tag, "err", err)
		}
	}
}

// pruneCache trims the build cache in the background; one prune at a time.
func (m *Manager) pruneCache(ctx context.Context) {
	if m.PruneCache == nil || !m.pruning.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer m.pruning.Store(false)
		if err := m.PruneCache(context.WithoutCancel(ctx)); err != nil {
			m.logger().Warn("prune build cache", "err", err)
		}
	}()
}
