package dashboard_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dkhq/dk"
	"github.com/dkhq/dk/sshd"
	gossh "golang.org/x/crypto/ssh"
)

// chromium finds a Chromium to drive; under CI=true a missing one fails
// the test instead of skipping it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium found: the browser test needs it (apt-get install chromium)")
	}
	t.Skip("no chromium found (apt-get install chromium); skipped outside CI")
	return ""
}

type noGit struct{}

func (noGit) ReceivePack(context.Context, string, *dk.Key, io.Reader, io.Writer, io.Writer) error {
	return errors.New("not in this test")
}
func (noGit) RejectPush(io.Writer, string) error { return nil }

func signer(t *testing.T) gossh.Signer {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dashboardURL runs `dashboard:url` over a real SSH connection to a real
// sshd.Server wired to the dashboard, as a person would.
func dashboardURL(t *testing.T, e *env, dashURL string) string {
	t.Helper()
	admin := signer(t)
	s := &sshd.Server{Addr: "127.0.0.1:0", HostKey: signer(t), Store: e.db, Service: e.mgr, Git: noGit{},
		AdminKeys: []gossh.PublicKey{admin.PublicKey()}, Dashboard: e.dash}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	c, err := gossh.Dial("tcp", s.ListenAddr(), &gossh.ClientConfig{User: "dk", Auth: []gossh.AuthMethod{gossh.PublicKeys(admin)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if err := sess.Run("dashboard:url"); err != nil {
		t.Fatalf("dashboard:url: %v: %s", err, errb.String())
	}
	link := strings.TrimSpace(out.String())
	if !strings.HasPrefix(link, dashURL+"/login/") || !strings.Contains(errb.String(), "works once") {
		t.Fatalf("dashboard:url printed %q, %q", link, errb.String())
	}
	return link
}

// TestBrowser signs in through a real dashboard:url link in headless
// Chromium, reads the overview and an app page as a person would, and
// watches a line the app prints after the page opened arrive in the live
// log view. The app page's screenshot is kept in the test's artifact
// directory (go test -artifacts), and copied to $DK_DASHBOARD_SCREENSHOT
// when set (docs/dashboard.png is made that way).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives Chromium; skipped with -short")
	}
	exe := chromium(t)
	e := newEnv(t)
	e.clock = nil
	e.dash.Now = nil // a real clock: the browser's session must not expire
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	e.dash.BaseURL = func() string { return srv.URL }
	link := dashboardURL(t, e, srv.URL)

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000),
		chromedp.UserDataDir(t.TempDir()), chromedp.Flag("proxy-server", "direct://"), chromedp.Flag("proxy-bypass-list", "*"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	browser, cancel := chromedp.NewContext(actx)
	defer cancel()
	// The first run starts the browser, under no deadline; each step after
	// runs under the test's.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(browser, 60*time.Second)
	defer cancel()

	// Sign in: the link lands on the overview.
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitVisible(`table.apps`)); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	overview := text(t, ctx, `main`)
	mustContain(t, "overview as seen", overview, "Apps", "hello", "v2", "running", "web 1/1", "empty", "stopped", "last deploy failed")

	// The app page, from the overview's link.
	if err := chromedp.Do(ctx,
		chromedp.Click(`a[href="/apps/hello"]`),
		chromedp.WaitVisible(`#live.live`), // the live tail is connected
	); err != nil {
		t.Fatalf("app page: %v", err)
	}
	page, status := text(t, ctx, `main`), text(t, ctx, `#live-status`)
	mustContain(t, "app page as seen", page, "Processes", "web.1", "Releases", "Set GREETING, SECRET_TOKEN", "current",
		"Config", "SECRET_TOKEN", "••••••••", "Builds", "-----> Building hello from dockerfile", "listening on 5000")
	if strings.Contains(page, secretValue) {
		t.Errorf("the page shows a config value")
	}
	mustContain(t, "live status", status, "Live")

	// A line printed now, after the page opened, shows up in the live view.
	select {
	case <-e.rt.subscribed:
	case <-ctx.Done():
		t.Fatal("the live view never followed web.1")
	}
	e.rt.Print(e.web.ID, "GET /printed-after-open 200")
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("live-log").textContent.includes("printed-after-open")`)); err != nil {
		t.Fatalf("live line: %v", err)
	}
	live := text(t, ctx, `#live-log`)
	mustContain(t, "live log", live, "hello[web.1]: GET /printed-after-open 200")

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	shot := filepath.Join(t.ArtifactDir(), "app-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
	if p := os.Getenv("DK_DASHBOARD_SCREENSHOT"); p != "" {
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Sign out: the overview is gone.
	if err := chromedp.Do(ctx,
		chromedp.Click(`form.logout button`),
		chromedp.WaitVisible(`pre.cmd`),
		chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(`pre.cmd`),
	); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	after := text(t, ctx, `main`)
	mustContain(t, "after sign out", after, "Sign in to dk")
	if strings.Contains(after, "hello") {
		t.Errorf("signed out, the overview still shows apps")
	}
}

// text is the visible text of the first element matching sel.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}
