package web

import (
	"context"
	"crypto/hmac"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	sessionCookie = "chartee_session"
	loginCookie   = "chartee_login" // CSRF token of the login form
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
)

// identity is who a request comes from.
type identity struct {
	user    string
	session string // empty behind a trusted proxy
	csrf    string // token pages echo on state-changing requests
	method  string // how they proved it: "password" or "trusted-header"
}

type ctxKey struct{}

func identityOf(r *http.Request) identity {
	id, _ := r.Context().Value(ctxKey{}).(identity)
	return id
}

// authed admits only requests from a logged-in user (or, when configured,
// one named by the trusted proxy header); others go to the login page, or
// get 401 for the API and the WebSocket.
func (s *Server) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.who(r)
		if !ok {
			s.unauthorized(w, r)
			return
		}
		if r.Method == http.MethodPost && !s.csrfOK(r, id) {
			http.Error(w, "web: missing or wrong CSRF token, or cross-site request", http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	}
}

func (s *Server) who(r *http.Request) (identity, bool) {
	if hdr := s.opts.TrustedHeader; hdr != "" {
		if u := strings.TrimSpace(r.Header.Get(hdr)); u != "" {
			return identity{user: u, csrf: s.sess.csrf("user:" + u), method: "trusted-header"}, true
		}
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return identity{}, false
	}
	se, ok := s.sess.get(c.Value)
	if !ok {
		return identity{}, false
	}
	return identity{user: se.user, session: se.id, csrf: s.sess.csrf("session:" + se.id), method: "password"}, true
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/api/") || strings.HasSuffix(r.URL.Path, "/ws") || r.Method != http.MethodGet {
		http.Error(w, "web: login required", http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// csrfOK: a state-changing request must carry the identity's token (form
// field or header) and, when the browser says where it comes from, come
// from this site.
func (s *Server) csrfOK(r *http.Request, id identity) bool {
	if !sameOrigin(r) {
		return false
	}
	tok := r.Header.Get(csrfHeader)
	if tok == "" {
		tok = r.PostFormValue(csrfField)
	}
	return tok != "" && hmac.Equal([]byte(tok), []byte(id.csrf))
}

// sameOrigin reports whether the request's Origin (or, lacking it, its
// Referer) is this server; a request with neither is allowed for plain
// POSTs (the CSRF token still guards them) but not for WebSockets, which
// check originOK.
func sameOrigin(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return originOK(r)
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	}
	return true
}

// originOK: the Origin header is present and names this very server:
// scheme matching the connection, host matching the Host header.
func originOK(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return false
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return u.Scheme == scheme && strings.EqualFold(u.Host, r.Host)
}

func (s *Server) secure() bool { return s.opts.TLS != nil }

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: s.secure(), SameSite: http.SameSiteStrictMode,
	})
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.who(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	tok := randomToken()
	s.setCookie(w, loginCookie, tok, 3600)
	w.WriteHeader(status)
	s.render(w, "login.html", map[string]any{
		"CSRF": tok, "Next": safeNext(r.FormValue("next")), "Error": msg, "Trusted": s.opts.TrustedHeader,
	})
}

// login checks the form against the users' password hashes. Attempts are
// rate-limited per client address and per user name, successful or not.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || r.PostFormValue(csrfField) != c.Value || c.Value == "" {
		http.Error(w, "web: login form expired or cross-site; reload the login page", http.StatusForbidden)
		return
	}
	user, pass := strings.TrimSpace(r.PostFormValue("user")), r.PostFormValue("password")
	if ok, wait := s.loginAllowed(clientAddr(r), user); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		s.auditLogin("login-refused", user, clientAddr(r), "too many attempts")
		s.renderLogin(w, r, http.StatusTooManyRequests, "Too many attempts; wait a little and try again.")
		return
	}
	if user == "" || !s.checkPassword(user, pass) {
		s.auditLogin("login-failed", user, clientAddr(r), "wrong user name or password")
		s.renderLogin(w, r, http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	se := s.sess.create(user)
	s.setCookie(w, sessionCookie, se.id, int(s.opts.SessionMax/time.Second))
	s.setCookie(w, loginCookie, "", -1)
	s.auditLogin("login", user, clientAddr(r), "")
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// checkPassword checks against the policy's hashes (constant time, also
// for unknown users).
func (s *Server) checkPassword(user, pass string) bool {
	p := s.policy()
	return p != nil && p.CheckPassword(user, pass)
}

func (s *Server) loginAllowed(addr, user string) (bool, time.Duration) {
	okA, waitA := s.byAddr.allow(addr)
	okU, waitU := s.byUser.allow(strings.ToLower(user))
	return okA && okU, max(waitA, waitU)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	id := identityOf(r)
	if id.session != "" {
		s.sess.delete(id.session)
	}
	s.setCookie(w, sessionCookie, "", -1)
	s.auditLogin("logout", id.user, clientAddr(r), "")
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
