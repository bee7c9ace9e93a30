// Package dashboard is dk's read-only web dashboard: an overview of every
// app, a page per app (releases, processes, masked config, builds, live
// logs), build log pages, and /metrics and /healthz for machines.
//
// Pages are server-rendered html/template; the only script is the live log
// tail (Server-Sent Events), and every asset is embedded. No page is served
// without a session, and a session starts only from a one-time login link
// made over SSH (ssh dk dashboard:url). No route changes dk's state; the
// login link's GET, which consumes the link and starts a session, is the
// one exception, and logging out is a POST.
//
// The dashboard reads dk through the small interfaces below; it imports
// only the domain and HTTP packages.
package dashboard

import (
	"context"
	"embed"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/dkhq/dk"
	"github.com/go-chi/chi/v5"
)

// Store is the part of dk's state the dashboard reads.
type Store interface {
	Apps(ctx context.Context) ([]*dk.App, error)
	App(ctx context.Context, name string) (*dk.App, error)
	// Releases lists an app's releases, newest first.
	Releases(ctx context.Context, app string) ([]*dk.Release, error)
	// ReleaseHeads returns an app's newest release and its current one
	// (newest succeeded), either nil when there is none, without reading
	// the whole history (the overview lists every app).
	ReleaseHeads(ctx context.Context, app string) (newest, current *dk.Release, err error)
	KeyByFingerprint(ctx context.Context, fp string) (*dk.Key, error)
}

// BuildLogs reads the kept builds and their logs.
type BuildLogs interface {
	// Builds lists an app's builds, newest first, without logs.
	Builds(ctx context.Context, app string) ([]*dk.Build, error)
	// BuildLog returns one build with its log.
	BuildLog(ctx context.Context, app string, n int) (*dk.Build, error)
}

// Sessions keeps login tokens and sessions, each under the SHA-256 (hex)
// of its secret. Unknown, used and expired ones are dk.ENOTFOUND.
type Sessions interface {
	CreateLoginToken(ctx context.Context, hash string, s *dk.Session) error
	ConsumeLoginToken(ctx context.Context, hash string, now time.Time) (*dk.Session, error)
	CreateSession(ctx context.Context, hash string, s *dk.Session) error
	Session(ctx context.Context, hash string, now time.Time) (*dk.Session, error)
	DeleteSession(ctx context.Context, hash string) error
}

// Manager is the release manager as the dashboard sees it.
type Manager interface {
	// Processes lists an app's containers with restarts and exit codes.
	Processes(ctx context.Context, app string) ([]dk.Container, error)
	Logs(ctx context.Context, app string, tail int, follow bool, w io.Writer) error
	LockHolder(app string) (holder string, since time.Time, ok bool)
}

// Containers lists every app's containers at once (for the overview).
type Containers interface {
	Containers(ctx context.Context, app string) ([]dk.Container, error)
}

// Check is one dependency /healthz reports on.
type Check struct {
	Name string
	Ping func(ctx context.Context) error
}

// Server is the dashboard. Set the fields, then serve Handler().
type Server struct {
	Store      Store
	Builds     BuildLogs
	Sessions   Sessions
	Manager    Manager
	Containers Containers
	// BaseURL is where browsers reach the dashboard, e.g.
	// http://127.0.0.1:8081; login links start with it.
	BaseURL func() string
	// AppURL renders an app's public URL.
	AppURL func(app string) string
	// CanView says whether key may see app; nil means MayDeploy.
	CanView func(key *dk.Key, app string) bool
	// Metrics is served at /metrics without a session, when set.
	Metrics http.Handler
	// Checks are what /healthz reports on.
	Checks []Check
	Logger *slog.Logger
	// Now is the clock (tests may replace it).
	Now func() time.Time
	// LoginTTL is how long a login link works (default 5 minutes);
	// SessionTTL how long a session lasts (default 12 hours).
	LoginTTL   time.Duration
	SessionTTL time.Duration

	once    sync.Once
	handler http.Handler
}

// MayDeploy is the default view policy: a key sees the apps it may deploy.
// Today admins and deploy keys alike may deploy every existing app, so
// every key sees every app; a per-app access list replaces this function.
func MayDeploy(key *dk.Key, app string) bool { return key != nil }

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pages = map[string]*template.Template{}

func init() {
	funcs := template.FuncMap{"ago": ago, "dur": dur, "bytes": humanBytes, "when": when}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html"))
	for _, name := range []string{"login", "overview", "app", "build", "error"} {
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html"))
	}
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) canView(key *dk.Key, app string) bool {
	if s.CanView != nil {
		return s.CanView(key, app)
	}
	return MayDeploy(key, app)
}

// Handler returns the dashboard's HTTP handler.
func (s *Server) Handler() http.Handler {
	s.once.Do(func() { s.handler = s.routes() })
	return s.handler
}

// CSP is the Content-Security-Policy of every response.
const CSP = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	static, _ := fs.Sub(staticFS, "static")
	r.Handle("/static/*", http.StripPrefix("/static/", http.FileServerFS(static)))
	r.Get("/healthz", s.healthz)
	if s.Metrics != nil {
		r.Handle("/metrics", s.Metrics)
	}
	r.Get("/login/{token}", s.login)
	r.Group(func(r chi.Router) {
		r.Use(s.requireSession)
		r.Get("/", s.overview)
		r.Post("/logout", s.logout)
		r.Get("/apps/{app}", s.appPage)
		r.Get("/apps/{app}/builds/{n}", s.buildPage)
		r.Get("/apps/{app}/logs/live", s.liveLogs)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		// Unknown paths look the same with or without a session.
		if _, ok := s.session(r); !ok {
			s.loginPage(w, r, http.StatusUnauthorized, "")
			return
		}
		s.errorPage(w, http.StatusNotFound, "Not found", "There is no such page.")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		s.errorPage(w, http.StatusMethodNotAllowed, "Method not allowed", "The dashboard is read-only.")
	})
	return r
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if len(r.URL.Path) < 8 || r.URL.Path[:8] != "/static/" {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// render writes a page; data is the page's view model.
func (s *Server) render(w http.ResponseWriter, status int, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages[page].ExecuteTemplate(w, "layout", data); err != nil {
		s.logger().Error("render", "page", page, "err", err)
	}
}

type errorView struct {
	view
	Title, Message string
}

func (s *Server) errorPage(w http.ResponseWriter, status int, title, msg string) {
	s.render(w, status, "error", errorView{view: view{Title: title, SignedIn: true}, Title: title, Message: msg})
}

// fail maps an error to a page once: not found is 404, anything else is
// logged in full and shown as "internal error".
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch dk.ErrorCode(err) {
	case dk.ENOTFOUND:
		s.errorPage(w, http.StatusNotFound, "Not found", dk.ErrorMessage(err))
	case dk.EINVALID:
		s.errorPage(w, http.StatusBadRequest, "Bad request", dk.ErrorMessage(err))
	default:
		if r.Context().Err() != nil {
			return
		}
		s.logger().Error("dashboard", "path", r.URL.Path, "err", err)
		s.errorPage(w, http.StatusInternalServerError, "Internal error", "internal error")
	}
}

// view is what every page's layout needs.
type view struct {
	Title    string
	SignedIn bool
	Key      string // the signed-in key's name
	Admin    bool
}
