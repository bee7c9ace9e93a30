package dk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyDirection keeps the domain in the middle: the root package
// imports only the standard library, and adapters never import siblings.
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/dkhq/dk"
	rules := map[string][]string{
		mod:                 {"github.com/", "golang.org/x/", "go.etcd.io/"},
		mod + "/router":     {"github.com/docker/", "github.com/moby/", "go.etcd.io/", mod + "/store", mod + "/engine", mod + "/releases", mod + "/dashboard", mod + "/metrics"},
		mod + "/sshd":       {"github.com/docker/", "github.com/moby/", "go.etcd.io/", mod + "/store", mod + "/engine", mod + "/builder", mod + "/releases", mod + "/gitreceive", mod + "/router", mod + "/dashboard", mod + "/metrics"},
		mod + "/releases":   {"github.com/docker/", "github.com/moby/", "go.etcd.io/", "github.com/go-git/", "github.com/gliderlabs/", mod + "/store", mod + "/engine", mod + "/builder", mod + "/gitreceive", mod + "/sshd", mod + "/router", mod + "/dashboard", mod + "/metrics"},
		mod + "/store":      {"github.com/docker/", "github.com/moby/", mod + "/engine", mod + "/builder", mod + "/releases", mod + "/sshd"},
		mod + "/builder":    {"go.etcd.io/", mod + "/store", mod + "/engine", mod + "/releases", mod + "/sshd"},
		mod + "/engine":     {"github.com/moby/buildkit", "go.etcd.io/", mod + "/store", mod + "/builder", mod + "/releases", mod + "/sshd"},
		mod + "/gitreceive": {"github.com/docker/", "github.com/moby/", "go.etcd.io/", mod + "/store", mod + "/releases", mod + "/sshd"},
		mod + "/buildpacks": {"github.com/", "go.etcd.io/"},
		mod + "/dashboard":  {"github.com/docker/", "github.com/moby/", "go.etcd.io/", "github.com/go-git/", "github.com/gliderlabs/", mod + "/store", mod + "/engine", mod + "/builder", mod + "/gitreceive", mod + "/sshd", mod + "/router", mod + "/releases", mod + "/metrics"},
		mod + "/metrics":    {"github.com/docker/", "github.com/moby/", "go.etcd.io/", "github.com/go-git/", "github.com/gliderlabs/", mod + "/store", mod + "/engine", mod + "/builder", mod + "/gitreceive", mod + "/sshd", mod + "/router", mod + "/releases", mod + "/dashboard"},
	}
	for pkg, forbidden := range rules {
		out, err := exec.Command("go", "list", "-deps", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == pkg || dep == mod && pkg != mod {
				continue
			}
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) && !(pkg == mod+"/buildpacks" && dep == mod) {
					t.Errorf("%s imports %s (forbidden: %s)", pkg, dep, f)
				}
			}
		}
	}
}
