package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dkhq/dk"
	"github.com/go-chi/chi/v5"
)

// CookieName is the session cookie.
const CookieName = "dk_session"

// Default lifetimes.
const (
	DefaultLoginTTL   = 5 * time.Minute
	DefaultSessionTTL = 12 * time.Hour
)

func (s *Server) loginTTL() time.Duration {
	if s.LoginTTL > 0 {
		return s.LoginTTL
	}
	return DefaultLoginTTL
}

func (s *Server) sessionTTL() time.Duration {
	if s.SessionTTL > 0 {
		return s.SessionTTL
	}
	return DefaultSessionTTL
}

// secret returns a new random secret (256 bits, URL-safe) and its hash.
func secret() (string, string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, hash(tok), nil
}

func hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// LoginURL makes a one-time login link for key (ssh dk dashboard:url). The
// store keeps only the link's hash; the link works once, within LoginTTL.
func (s *Server) LoginURL(ctx context.Context, key *dk.Key) (string, error) {
	if key == nil {
		return "", dk.Errorf(dk.EFORBIDDEN, "no key")
	}
	tok, h, err := secret()
	if err != nil {
		return "", err
	}
	now := s.now()
	sess := &dk.Session{Key: *key, CreatedAt: now.UTC(), Expires: now.Add(s.loginTTL()).UTC()}
	if err := s.Sessions.CreateLoginToken(ctx, h, sess); err != nil {
		return "", err
	}
	base := "http://127.0.0.1:8081"
	if s.BaseURL != nil {
		base = s.BaseURL()
	}
	return strings.TrimSuffix(base, "/") + "/login/" + tok, nil
}

type sessionKey struct{}

// session returns the request's valid session. A session whose stored key
// was removed since (keys:remove) is over.
func (s *Server) session(r *http.Request) (*dk.Session, bool) {
	if sess, ok := r.Context().Value(sessionKey{}).(*dk.Session); ok {
		return sess, true
	}
	c, err := r.Cookie(CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return nil, false
	}
	sess, err := s.Sessions.Session(r.Context(), hash(c.Value), s.now())
	if err != nil {
		if dk.ErrorCode(err) != dk.ENOTFOUND {
			s.logger().Error("dashboard session", "err", err)
		}
		return nil, false
	}
	if sess.Key.PublicKey != "" { // a stored key (--admin-key keys are not stored)
		k, err := s.Store.KeyByFingerprint(r.Context(), sess.Key.Fingerprint)
		if err != nil {
			if dk.ErrorCode(err) == dk.ENOTFOUND {
				_ = s.Sessions.DeleteSession(r.Context(), hash(c.Value))
			}
			return nil, false
		}
		sess.Key.Admin = k.Admin
	}
	return sess, true
}

func (s *Server) requireSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.session(r)
		if !ok {
			s.loginPage(w, r, http.StatusUnauthorized, "")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

func viewFor(r *http.Request, title string) view {
	sess, _ := r.Context().Value(sessionKey{}).(*dk.Session)
	v := view{Title: title}
	if sess != nil {
		v.SignedIn, v.Key, v.Admin = true, sess.Key.Name, sess.Key.Admin
	}
	return v
}

func keyOf(r *http.Request) *dk.Key {
	sess, _ := r.Context().Value(sessionKey{}).(*dk.Session)
	if sess == nil {
		return nil
	}
	return &sess.Key
}

type loginView struct {
	view
	Message string
	Welcome bool
}

// loginPage is all a request without a session gets.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.render(w, status, "login", loginView{view: view{Title: "Sign in"}, Message: msg})
}

// login consumes a one-time link and starts a session. It is the one GET
// that changes state: the link is what `ssh dk dashboard:url` prints.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	tok := chi.URLParam(r, "token")
	sess, err := s.Sessions.ConsumeLoginToken(r.Context(), hash(tok), s.now())
	if err != nil {
		if dk.ErrorCode(err) != dk.ENOTFOUND {
			s.logger().Error("dashboard login", "err", err)
		}
		s.loginPage(w, r, http.StatusUnauthorized, "This login link is unknown, already used or expired. Links work once, for "+
			dur(s.loginTTL())+". Get a new one: ssh dk dashboard:url")
		return
	}
	id, h, err := secret()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	now := s.now()
	sess.CreatedAt, sess.Expires = now.UTC(), now.Add(s.sessionTTL()).UTC()
	if err := s.Sessions.CreateSession(r.Context(), h, sess); err != nil {
		s.fail(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", MaxAge: int(s.sessionTTL().Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	s.logger().Info("dashboard login", "key", sess.Key.Name)
	// A page that moves on by itself rather than a redirect: a redirect
	// chain started from another site (a chat, a mail) would not carry the
	// SameSite=Strict cookie to the overview.
	s.render(w, http.StatusOK, "login", loginView{view: view{Title: "Signed in", SignedIn: true, Key: sess.Key.Name}, Welcome: true})
}

// logout ends the session (POST with the session cookie, same origin).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if u, err := url.Parse(o); err != nil || u.Host != r.Host {
			s.errorPage(w, http.StatusForbidden, "Forbidden", "Cross-site request refused.")
			return
		}
	}
	if c, err := r.Cookie(CookieName); err == nil {
		if err := s.Sessions.DeleteSession(r.Context(), hash(c.Value)); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	s.loginPage(w, r, http.StatusOK, "Signed out.")
}
