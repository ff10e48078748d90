package api

import (
	"chartee/cmd/chartee/internal/daemon"
	"context"
	"io"
	"net/http"
	"time"

	"chartee/tee"
)

// queryHandler serves a request that writes its own response; an error it
// returns before writing is sent as JSON.
type queryHandler func(w http.ResponseWriter, r *http.Request) error

// opHandler runs an operation (attach, swap, frontend swap, reload) with
// the request body already read, and returns the status and body to send.
type opHandler func(ctx context.Context, r *http.Request, body []byte) (status int, v any, err error)

// query adapts a queryHandler.
func (s *Server) query(h queryHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			e := errorFor(err, false)
			s.writeError(w, r, e.Status, e)
		}
	}
}

// op adapts an opHandler. The body is read whole, bounded by MaxBodyBytes,
// before anything runs, so a bad request changes nothing. The operation
// gets its own context — bounded by OpTimeout but not cancelled when the
// client goes away, so a dropped connection never leaves a swap half-way —
// and the connection's deadlines are moved to fit it.
func (s *Server) op(h opHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := s.readBody(w, r)
		if err != nil {
			e := errorFor(err, false)
			s.writeError(w, r, e.Status, e)
			return
		}
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Time{}) // the body is in; the server resets it for the next request
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.OpTimeout + s.opts.WriteTimeout))
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opts.OpTimeout)
		defer cancel()
		status, v, err := h(ctx, r, body)
		if err != nil {
			e := errorFor(err, true)
			s.writeError(w, r, e.Status, e)
			return
		}
		s.writeJSON(w, status, v)
	}
}

// readBody reads the whole request body, at most MaxBodyBytes of it.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if e := errorFor(err, false); e.Code == CodeTooLarge {
			return nil, e
		}
		return nil, newError(CodeBadRequest, "reading request body: %s", err)
	}
	return body, nil
}

// lookupTee finds the tee named in the path.
func (s *Server) lookupTee(r *http.Request) (*tee.Tee, error) {
	name := r.PathValue("tee")
	t, ok := s.d.Tee(name)
	if !ok {
		return nil, newError(CodeNotFound, "no tee named %q", name)
	}
	return t, nil
}

// statusAfter is a tee's status after an operation on it. The tee is
// looked up again: the operation may have been raced by a reload.
func (s *Server) statusAfter(t *tee.Tee) TeeStatus {
	if cur, ok := s.d.Tee(t.Name()); ok {
		t = cur
	}
	return teeStatus(t)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, HealthStatus{Status: "ok"})
}

func (s *Server) listTees(w http.ResponseWriter, r *http.Request) error {
	tees := s.d.Tees()
	list := TeeList{Tees: make([]TeeStatus, 0, len(tees))}
	for _, t := range tees {
		list.Tees = append(list.Tees, teeStatus(t))
	}
	s.writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getTee(w http.ResponseWriter, r *http.Request) error {
	t, err := s.lookupTee(r)
	if err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, teeStatus(t))
	return nil
}

func (s *Server) detach(w http.ResponseWriter, r *http.Request) error {
	t, err := s.lookupTee(r)
	if err != nil {
		return err
	}
	if err := s.d.Detach(t.Name(), r.PathValue("name")); err != nil {
		return err
	}
	s.writeJSON(w, http.StatusOK, s.statusAfter(t))
	return nil
}

func (s *Server) attach(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	t, err := s.lookupTee(r)
	if err != nil {
		return 0, nil, err
	}
	b, err := decodeAttach(body)
	if err != nil {
		return 0, nil, err
	}
	if err := s.d.Attach(ctx, t.Name(), b); err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s.statusAfter(t), nil
}

func (s *Server) swap(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	t, err := s.lookupTee(r)
	if err != nil {
		return 0, nil, err
	}
	b, opts, err := decodeSwap(body, r.PathValue("name"))
	if err != nil {
		return 0, nil, err
	}
	rep, err := s.d.Swap(ctx, t.Name(), b.Name, b, opts)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

func (s *Server) swapFrontend(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	t, err := s.lookupTee(r)
	if err != nil {
		return 0, nil, err
	}
	d, err := decodeFrontendSwap(body)
	if err != nil {
		return 0, nil, err
	}
	rep, err := s.d.SwapFrontend(ctx, t.Name(), d)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rep, nil
}

// reload re-reads the config file; a request body, if any, is ignored.
func (s *Server) reload(ctx context.Context, r *http.Request, _ []byte) (int, any, error) {
	rep, err := s.d.Reload(ctx)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, reloadReport(rep), nil
}

func (s *Server) accessInfo(w http.ResponseWriter, r *http.Request) error {
	ar, ok := s.d.(AccessReporter)
	if !ok {
		s.writeJSON(w, http.StatusOK, daemon.AccessInfo{})
		return nil
	}
	s.writeJSON(w, http.StatusOK, ar.AccessInfo())
	return nil
}
