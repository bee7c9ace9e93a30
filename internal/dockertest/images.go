package dockertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Stand-ins for the buildpacks' public base images, made on this machine
// (nothing is pulled): the Go toolchain from the machine's own GOROOT on the
// busybox rootfs; Debian bookworm (debootstrap --variant=minbase from the
// Debian mirror apt uses here) bare, with nodejs and npm, and with python3
// and venv; busybox (httpd) for static sites.
const (
	NodeImage    = "dk-test/node:18"
	PythonImage  = "dk-test/python:3.11"
	RuntimeImage = "dk-test/debian:bookworm"
	StaticImage  = "dk-test/static:latest"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// GoImage is the Go toolchain stand-in, tagged with the machine's Go
// major.minor (dk-test/golang:1.26).
func GoImage() string {
	v := strings.TrimPrefix(goVersion(goroot()), "go")
	if parts := strings.SplitN(v, ".", 3); len(parts) >= 2 {
		v = parts[0] + "." + parts[1]
	}
	return "dk-test/golang:" + v
}

// BuildpackImages returns the buildpack image keys mapped to the stand-ins:
// what a test passes to dkd serve --buildpack-image KEY=REF.
func BuildpackImages() map[string]string {
	return map[string]string{
		"go":      GoImage(),
		"node":    NodeImage,
		"python":  PythonImage,
		"runtime": RuntimeImage,
		"static":  StaticImage,
	}
}

var ensureMu sync.Mutex // one maker per process: parallel scripts wait for it

// BuildpackStandIns makes sure every stand-in exists (see
// EnsureBuildpackImages) and returns BuildpackImages.
func BuildpackStandIns(tb testing.TB, cli *client.Client) map[string]string {
	tb.Helper()
	if err := EnsureBuildpackImages(context.Background(), cli, nil); err != nil {
		tb.Fatal(err)
	}
	return BuildpackImages()
}

// EnsureBuildpackImages makes the stand-ins the engine does not have yet,
// concurrently, logging what it makes to log (if not nil). An image is made
// once per engine: its tag is the cache. The Debian ones need root,
// debootstrap (apt-get install debootstrap) and the Debian mirror; the first
// run takes a few minutes.
func EnsureBuildpackImages(ctx context.Context, cli *client.Client, log io.Writer) error {
	ensureMu.Lock()
	defer ensureMu.Unlock()
	// And one per machine: go test runs packages in parallel processes.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "dk-test-images.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if err := EnsureBusybox(ctx, cli); err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	// run runs mk for the refs the engine lacks, in the background.
	run := func(mk func([]string) error, refs ...string) {
		var missing []string
		for _, ref := range refs {
			if _, err := cli.ImageInspect(ctx, ref); err != nil {
				missing = append(missing, ref)
			}
		}
		if len(missing) == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if log != nil {
				fmt.Fprintf(log, "dockertest: making %s\n", strings.Join(missing, ", "))
			}
			err := mk(missing)
			if err != nil {
				err = fmt.Errorf("make stand-in images %s: %w", strings.Join(missing, ", "), err)
			} else if log != nil {
				fmt.Fprintf(log, "dockertest: made %s in %s\n", strings.Join(missing, ", "), time.Since(start).Round(time.Second))
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}()
	}
	run(func([]string) error { return makeGoImage(ctx, cli, GoImage()) }, GoImage())
	run(func([]string) error { return cli.ImageTag(ctx, BusyboxImage, StaticImage) }, StaticImage)
	run(func(refs []string) error { return makeDebianImages(ctx, cli, refs) }, RuntimeImage, NodeImage, PythonImage)
	wg.Wait()
	return errors.Join(errs...)
}

// debianVariant is a Debian stand-in: minbase plus packages.
type debianVariant struct {
	packages []string
	cmd      string
	check    func(rootfs string) error
}

var debianVariants = map[string]debianVariant{
	RuntimeImage: {nil, `CMD ["bash"]`, nil},
	NodeImage:    {[]string{"nodejs", "npm"}, `CMD ["node"]`, checkDpkgVersion("nodejs", "18.")},
	PythonImage:  {[]string{"python3", "python3-venv"}, `CMD ["python3"]`, checkFile("usr/bin/python3.11")},
}

// makeDebianImages debootstraps one minbase bookworm, then makes each ref
// from a copy of it (apt-get install in a chroot: it orders package
// configuration better than debootstrap --include, which fails on npm),
// concurrently.
func makeDebianImages(ctx context.Context, cli *client.Client, refs []string) error {
	base, cleanup, err := debootstrap(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	rootfs := map[string]string{}
	for _, ref := range refs {
		if len(debianVariants[ref].packages) == 0 {
			continue
		}
		dir, err := os.MkdirTemp("", "dk-rootfs-")
		if err != nil {
			return err
		}
		defer removeRootfs(dir)
		if out, err := exec.CommandContext(ctx, "cp", "-a", base+"/.", dir).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s: %v: %s", base, err, out)
		}
		rootfs[ref] = dir
	}
	var (
		wg   sync.WaitGroup
		errs = make([]error, len(refs))
	)
	for i, ref := range refs {
		dir := rootfs[ref]
		if dir == "" {
			dir = base
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = makeDebianImage(ctx, cli, dir, ref, debianVariants[ref])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// makeDebianImage installs v's packages into the rootfs at dir, checks and
// trims it, and imports it as ref.
func makeDebianImage(ctx context.Context, cli *client.Client, dir, ref string, v debianVariant) error {
	if len(v.packages) > 0 {
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "etc/resolv.conf"), b, 0o644)
		}
		args := append([]string{dir, "apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Options::=--force-unsafe-io"}, v.packages...)
		cmd := exec.CommandContext(ctx, sbin("chroot"), args...)
		cmd.Env = []string{"PATH=" + defaultPath, "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install %s: %v\n%s", strings.Join(v.packages, " "), err, lastLines(string(out), 20))
		}
		if mounted(dir) {
			return fmt.Errorf("apt-get left file systems mounted under %s", dir)
		}
	}
	if v.check != nil {
		if err := v.check(dir); err != nil {
			return err
		}
	}
	trimRootfs(dir)
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", dir, "-cf", "-", ".")
	var stderr bytes.Buffer
	tarCmd.Stderr = &stderr
	out, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := tarCmd.Start(); err != nil {
		return fmt.Errorf("tar: %w", err)
	}
	ierr := importImage(ctx, cli, out, ref, "ENV PATH="+defaultPath, "ENV LANG=C.UTF-8", v.cmd)
	if err := tarCmd.Wait(); err != nil && ierr == nil {
		ierr = fmt.Errorf("tar %s: %v: %s", dir, err, stderr.String())
	}
	return ierr
}

