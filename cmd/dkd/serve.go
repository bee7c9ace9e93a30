package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dkhq/dk"
	"github.com/dkhq/dk/builder"
	"github.com/dkhq/dk/engine"
	"github.com/dkhq/dk/gitreceive"
	"github.com/dkhq/dk/metrics"
	"github.com/dkhq/dk/releases"
	"github.com/dkhq/dk/router"
	"github.com/dkhq/dk/sshd"
	"github.com/dkhq/dk/store"
	"github.com/docker/docker/client"
	gossh "golang.org/x/crypto/ssh"
)

// readyFile is written into the data directory once dkd serves, with the
// addresses it really bound (useful with port 0).
const readyFile = "dkd.json"

func serve(parent context.Context, cfg *config, stderr io.Writer) error {
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.LogFormat == "json" {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	logger := slog.New(handler)
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()

	bootTimeout, err := time.ParseDuration(cfg.BootTimeout)
	if err != nil || bootTimeout <= 0 {
		return fmt.Errorf("--boot-timeout %q: use a duration like 60s", cfg.BootTimeout)
	}
	admins, err := loadAdminKeys(cfg.AdminKeys)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	_ = os.Remove(filepath.Join(cfg.Data, readyFile))
	db, err := store.Open(filepath.Join(cfg.Data, "dk.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	hostKey, err := loadHostKey(db)
	if err != nil {
		return err
	}

	docker, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = docker.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot reach the Docker engine (is dockerd running? DOCKER_HOST=%q): %w", os.Getenv("DOCKER_HOST"), err)
	}
	rt, err := engine.New(ctx, docker, cfg.Instance, logger.With("component", "engine"))
	if err != nil {
		return err
	}
	bk, err := builder.New(ctx, docker)
	if err != nil {
		return err
	}
	defer bk.Close()

	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", cfg.HTTPAddr, err)
	}
	proxy := router.New(cfg.Domain, logger.With("component", "router"))
	appURL := func(app string) string { return appURL(cfg.Domain, httpLn.Addr().String(), app) }

	mgr := &releases.Manager{
		Store: db, Builder: bk, Runtime: rt, Router: proxy, Detector: newDetector(cfg.BuildpackImages, docker),
		Logger: logger.With("component", "releases"), Instance: cfg.Instance, URL: appURL,
		BootTimeout: bootTimeout, DrainTimeout: cfg.DrainTimeout, StopGrace: cfg.StopGrace, KeepReleases: cfg.KeepReleases,
	}
	if cfg.CacheBytes > 0 {
		mgr.PruneCache = func(ctx context.Context) error { return bk.Prune(ctx, cfg.CacheBytes) }
	}
	git := &gitreceive.Server{Dir: filepath.Join(cfg.Data, "repos"), MaxPushBytes: cfg.MaxPushBytes, Logger: logger.With("component", "git")}

	ssh := &sshd.Server{
		Addr: cfg.SSHAddr, HostKey: hostKey, Store: db, Service: service{mgr, git}, AdminKeys: admins,
		Git:    &pushes{git: git, mgr: mgr, store: db, builds: db, log: logger.With("component", "git")},
		Logger: logger.With("component", "sshd"),
	}
	ssh.Buildpacks = buildpackPlans{git: git, store: db, detector: mgr.Detector}
	if err := ssh.Listen(); err != nil {
		return err
	}
	ssh.PushURL = func(app string) string { return pushURL(cfg.Domain, ssh.ListenAddr(), app) }

	// Metrics hooks, and the dashboard with /metrics and /healthz (dashboard.go).
	met := metrics.New(rt)
	proxy.Observe, mgr.Observer = met.ObserveRequest, met
	web, err := newWebUI(cfg, db, mgr, rt, met, docker, bk, appURL, logger.With("component", "dashboard"))
	if err != nil {
		return err
	}
	if web != nil {
		ssh.Dashboard = web.dash
	}

	// Crash recovery: deploys that were running when dkd stopped never
	// finished; then converge every app to its latest successful release.
	pending, err := db.PendingReleases(ctx)
	if err != nil {
		return err
	}
	mgr.RecoverInterrupted(ctx, pending)
	if err := mgr.ReconcileAll(ctx); err != nil {
		logger.Warn("initial reconcile", "err", err)
	}

	httpSrv := &http.Server{Handler: proxy, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(handler, slog.LevelWarn)}
	errc := make(chan error, 3)
	go func() { errc <- ssh.Serve() }()
	if web != nil {
		go func() {
			if err := web.serve(); err != nil {
				errc <- err
			}
		}()
	}
	go func() {
		if err := httpSrv.Serve(httpLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	bg, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer bgCancel()
	go mgr.Run(bg, 15*time.Second)
	go rt.Watch(bg, mgr.Trigger)

	if err := writeReady(cfg.Data, ssh.ListenAddr(), httpLn.Addr().String(), web.addr()); err != nil {
		return err
	}
	logger.Info("dkd ready", "version", dk.Version, "ssh", ssh.ListenAddr(), "http", httpLn.Addr().String(),
		"domain", cfg.Domain, "data", cfg.Data, "instance", cfg.Instance, "admin_keys", len(admins), "dashboard", web.addr())
	fmt.Fprintf(stderr, "\n  dk is running. Deploy an app:\n    git remote add dk %s\n    git push dk main\n    curl %s\n\n",
		pushURL(cfg.Domain, ssh.ListenAddr(), "hello"), appURL("hello"))

	select {
	case <-ctx.Done():
		logger.Info("shutting down; app containers keep running")
	case err := <-errc:
		logger.Error("server failed", "err", err)
		return err
	}
	_ = os.Remove(filepath.Join(cfg.Data, readyFile))
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = ssh.Shutdown(shutCtx)
	// Old containers still draining after a deploy finish first; the router
	// keeps serving their in-flight requests meanwhile.
	settleCtx, cancelSettle := context.WithTimeout(context.Background(), cfg.DrainTimeout+cfg.StopGrace)
	if err := mgr.Settle(settleCtx); err != nil {
		logger.Warn("old containers still draining at shutdown; the reconciler removes them at the next start")
	}
	cancelSettle()
	_ = httpSrv.Shutdown(shutCtx)
	if web != nil {
		_ = web.srv.Shutdown(shutCtx)
	}
	bgCancel()
	return nil
}

func writeReady(dir, sshAddr, httpAddr, dashboardAddr string) error {
	b, _ := json.Marshal(map[string]any{"ssh_addr": sshAddr, "http_addr": httpAddr, "dashboard_addr": dashboardAddr, "pid": os.Getpid()})
	tmp := filepath.Join(dir, readyFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, readyFile))
}

// loadHostKey returns the SSH host key, made once and kept in the store.
func loadHostKey(db *store.DB) (gossh.Signer, error) {
	b, err := db.Meta("ssh_host_key")
	if err != nil {
		return nil, err
	}
	if b == nil {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		blk, err := gossh.MarshalPrivateKey(priv, "dk host key")
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(blk)
		if err := db.SetMeta("ssh_host_key", b); err != nil {
			return nil, err
		}
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("parse host key: %w", err)
	}
	return signer, nil
}

// loadAdminKeys reads authorized_keys files.
func loadAdminKeys(paths []string) ([]gossh.PublicKey, error) {
	var keys []gossh.PublicKey
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("--admin-key: %w", err)
		}
		n := 0
		for len(b) > 0 {
			pub, _, _, rest, err := gossh.ParseAuthorizedKey(b)
			if err != nil {
				break
			}
			keys = append(keys, pub)
			b = rest
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("--admin-key %s: no SSH public keys in it (want authorized_keys format, e.g. ~/.ssh/id_ed25519.pub)", p)
		}
	}
	return keys, nil
}

