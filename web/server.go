package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"chartee/access"
	"chartee/audit"
	"chartee/chardev"
	"chartee/tee"
)

//go:embed static templates
var content embed.FS

// Consoles is what the service needs from the daemon: the running tees.
type Consoles interface {
	Tees() []*tee.Tee
	Tee(name string) (*tee.Tee, bool)
}

// Options configure a Server.
type Options struct {
	Consoles Consoles
	// Gate holds the users, their roles per console and the live
	// sessions (package access): passwords are checked against its
	// policy, and every viewer is admitted through it.
	Gate *access.Gate
	// Audit receives login successes and failures; sessions, input,
	// breaks and the write lock reach the audit trail through the tee's
	// events like SSH sessions'. Nil records nothing.
	Audit  func(audit.Record)
	Logger *slog.Logger
	// TLS, when set, is used by Serve; cookies are then Secure.
	TLS *tls.Config
	// TrustedHeader names a request header set by an authenticating
	// reverse proxy (X-Remote-User): its value is taken as the user, with
	// no login. Empty (the default) trusts no header.
	TrustedHeader string
	// Leg is the base of every viewer leg's options (queue, overflow,
	// replay for a first connection); input and control follow the role.
	Leg tee.LegOptions
	// SessionIdle and SessionMax bound a login (0: 12h idle, 7 days).
	SessionIdle, SessionMax time.Duration
	// LoginBurst attempts per client address and per user name, then
	// one every LoginInterval (0: 5 and 10s).
	LoginBurst    int
	LoginInterval time.Duration
}

// Server is the browser console service. The zero value is not usable;
// create it with New.
type Server struct {
	opts     Options
	log      *slog.Logger
	sess     *sessions
	byAddr   *limiter
	byUser   *limiter
	pages    *template.Template
	mux      *http.ServeMux
	static   http.Handler
	viewers  sync.WaitGroup
	mu       sync.Mutex
	closed   bool
	cancelWS context.CancelFunc
	wsCtx    context.Context
	httpSrv  *http.Server
}

// New builds a Server; Serve runs it on a listener.
func New(opts Options) (*Server, error) {
	if opts.Consoles == nil || opts.Gate == nil {
		return nil, errors.New("web: consoles and an access gate are required")
	}
	opts = opts.withDefaults()
	pages, err := template.New("").Funcs(template.FuncMap{"join": strings.Join}).ParseFS(content, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	static, _ := fs.Sub(content, "static")
	s := &Server{
		opts: opts, log: opts.Logger, pages: pages,
		sess:   newSessions(opts.SessionIdle, opts.SessionMax),
		byAddr: newLimiter(opts.LoginBurst, opts.LoginInterval),
		byUser: newLimiter(opts.LoginBurst, opts.LoginInterval),
		static: http.StripPrefix("/static/", http.FileServerFS(static)),
	}
	s.wsCtx, s.cancelWS = context.WithCancel(context.Background())
	s.routes()
	return s, nil
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = 12 * time.Hour
	}
	if o.SessionMax <= 0 {
		o.SessionMax = 7 * 24 * time.Hour
	}
	if o.LoginBurst <= 0 {
		o.LoginBurst = 5
	}
	if o.LoginInterval <= 0 {
		o.LoginInterval = 10 * time.Second
	}
	if o.Leg.Replay == 0 {
		o.Leg.Replay = 1 << 20 // bounded by the tee's scrollback
	}
	return o
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.Handle("GET /static/", s.static)
	m.HandleFunc("GET /login", s.loginPage)
	m.HandleFunc("POST /login", s.login)
	m.HandleFunc("POST /logout", s.authed(s.logout))
	m.HandleFunc("GET /{$}", s.authed(s.index))
	m.HandleFunc("GET /api/consoles", s.authed(s.consoleList))
	m.HandleFunc("GET /api/consoles/watch", s.authed(s.consoleWatch))
	m.HandleFunc("GET /console/{tee}", s.authed(s.consolePage))
	m.HandleFunc("GET /console/{tee}/ws", s.authed(s.websocket))
	m.HandleFunc("GET /console/{tee}/scrollback", s.authed(s.scrollback))
	s.mux = m
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send
	// "Origin: null" on form posts, and the CSRF check needs the origin.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	// xterm.js sets element styles from script, hence style-src inline.
	h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	if s.opts.TLS != nil {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

// Serve answers on ln (with TLS when Options.TLS is set) until Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
	s.httpSrv = hs
	s.mu.Unlock()
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops serving: viewer legs are detached from their tees and
// their WebSockets closed, then open requests get until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	hs := s.httpSrv
	s.mu.Unlock()
	s.cancelWS()
	// Every browser leg goes; a tee without any has no "web" backend.
	for _, t := range s.opts.Consoles.Tees() {
		t.Detach(BackendName)
	}
	var err error
	if hs != nil {
		err = hs.Shutdown(ctx)
	}
	done := make(chan struct{})
	go func() { s.viewers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return err
}

// auditLogin records a login attempt (no tee is involved, so it does not
// go through a tee's events) and logs it.
func (s *Server) auditLogin(kind, user, source, reason string) {
	if s.opts.Audit != nil {
		s.opts.Audit(audit.Record{Kind: kind, User: user, Source: source, Auth: "password", Reason: reason})
	}
	s.log.Info("web "+kind, "user", user, "source", source, "reason", reason)
}

// policy is the access policy in force.
func (s *Server) policy() *access.Policy { return s.opts.Gate.Policy() }

// role is user's role on console under the policy in force.
func (s *Server) role(user, console string) chardev.Role {
	p := s.policy()
	if p == nil {
		return chardev.RoleNone
	}
	return p.Role(user, console)
}
