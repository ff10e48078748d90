package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a Server. The zero value is usable: every zero field takes
// the default in its comment.
type Options struct {
	// Logger receives request failures and listener errors (default:
	// slog.Default()).
	Logger *slog.Logger
	// ReadHeaderTimeout bounds reading a request's headers, so a client
	// that trickles them in (slowloris) is cut off (default 5s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (default 30s).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response. Streaming endpoints apply it
	// to each chunk instead of to the whole response, so a follower that
	// stops reading is dropped but a live one is never cut (default 30s).
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections with no request (default 2m).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds request headers (default 64 KiB).
	MaxHeaderBytes int
	// MaxBodyBytes bounds request bodies; larger ones get 413 (default 1 MiB).
	MaxBodyBytes int64
	// OpTimeout bounds an attach, swap, frontend swap or reload. The
	// operation runs to completion (or to this timeout) even if the client
	// goes away, so it is never cut half-way by a dropped connection
	// (default 60s).
	OpTimeout time.Duration
	// Upgrade hands the process over to a new binary (POST /v1/upgrade);
	// nil answers unsupported.
	Upgrade Upgrader
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = 5 * time.Second
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = 64 << 10
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 60 * time.Second
	}
	return o
}

// Server serves the control API on a unix socket and, optionally, a TCP
// listener. Both share one handler; the TCP one is wrapped in bearer-token
// authentication because, unlike the socket, its reachability is not
// limited by file permissions.
type Server struct {
	d    Daemon
	opts Options
	log  *slog.Logger
	// mux is the routed API with JSON errors for unknown paths and
	// methods and for handler panics.
	mux http.Handler

	// streams is cancelled by Shutdown so that followers (events, tail -f)
	// end and http.Server.Shutdown does not wait for them forever.
	streams      context.Context
	cancelStream context.CancelFunc

	// waits numbers the legs of `ctl wait` requests.
	waits atomic.Uint64

	mu      sync.Mutex
	servers []*http.Server
	sockets []*unixSocket
	wg      sync.WaitGroup
	closed  bool
}

// NewServer returns a server for d. It listens nowhere until ServeUnix or
// ServeTCP.
func NewServer(d Daemon, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{d: d, opts: opts, log: opts.Logger}
	s.streams, s.cancelStream = context.WithCancel(context.Background())
	s.mux = s.routes()
	return s
}

// Handler is the API without authentication, as served on the unix socket.
func (s *Server) Handler() http.Handler { return s.mux }

// ServeUnix creates a unix socket at path with mode 0600 and serves the API
// on it in the background. A stale socket file (nothing listening) is
// replaced; a live one, or any other kind of file, is an error. The socket
// file is removed by Shutdown.
func (s *Server) ServeUnix(path string) error {
	b, err := ListenUnix(path)
	if err != nil {
		return err
	}
	return s.ServeBound(b)
}

// ServeTCP listens on addr (host:port; port 0 picks one) and serves the API
// in the background to clients that send "Authorization: Bearer <token>".
// It returns the bound address. An empty token is refused: an
// unauthenticated TCP control port would give anyone who can reach it the
// console. GET /healthz is the one open endpoint, so liveness probes need
// no secret; it reveals only that chartee runs.
func (s *Server) ServeTCP(addr, token string) (net.Addr, error) {
	b, err := ListenTCP(addr, token)
	if err != nil {
		return nil, err
	}
	if err := s.ServeBound(b); err != nil {
		return nil, err
	}
	return b.Addr(), nil
}

// Bound is a control listener bound ahead of serving: `chartee run` binds
// every socket before the daemon opens any device, so that a busy address
// fails the start before a capture file is created or appended to.
// Clients that connect in between wait in the listen backlog.
type Bound struct {
	ln    net.Listener
	sock  *unixSocket // nil for TCP
	name  string
	token string // "" for the unix socket
}

// ListenUnix binds the unix control socket as ServeUnix does.
func ListenUnix(path string) (*Bound, error) {
	sock, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	return &Bound{ln: sock, sock: sock, name: "unix:" + path}, nil
}

// ListenTCP binds the token-protected TCP control listener as ServeTCP
// does.
func ListenTCP(addr, token string) (*Bound, error) {
	if token == "" {
		return nil, errors.New("api: a TCP listener requires a token")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return &Bound{ln: ln, name: "tcp:" + ln.Addr().String(), token: token}, nil
}

// Addr is where b listens.
func (b *Bound) Addr() net.Addr { return b.ln.Addr() }

// Close releases a listener that will not be served (a failed start).
func (b *Bound) Close() error { return b.ln.Close() }

// ServeBound serves the API on b in the background; Shutdown stops it.
// On error b is closed.
func (s *Server) ServeBound(b *Bound) error {
	h := s.mux
	if b.token != "" {
		h = s.requireToken(b.token, s.mux)
	}
	if err := s.serve(b.ln, h, b.name, b.sock); err != nil {
		b.ln.Close()
		return err
	}
	return nil
}

// serve starts serving ln in the background and records it (and sock,
// the socket file to remove, if any) for Shutdown. Checking closed and
// recording happen under one lock, so a concurrent Shutdown either sees
// the listener or makes serve fail.
func (s *Server) serve(ln net.Listener, h http.Handler, name string, sock *unixSocket) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
		MaxHeaderBytes:    s.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("api: server is shut down")
	}
	s.servers = append(s.servers, srv)
	if sock != nil {
		s.sockets = append(s.sockets, sock)
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.log.Info("control API listening", "addr", name)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control API stopped", "addr", name, "err", err)
		}
	}()
	return nil
}

