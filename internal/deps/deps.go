// Package deps pins dependencies while the adapters are being written.
// TEMPORARY: remove once every import below is used by real code.
package deps

import (
	_ "github.com/docker/docker/api/types/container"
	_ "github.com/docker/docker/api/types/events"
	_ "github.com/docker/docker/api/types/filters"
	_ "github.com/docker/docker/api/types/image"
	_ "github.com/docker/docker/api/types/network"
	_ "github.com/docker/docker/client"
	_ "github.com/docker/docker/pkg/stdcopy"
	_ "github.com/gliderlabs/ssh"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/go-git/go-git/v5"
	_ "github.com/go-git/go-git/v5/plumbing/format/packfile"
	_ "github.com/go-git/go-git/v5/plumbing/format/pktline"
	_ "github.com/go-git/go-git/v5/plumbing/protocol/packp"
	_ "github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	_ "github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	_ "github.com/go-git/go-git/v5/storage/filesystem"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/kballard/go-shellquote"
	_ "github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/session"
	_ "github.com/moby/buildkit/session/auth/authprovider"
	_ "github.com/moby/buildkit/util/progress/progressui"
	_ "github.com/rogpeppe/go-internal/testscript"
	_ "github.com/tonistiigi/fsutil"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/ssh"
)
