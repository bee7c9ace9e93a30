package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dkhq/dk"
)

// config is dkd serve's configuration: flags, with DK_* environment
// variables as defaults.
type config struct {
	Data         string
	SSHAddr      string
	HTTPAddr     string
	Domain       string
	AdminKeys    []string
	Instance     string
	MaxPushBytes int64
	BootTimeout  string
	DrainTimeout time.Duration
	StopGrace    time.Duration
	KeepReleases int
	CacheBytes   int64
	LogFormat    string
	// DashboardAddr is the dashboard's listen address ("off": none).
	DashboardAddr string
	// BuildpackImages overrides buildpack base images by key (go, node …).
	BuildpackImages map[string]string
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func parseServe(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("dkd serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := &config{}
	fs.StringVar(&cfg.Data, "data", env("DK_DATA", "/var/lib/dk"), "state directory: store, repositories, host key (DK_DATA)")
	fs.StringVar(&cfg.SSHAddr, "ssh-addr", env("DK_SSH_ADDR", "127.0.0.1:2222"), "SSH listen address for git push and commands (DK_SSH_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", env("DK_HTTP_ADDR", "127.0.0.1:8080"), "router listen address (DK_HTTP_ADDR)")
	fs.StringVar(&cfg.Domain, "domain", env("DK_DOMAIN", "localhost"), "apps are served at http://APP.DOMAIN (DK_DOMAIN)")
	var keys stringList
	fs.Var(&keys, "admin-key", "authorized_keys file whose keys are admins; repeatable (DK_ADMIN_KEY, colon-separated)")
	fs.StringVar(&cfg.Instance, "instance", env("DK_INSTANCE", "dk"), "name of this dk on the Docker engine: container labels, network and image names (DK_INSTANCE)")
	maxPush := fs.String("max-push-size", env("DK_MAX_PUSH_SIZE", "512M"), "largest accepted push, e.g. 100M, 2G (DK_MAX_PUSH_SIZE)")
	fs.StringVar(&cfg.BootTimeout, "boot-timeout", env("DK_BOOT_TIMEOUT", "60s"), "how long a new web process may take to become healthy, unless its check says otherwise (DK_BOOT_TIMEOUT)")
	drain := fs.String("drain-timeout", env("DK_DRAIN_TIMEOUT", "30s"), "how long old containers get to finish in-flight requests after a switch (DK_DRAIN_TIMEOUT)")
	grace := fs.String("stop-grace", env("DK_STOP_GRACE", "30s"), "time between SIGTERM and SIGKILL when stopping a container (DK_STOP_GRACE)")
	keep := fs.String("keep-releases", env("DK_KEEP_RELEASES", "5"), "how many successful releases per app keep their images for rollback (DK_KEEP_RELEASES)")
	cache := fs.String("build-cache-size", env("DK_BUILD_CACHE_SIZE", "10G"), "BuildKit cache kept after each deploy; 0 disables pruning (DK_BUILD_CACHE_SIZE)")
	fs.StringVar(&cfg.LogFormat, "log-format", env("DK_LOG_FORMAT", "text"), "server log format: text or json (DK_LOG_FORMAT)")
	var bpImages stringList
	fs.Var(&bpImages, "buildpack-image", "base image of generated builds, KEY=IMAGE with KEY go, node, python, runtime or static; repeatable (DK_BUILDPACK_IMAGES, comma-separated)")
	fs.StringVar(&cfg.DashboardAddr, "dashboard-addr", env("DK_DASHBOARD_ADDR", "127.0.0.1:8081"), "web dashboard, /metrics and /healthz listen address; off for none (DK_DASHBOARD_ADDR)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var err error
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (dkd serve takes only flags)", fs.Arg(0))
	}
	cfg.AdminKeys = keys
	if len(keys) == 0 {
		if v := os.Getenv("DK_ADMIN_KEY"); v != "" {
			cfg.AdminKeys = filepath.SplitList(v)
		}
	}
	for _, d := range []struct {
		flag string
		val  string
		dst  *time.Duration
	}{{"--drain-timeout", *drain, &cfg.DrainTimeout}, {"--stop-grace", *grace, &cfg.StopGrace}} {
		v, err := time.ParseDuration(d.val)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("%s %q: use a duration like 30s", d.flag, d.val)
		}
		*d.dst = v
	}
	if cfg.KeepReleases, err = strconv.Atoi(*keep); err != nil || cfg.KeepReleases < 1 {
		return nil, fmt.Errorf("--keep-releases %q: use a number of releases, at least 1", *keep)
	}
	if cfg.CacheBytes, err = parseSize(*cache); err != nil {
		return nil, fmt.Errorf("--build-cache-size: %w", err)
	}
	n, err := parseSize(*maxPush)
	if err != nil {
		return nil, fmt.Errorf("--max-push-size: %w", err)
	}
	cfg.MaxPushBytes = n
	cfg.Domain = strings.ToLower(strings.Trim(cfg.Domain, "."))
	if cfg.Domain == "" {
		return nil, fmt.Errorf("--domain is empty: apps need a domain, e.g. --domain localhost")
	}
	if err := dk.ValidateAppName(cfg.Instance); err != nil {
		return nil, fmt.Errorf("--instance %q: use lowercase letters, digits and dashes", cfg.Instance)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: use text or json", cfg.LogFormat)
	}
	if cfg.BuildpackImages, err = buildpackImages(bpImages); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("--data: %w", err)
	}
	cfg.Data = abs
	return cfg, nil
}

// parseSize parses 100, 100K, 100M, 2G (powers of 1024).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToUpper(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "B"), "I")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size: use e.g. 100M or 2G", s)
	}
	return n * mult, nil
}
