// Package dk holds dk's domain: apps, releases, config, keys and processes,
// their validation, the error codes, and the small interfaces the core
// consumes. It imports only the standard library; every technology (bbolt,
// BuildKit, Docker, go-git, SSH, HTTP) lives in an adapter package that
// imports this one.
package dk

import (
	"context"
	"io"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Version is the dk version, set at link time by the Makefile.
var Version = "dev"

var (
	appNameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	configKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	procNameRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	keyNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]*$`)
)

// MaxAppNameLen keeps app names valid DNS labels.
const MaxAppNameLen = 63

// ValidateAppName reports whether name can be an app name.
func ValidateAppName(name string) error {
	if name == "" {
		return Errorf(EINVALID, "app name is empty: use lowercase letters, digits and dashes, e.g. myapp")
	}
	if len(name) > MaxAppNameLen || !appNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid app name %q: use lowercase letters, digits and dashes, starting and ending with a letter or digit, at most %d characters", name, MaxAppNameLen)
	}
	return nil
}

// ValidateConfigKey reports whether key can be a config variable name.
func ValidateConfigKey(key string) error {
	if !configKeyRE.MatchString(key) {
		return Errorf(EINVALID, "invalid config key %q: use letters, digits and underscores, not starting with a digit", key)
	}
	return nil
}

// ValidateProcessType reports whether name can be a process type.
func ValidateProcessType(name string) error {
	if !procNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid process type %q: use lowercase letters, digits, dashes and underscores", name)
	}
	return nil
}

// ValidateKeyName reports whether name can name an SSH key.
func ValidateKeyName(name string) error {
	if len(name) > 64 || !keyNameRE.MatchString(name) {
		return Errorf(EINVALID, "invalid key name %q: use letters, digits, dots, dashes, underscores and @", name)
	}
	return nil
}

// App is a deployable application.
type App struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// Config is the app's own config layer (over the global layer).
	Config Config `json:"config,omitempty"`
	// Formation is how many containers each process type runs.
	Formation Formation `json:"formation,omitempty"`
	// ProcessConfig overrides Config for one process type.
	ProcessConfig map[string]Config `json:"process_config,omitempty"`
	// Checks is the health check set with checks:set (over the repo's app.json).
	Checks *HealthCheck `json:"checks,omitempty"`
}

// HealthCheck says when a new web process counts as healthy.
type HealthCheck struct {
	// Path is an HTTP path that must answer 2xx/3xx; "" means the process
	// only has to accept TCP connections on PORT.
	Path string `json:"path,omitempty"`
	// Timeout bounds the whole wait: not healthy by then, the deploy fails.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Interval is the time between attempts.
	Interval time.Duration `json:"interval,omitempty"`
	// Attempts, when set, fails the deploy after that many failed attempts.
	Attempts int `json:"attempts,omitempty"`
}

// Health check defaults.
const (
	DefaultCheckTimeout  = 60 * time.Second
	DefaultCheckInterval = 100 * time.Millisecond
)

// WithDefaults fills unset fields; timeout defaults to boot when given.
func (h HealthCheck) WithDefaults(boot time.Duration) HealthCheck {
	if h.Timeout <= 0 {
		h.Timeout = boot
		if h.Timeout <= 0 {
			h.Timeout = DefaultCheckTimeout
		}
	}
	if h.Interval <= 0 {
		h.Interval = DefaultCheckInterval
	}
	return h
}

// Overlay returns h with the set fields of o over it.
func (h HealthCheck) Overlay(o *HealthCheck) HealthCheck {
	if o == nil {
		return h
	}
	if o.Path != "" {
		h.Path = o.Path
	}
	if o.Timeout > 0 {
		h.Timeout = o.Timeout
	}
	if o.Interval > 0 {
		h.Interval = o.Interval
	}
	if o.Attempts > 0 {
		h.Attempts = o.Attempts
	}
	return h
}

// String renders the check for humans.
func (h HealthCheck) String() string {
	what := "TCP connect to $PORT"
	if h.Path != "" {
		what = "HTTP GET " + h.Path + " answers 2xx/3xx"
	}
	s := what + ", every " + h.Interval.String() + ", within " + h.Timeout.String()
	if h.Attempts > 0 {
		s += ", at most " + strconv.Itoa(h.Attempts) + " attempts"
	}
	return s
}

// Formation maps a process type to its container count.
type Formation map[string]int

// Scale returns the count for a process type: web defaults to 1 when unset.
func (f Formation) Scale(proc string) int {
	if n, ok := f[proc]; ok {
		return n
	}
	if proc == "web" {
		return 1
	}
	return 0
}

// Config is a set of environment variables. Values are secrets: Config
// redacts itself when logged.
type Config map[string]string

// LogValue implements slog.LogValuer: keys only, never values.
func (c Config) LogValue() slog.Value {
	return slog.StringValue("[" + strings.Join(c.Keys(), " ") + "]")
}

// Keys returns the config keys, sorted.
func (c Config) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Clone returns a copy of c (never nil).
func (c Config) Clone() Config {
	out := make(Config, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// Merge returns the overlay of layers, later layers winning.
func Merge(layers ...Config) Config {
	out := Config{}
	for _, l := range layers {
		for k, v := range l {
			out[k] = v
		}
	}
	return out
}

// Release statuses.
const (
	ReleasePending   = "pending"   // being started; not yet serving
	ReleaseSucceeded = "succeeded" // started and serving (or was)
	ReleaseFailed    = "failed"    // never served
)

// Release is a numbered, immutable pairing of an image and a config snapshot.
type Release struct {
	App         string    `json:"app"`
	Version     int       `json:"version"`
	Description string    `json:"description"`
	Image       string    `json:"image"`
	Commit      string    `json:"commit,omitempty"`
	Config      Config    `json:"config"`    // app layer snapshot
	Global      Config    `json:"global"`    // global layer snapshot
	Processes   Processes `json:"processes"` // process type → command ("" = the image's CMD)
	// ProcessConfig is the per-process-type config layer snapshot.
	ProcessConfig map[string]Config `json:"process_config,omitempty"`
	// Checks is the effective health check of the web process.
	Checks HealthCheck `json:"checks"`
	// ImagePruned is set when the release's image was removed to save disk.
	ImagePruned bool      `json:"image_pruned,omitempty"`
	Status      string    `json:"status"`
	Error       string    `json:"error,omitempty"`
	Author      string    `json:"author,omitempty"` // name of the key that made it
	CreatedAt   time.Time `json:"created_at"`
	Timings     []Timing  `json:"timings,omitempty"`
	// Build is the number of the build (push) that made this release, 0 for
	// config changes and rollbacks; its log is kept by the store.
	Build int `json:"build,omitempty"`
}

// Timing is how long one stage of a deploy took.
type Timing struct {
	Stage    string        `json:"stage"`
	Duration time.Duration `json:"duration"`
}

// Name is vN.
func (r *Release) Name() string { return "v" + strconv.Itoa(r.Version) }

// Env returns the environment for a process of this release.
func (r *Release) Env(proc string, index int) Config {
	env := Merge(r.Global, r.Config, r.ProcessConfig[proc])
	if proc == "web" {
		env["PORT"] = strconv.Itoa(r.Port())
	}
	env["DK_APP"] = r.App
	env["DK_RELEASE"] = r.Name()
	env["DK_PROCESS_TYPE"] = proc
	env["DK_PROCESS_INDEX"] = strconv.Itoa(index)
	return env
}

// Port returns the port the web process listens on for this release.
func (r *Release) Port() int {
	env := Merge(r.Global, r.Config)
	if p, ok := env["PORT"]; ok {
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			return n
		}
	}
	return DefaultPort
}

// DefaultPort is the PORT an app listens on unless configured otherwise.
const DefaultPort = 5000

// Processes maps process type to command.
type Processes map[string]string

// ReleasePhase is the Procfile entry that runs once per release, before
// any process switches; it is not a long-running process type.
const ReleasePhase = "release"

// Types returns the long-running process types, web first then sorted.
func (p Processes) Types() []string {
	var out []string
	for k := range p {
		if k != "web" && k != ReleasePhase {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if _, ok := p["web"]; ok {
		out = append([]string{"web"}, out...)
	}
	return out
}

// Key is an SSH public key allowed to talk to dk.
type Key struct {
	Name        string    `json:"name"`
	PublicKey   string    `json:"public_key"`  // authorized_keys format
	Fingerprint string    `json:"fingerprint"` // SHA256:...
	Admin       bool      `json:"admin"`
	CreatedAt   time.Time `json:"created_at"`
}

// Container is a running (or stopped) process of an app, as the runtime sees it.
type Container struct {
	ID        string    `json:"id"`
	App       string    `json:"app"`
	Release   int       `json:"release"`
	Process   string    `json:"process"`
	Index     int       `json:"index"`
	State     string    `json:"state"` // running, restarting, exited, created …
	Addr      string    `json:"addr"`  // host:port the router can reach, when running
	StartedAt time.Time `json:"started_at"`
	// Restarts and ExitCode are known from Inspect (not from Containers).
	Restarts int `json:"restarts"`
	ExitCode int `json:"exit_code"`
}

// ContainerSpec is what the runtime needs to start one process.
type ContainerSpec struct {
	App     string
	Release int
	Process string
	Index   int
	Image   string
	Command string // shell command; "" means the image's CMD
	Env     Config
	Port    int // port the process listens on (web), 0 for none
	// OneOff runs the process once (no restart policy), e.g. the release phase.
	OneOff bool
}

// Store keeps dk's state.
type Store interface {
	App(ctx context.Context, name string) (*App, error)
	Apps(ctx context.Context) ([]*App, error)
	CreateApp(ctx context.Context, app *App) error
	// UpdateApp applies fn to the stored app inside one transaction.
	UpdateApp(ctx context.Context, name string, fn func(*App) error) (*App, error)
	DeleteApp(ctx context.Context, name string) error

	GlobalConfig(ctx context.Context) (Config, error)
	UpdateGlobalConfig(ctx context.Context, fn func(Config) error) (Config, error)

	// CreateRelease assigns r the next version of its app and stores it.
	CreateRelease(ctx context.Context, r *Release) error
	UpdateRelease(ctx context.Context, r *Release) error
	Release(ctx context.Context, app string, version int) (*Release, error)
	// Releases lists an app's releases, newest first.
	Releases(ctx context.Context, app string) ([]*Release, error)

	Keys(ctx context.Context) ([]*Key, error)
	KeyByFingerprint(ctx context.Context, fp string) (*Key, error)
	CreateKey(ctx context.Context, k *Key) error
	DeleteKey(ctx context.Context, name string) error
}

// Builder turns source into an image.
type Builder interface {
	// Build builds the image for req and returns its reference, writing
	// human progress to req.Output.
	Build(ctx context.Context, req BuildRequest) (image string, err error)
}

// BuildRequest is one build.
type BuildRequest struct {
	App        string
	Dir        string // the build context: the pushed commit's tree, checked out
	Dockerfile string // path of the Dockerfile relative to Dir, default "Dockerfile"
	// DockerfileContent, when set, is used instead of reading Dockerfile from Dir
	// (buildpacks generate theirs).
	DockerfileContent []byte
	Tags              []string // image references to tag the result with
	Output            io.Writer
}

// Runtime runs containers.
type Runtime interface {
	// Containers lists this dk's containers (all apps when app is "").
	Containers(ctx context.Context, app string) ([]Container, error)
	// Start creates and starts a container for spec and returns it.
	Start(ctx context.Context, spec ContainerSpec) (Container, error)
	// Stop stops (SIGTERM, then SIGKILL after grace) and removes a container.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Inspect returns the current view of one container.
	Inspect(ctx context.Context, id string) (Container, error)
	// Logs writes the last tail lines of a container's output (tail<0: all),
	// following when follow is set until ctx ends.
	Logs(ctx context.Context, id string, tail int, follow bool, w LogWriter) error
	// RemoveImage removes an image reference (best effort).
	RemoveImage(ctx context.Context, ref string) error
	// TagImage gives the image src the extra reference dst.
	TagImage(ctx context.Context, src, dst string) error
	// Images lists the image references dk made for an app.
	Images(ctx context.Context, app string) ([]string, error)
	// Wait waits until a container exits and returns its exit code.
	Wait(ctx context.Context, id string) (int, error)
}

// LogWriter receives log lines with their timestamps.
type LogWriter func(ts time.Time, line string)

// Router sends HTTP traffic for an app to its backends.
type Router interface {
	// SetRoutes replaces the whole route table: app name → backend addrs.
	SetRoutes(routes map[string][]string)
	// Drain waits until no request is in flight to addrs (already out of
	// the table), or ctx ends.
	Drain(ctx context.Context, addrs []string) error
}

// BuildPlan is how an app's source becomes an image.
type BuildPlan struct {
	Buildpack  string // "dockerfile", "go", "node", "python", "static"
	Reason     string // why it applies, for humans
	Dockerfile string // path of the Dockerfile in the source, when the app has one
	// DockerfileContent is a generated Dockerfile (buildpacks).
	DockerfileContent []byte
}

// Detector picks the build plan for a checked-out source tree. cfg is the
// app's config: its BUILDPACK, when set, names the buildpack to use.
type Detector interface {
	Detect(dir string, cfg Config) (*BuildPlan, error)
}

// ConfigChange is a config:set / config:unset, for one app or (App "") the
// global layer.
type ConfigChange struct {
	App     string
	Process string // when set, the change is to that process type's layer
	Set     Config
	Unset   []string
	Restart bool // make a release and roll it out (false: --no-restart)
	Author  string
	Output  io.Writer
}
