package api

import (
	"net/http"
	"runtime/pprof"
	"strconv"
)

// goroutines answers GET /v1/debug/goroutines: the daemon's goroutine
// profile as text, "goroutine profile: total N" then one entry per
// distinct stack with its count (?debug=2: every goroutine's own stack,
// with wait reasons). It is how an operator (or an e2e test) sees what a
// daemon's goroutines are doing without SIGQUIT, which would kill it; it
// is served only on the control API, which is already the daemon's
// owner's.
func (s *Server) goroutines(w http.ResponseWriter, r *http.Request) error {
	debug := 1
	if v := r.URL.Query().Get("debug"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 1 && n != 2) {
			return newError(CodeBadRequest, "debug=%q: want 1 (stacks with counts) or 2 (every goroutine)", v)
		}
		debug = n
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// An error here is the client gone mid-answer: nothing to tell it.
	_ = pprof.Lookup("goroutine").WriteTo(w, debug)
	return nil
}