// importImage imports a rootfs tarball read from r as ref.
func importImage(ctx context.Context, cli *client.Client, r io.Reader, ref string, changes ...string) error {
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: r, SourceName: "-"}, ref, image.ImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("import %s: %w", ref, err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(rc)
	if strings.Contains(out.String(), `"error"`) {
		return fmt.Errorf("import %s: %s", ref, out.String())
	}
	return nil
}

func goroot() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		return strings.TrimSpace(string(out))
	}
	return "/usr/local/go"
}

func goVersion(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// makeGoImage imports the busybox rootfs plus the machine's GOROOT at
// /usr/local/go (without its tests, API files, docs and testdata).
func makeGoImage(ctx context.Context, cli *client.Client, ref string) error {
	root := goroot()
	base, err := BusyboxRootfs()
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(goRootfs(base, root, pw))
	}()
	defer pr.Close()
	return importImage(ctx, cli, pr, ref,
		"ENV PATH=/usr/local/go/bin:/go/bin:"+defaultPath, "ENV GOPATH=/go", "WORKDIR /go", `CMD ["/bin/sh"]`)
}

// goRootfs writes the base tarball's entries, then GOROOT under usr/local/go.
func goRootfs(base []byte, goroot string, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	tw := tar.NewWriter(bw)
	tr := tar.NewReader(bytes.NewReader(base))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	now := time.Now()
	for _, d := range []string{"usr/local/", "go/", "go/bin/", "go/src/", "go/pkg/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now}); err != nil {
			return err
		}
	}
	skip := map[string]bool{"test": true, "api": true, "doc": true, "misc": true}
	err := filepath.WalkDir(goroot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(goroot, path)
		if rel == "." {
			rel = ""
		}
		if d.IsDir() && (skip[rel] || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(filepath.Join("usr/local/go", rel))
		if d.IsDir() {
			h.Name += "/"
		}
		h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("tar %s: %w", goroot, err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

// debootstrap makes a minbase Debian bookworm root filesystem in a new
// temporary directory.
func debootstrap(ctx context.Context) (dir string, cleanup func(), err error) {
	if sbin("debootstrap") == "" {
		return "", nil, errors.New("debootstrap not found: apt-get install debootstrap (the Node.js, Python and runtime stand-in images are Debian minbase root filesystems)")
	}
	if os.Geteuid() != 0 {
		return "", nil, errors.New("debootstrap needs root to make the Debian stand-in images: run the tests as root, or make the images once as root")
	}
	dir, err = os.MkdirTemp("", "dk-rootfs-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { removeRootfs(dir) }
	args := []string{"--variant=minbase", "bookworm", dir, debianMirror()}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, sbin("debootstrap"), args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("debootstrap %s: %v\n%s", strings.Join(args, " "), err, lastLines(out.String(), 20))
	}
	if mounted(dir) {
		cleanup()
		return "", nil, fmt.Errorf("debootstrap left file systems mounted under %s", dir)
	}
	return dir, cleanup, nil
}

// trimRootfs removes apt's caches and lists, docs, man pages, locales and
// device nodes (the engine makes /dev) from a root filesystem.
func trimRootfs(dir string) {
	for _, d := range []string{"var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "dev"} {
		entries, _ := os.ReadDir(filepath.Join(dir, d))
		for _, e := range entries {
			if e.Name() != "partial" && e.Name() != "lock" {
				os.RemoveAll(filepath.Join(dir, d, e.Name()))
			}
		}
	}
	os.RemoveAll(filepath.Join(dir, "var/cache/apt/pkgcache.bin"))
	os.RemoveAll(filepath.Join(dir, "var/cache/apt/srcpkgcache.bin"))
}

// sbin finds a system command that may be outside a user's PATH, "" if none.
func sbin(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	return ""
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// removeRootfs removes a debootstrapped directory, unless something is still
// mounted under it (a bind mount of /dev must never be removed through).
func removeRootfs(dir string) {
	if mounted(dir) {
		fmt.Fprintf(os.Stderr, "dockertest: file systems still mounted under %s: not removing it\n", dir)
		return
	}
	os.RemoveAll(dir)
}

// mounted reports whether any mount point is under dir (or it cannot tell).
func mounted(dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			return true
		}
	}
	return false
}

// debianMirror returns the Debian archive apt uses on this machine (from
// /etc/apt/sources.list and sources.list.d, one-line or deb822 format), or
// deb.debian.org.
func debianMirror() string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if m := mirrorIn(string(b)); m != "" {
			return m
		}
	}
	return "http://deb.debian.org/debian"
}

