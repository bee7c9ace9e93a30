// Package dockertest gives tests a Docker engine and locally made base images.
// Nothing is ever pulled: images are made with ImageImport from files on this
// machine (Debian's busybox-static).
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// BusyboxImage is the local base image tests build FROM.
const BusyboxImage = "dk-test/busybox:latest"

// Client returns a Docker client, or skips the test when no engine answers.
// Under CI=true a missing engine fails the test instead: the end-to-end tests
// are the point.
func Client(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("no Docker engine (CI=true requires one): %v", err)
		}
		tb.Skipf("no Docker engine: %v", err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Busybox makes sure BusyboxImage exists, importing it from the host's
// busybox-static binary when it does not, and returns its reference.
func Busybox(tb testing.TB, cli *client.Client) string {
	tb.Helper()
	if err := EnsureBusybox(context.Background(), cli); err != nil {
		tb.Fatal(err)
	}
	return BusyboxImage
}

// EnsureBusybox imports BusyboxImage unless the engine already has it.
func EnsureBusybox(ctx context.Context, cli *client.Client) error {
	if _, err := cli.ImageInspect(ctx, BusyboxImage); err == nil {
		return nil
	}
	rootfs, err := BusyboxRootfs()
	if err != nil {
		return err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, BusyboxImage,
		image.ImportOptions{Changes: []string{`CMD ["/bin/sh"]`, `ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`}})
	if err != nil {
		return fmt.Errorf("import %s: %w", BusyboxImage, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(rc)
	if strings.Contains(out.String(), `"error"`) {
		return fmt.Errorf("import %s: %s", BusyboxImage, out.String())
	}
	return nil
}

// BusyboxRootfs returns a tar of a minimal root filesystem: the host's
// static busybox with a link for every applet, /etc/passwd and /tmp.
func BusyboxRootfs() ([]byte, error) {
	const bb = "/bin/busybox"
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, fmt.Errorf("read %s (apt-get install busybox-static): %w", bb, err)
	}
	list, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bb, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		_, _ = tw.Write(data)
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "var", "var/www", "www", "proc", "sys", "dev"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file("bin/busybox", 0o755, bin)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\napp:x:1000:1000:app:/home:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"))
	for _, p := range strings.Fields(string(list)) {
		if p == "bin/busybox" {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: "/bin/busybox", Mode: 0o777, ModTime: now})
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