// Shutdown stops accepting, ends streams, waits for requests in progress
// until ctx ends (then drops them), and removes the socket files.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	servers := s.servers
	sockets := s.sockets
	s.servers, s.sockets = nil, nil
	s.mu.Unlock()

	s.cancelStream()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
			srv.Close()
		}
	}
	s.wg.Wait()
	for _, sock := range sockets {
		sock.Close()
	}
	return errors.Join(errs...)
}

// requireToken lets through requests carrying the bearer token, and
// /healthz. Both sides are hashed before the constant-time compare so that
// neither the token's content nor its length leaks through timing.
func (s *Server) requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		if !tokenMatches(r.Header.Get("Authorization"), want) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="chartee"`)
			s.writeError(w, r, http.StatusUnauthorized, &Error{Message: "missing or wrong bearer token", Code: CodeUnauthorized})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// tokenMatches reports whether an Authorization header carries the token
// whose SHA-256 is want, in constant time.
func tokenMatches(header string, want [sha256.Size]byte) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		got = ""
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1 && ok
}

// routes builds the API. Each endpoint is one small handler; the method is
// part of the pattern, so the mux itself tells 404 from 405.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.health)
	mux.HandleFunc("GET /v1/tees", s.query(s.listTees))
	mux.HandleFunc("GET /v1/tees/{tee}", s.query(s.getTee))
	mux.HandleFunc("POST /v1/tees/{tee}/backends", s.op(s.attach))
	mux.HandleFunc("DELETE /v1/tees/{tee}/backends/{name}", s.query(s.detach))
	mux.HandleFunc("POST /v1/tees/{tee}/backends/{name}/swap", s.op(s.swap))
	mux.HandleFunc("POST /v1/tees/{tee}/frontend/swap", s.op(s.swapFrontend))
	mux.HandleFunc("GET /v1/tees/{tee}/backends/{name}/data", s.query(s.data))
	mux.HandleFunc("GET /v1/events", s.query(s.events))
	mux.HandleFunc("POST /v1/reload", s.op(s.reload))
	mux.HandleFunc("POST /v1/upgrade", s.upgrade)
	mux.HandleFunc("POST /v1/tees/{tee}/send", s.op(s.send))
	mux.HandleFunc("POST /v1/tees/{tee}/break", s.op(s.sendBreak))
	mux.HandleFunc("POST /v1/tees/{tee}/sysrq", s.op(s.sysrq))
	mux.HandleFunc("POST /v1/tees/{tee}/wait", s.wait)
	mux.HandleFunc("GET /v1/access", s.query(s.accessInfo))
	mux.HandleFunc("GET /v1/debug/goroutines", s.query(s.goroutines))
	return s.recoverPanics(s.jsonFallback(mux))
}

// jsonFallback answers requests no pattern matches with a JSON error. The
// mux's own 404 and 405 answers are plain text; their status and Allow
// header are kept, their body replaced.
func (s *Server) jsonFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &headerRecorder{header: http.Header{}}
		h.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", rec.header.Get("Allow"))
			s.writeError(w, r, http.StatusMethodNotAllowed, &Error{
				Message: fmt.Sprintf("method %s not allowed on %s (allowed: %s)", r.Method, r.URL.Path, rec.header.Get("Allow")),
				Code:    CodeMethod,
			})
			return
		}
		s.writeError(w, r, http.StatusNotFound, &Error{
			Message: fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path),
			Code:    CodeNotFound,
		})
	})
}

// headerRecorder keeps the status and headers a handler writes and drops
// its body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *headerRecorder) Write(p []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(p), nil
}

// recoverPanics turns a handler panic into a 500 instead of a dropped
// connection, and logs the stack: a bug in one handler must not take the
// control API down with it.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("control API: handler panicked", "method", r.Method, "path", r.URL.Path,
				"panic", v, "stack", string(debug.Stack()))
			s.writeError(w, r, http.StatusInternalServerError, &Error{Message: "internal error", Code: CodeInternal})
		}()
		next.ServeHTTP(w, r)
	})
}

// writeError sends e as the JSON body with status. Server errors are
// logged at error level, client errors at debug: a typo in a ctl command
// is not the daemon's problem.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, status int, e *Error) {
	if status == 0 {
		status = statusOf(e.Code)
	}
	lvl := slog.LevelDebug
	if status >= 500 {
		lvl = slog.LevelError
	}
	s.log.Log(r.Context(), lvl, "control API request failed", "method", r.Method, "path", r.URL.Path,
		"status", status, "code", e.Code, "err", e.Message)
	s.writeJSON(w, status, e)
}

// writeJSON sends v as a JSON body.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a bug gets here (every body type marshals).
		s.log.Error("control API: encoding response", "err", err)
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal error: encoding response","code":"internal"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