// mirrorIn finds the URI of a "bookworm" main-archive entry in a sources file.
func mirrorIn(text string) string {
	// deb822 stanzas: URIs: and Suites: fields.
	for _, stanza := range strings.Split(text, "\n\n") {
		var uris, suites []string
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
			switch strings.TrimSpace(k) {
			case "URIs":
				uris = strings.Fields(v)
			case "Suites":
				suites = strings.Fields(v)
			}
		}
		for _, s := range suites {
			if s == "bookworm" && len(uris) > 0 {
				return uris[0]
			}
		}
	}
	// One-line format: deb [options] URI SUITE COMPONENTS…
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == "bookworm" {
			return f[0]
		}
	}
	return ""
}

// checkDpkgVersion checks a package is installed at a version with prefix.
func checkDpkgVersion(pkg, prefix string) func(string) error {
	return func(rootfs string) error {
		b, err := os.ReadFile(filepath.Join(rootfs, "var/lib/dpkg/status"))
		if err != nil {
			return err
		}
		for _, stanza := range strings.Split(string(b), "\n\n") {
			if !strings.Contains(stanza+"\n", "Package: "+pkg+"\n") {
				continue
			}
			for _, line := range strings.Split(stanza, "\n") {
				if v, ok := strings.CutPrefix(line, "Version: "); ok {
					if strings.HasPrefix(v, prefix) {
						return nil
					}
					return fmt.Errorf("debootstrap installed %s %s, but the stand-in's tag promises %s*: update the tag in internal/dockertest", pkg, v, prefix)
				}
			}
		}
		return fmt.Errorf("debootstrap did not install %s", pkg)
	}
}

// checkFile checks the root filesystem has a file.
func checkFile(rel string) func(string) error {
	return func(rootfs string) error {
		if _, err := os.Stat(filepath.Join(rootfs, rel)); err != nil {
			return fmt.Errorf("the stand-in's tag promises /%s: %w", rel, err)
		}
		return nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