func hostPort(addr string) (string, string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return host, port
}

func pushURL(domain, sshAddr, app string) string {
	host, port := hostPort(sshAddr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() || host == "" {
		host = domain
	}
	return fmt.Sprintf("ssh://dk@%s/%s", net.JoinHostPort(host, port), app)
}

func appURL(domain, httpAddr, app string) string {
	_, port := hostPort(httpAddr)
	if port == "80" || port == "" {
		return fmt.Sprintf("http://%s.%s/", app, domain)
	}
	return fmt.Sprintf("http://%s.%s:%s/", app, domain, port)
}

// service is the release manager as the SSH commands see it: destroying an
// app also removes its git repository.
type service struct {
	*releases.Manager
	git *gitreceive.Server
}

func (s service) DestroyApp(ctx context.Context, name, holder string) error {
	if err := s.Manager.DestroyApp(ctx, name, holder); err != nil {
		return err
	}
	return s.git.Remove(name)
}

// pushes glues git-receive-pack to the release manager: a push creates the
// app (admins only), takes the app's deploy lock, and deploys the pushed
// commit; the ref moves only once the release serves.
type pushes struct {
	git   *gitreceive.Server
	mgr   *releases.Manager
	store dk.Store
	// builds keeps each push's output for the dashboard (buildlogs.go).
	builds buildStore
	log    *slog.Logger
}

func (p *pushes) RejectPush(out io.Writer, msg string) error { return gitreceive.WriteError(out, msg) }

func (p *pushes) ReceivePack(ctx context.Context, app string, key *dk.Key, in io.Reader, out, errw io.Writer) error {
	_, err := p.store.App(ctx, app)
	exists := err == nil
	if err != nil && (dk.ErrorCode(err) != dk.ENOTFOUND || !key.Admin) {
		_ = p.RejectPush(out, dk.ErrorMessage(err))
		return err
	}
	lock, err := p.mgr.TryLock(app, "push by "+key.Name)
	if err != nil {
		_ = p.RejectPush(out, dk.ErrorMessage(err))
		return err
	}
	defer lock.Unlock()
	start := time.Now()
	created, deployed := false, false
	err = p.git.ReceivePack(ctx, app, in, out, func(ctx context.Context, push *gitreceive.Push) error {
		if !exists {
			// An admin's first push creates the app, once the push is accepted.
			if _, err := p.mgr.CreateApp(ctx, app); err != nil {
				return err
			}
			created = true
			fmt.Fprintf(push.Progress, "-----> Created app %s\n", app)
		}
		build, progress := recordBuild(ctx, p.builds, app, push.New, key, push.Progress)
		rel, err := p.mgr.Deploy(ctx, releases.DeployRequest{
			App: app, Commit: push.New, Dir: push.Dir, Author: key.Name, Output: progress, Build: build.number(),
			Timings: []dk.Timing{{Stage: "receive", Duration: time.Since(start)}},
		})
		if err != nil {
			fmt.Fprintf(progress, " !     %s\n", dk.ErrorMessage(err))
		}
		if serr := build.finish(ctx, rel, err); serr != nil {
			p.log.Warn("store build log", "app", app, "err", serr)
		}
		if err != nil {
			return err
		}
		deployed = true
		return nil
	})
	if err != nil && !exists && !deployed {
		// A refused first push leaves nothing behind: no app, no repository.
		cleanup := context.WithoutCancel(ctx)
		if created {
			if derr := p.mgr.DestroyLocked(cleanup, app); derr != nil && dk.ErrorCode(derr) != dk.ENOTFOUND {
				return err
			}
		}
		_ = p.git.Remove(app)
	}
	return err
}
