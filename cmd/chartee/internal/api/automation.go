package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"chartee/chardev"
	"chartee/tee"
	"chartee/watch"
)

// SendRequest is the body of POST /v1/tees/{tee}/send. Text is typed with
// escapes (\r \n \t \e \0 \\ \xHH) interpreted; Data (base64 in JSON) is
// typed as is, after Text. Line appends the tee's line ending. Force types
// even while a leg holds the exclusive write lock.
type SendRequest struct {
	Text  string `json:"text,omitempty"`
	Data  []byte `json:"data,omitempty"`
	Line  bool   `json:"line,omitempty"`
	Force bool   `json:"force,omitempty"`
}

// SendResult is the answer: bytes written to the frontend, and the output
// offset to wait from for the console's answer (`ctl wait --from`).
type SendResult = tee.SendResult

// BreakRequest is the body of POST /v1/tees/{tee}/break.
type BreakRequest struct {
	// Duration of the break, like "250ms" (default 250ms; at most 5s).
	Duration string `json:"duration,omitempty"`
}

// BreakResult says what was sent.
type BreakResult struct {
	Duration time.Duration `json:"duration_ns"`
}

// SysrqRequest is the body of POST /v1/tees/{tee}/sysrq: a break, then
// Key within the kernel's window (Linux waits 5s after a break).
type SysrqRequest struct {
	Key   string `json:"key"`
	Force bool   `json:"force,omitempty"`
}

// SysrqResult is the answer to a sysrq.
type SysrqResult struct {
	Key    string `json:"key"`
	Offset uint64 `json:"offset"`
}

// WaitRequest is the body of POST /v1/tees/{tee}/wait.
type WaitRequest struct {
	Pattern   string `json:"pattern"`
	Timeout   string `json:"timeout,omitempty"` // default 60s, at most 24h
	From      string `json:"from,omitempty"`    // now (default), start, or a stream offset
	StripANSI bool   `json:"strip_ansi,omitempty"`
}

// WaitResult is the answer: the match, or Matched false on timeout with
// the last lines seen.
type WaitResult struct {
	Matched   bool     `json:"matched"`
	Match     string   `json:"match,omitempty"`
	Offset    uint64   `json:"offset"`
	End       uint64   `json:"end"`
	Line      string   `json:"line,omitempty"`
	Start     uint64   `json:"start_offset"`
	LastLines []string `json:"last_lines,omitempty"`
}

// LineEnder is implemented by a Daemon that knows each tee's configured
// line ending (what `send --line` appends); without it "\r" is used.
type LineEnder interface {
	LineEnding(teeName string) []byte
}

const (
	defaultBreak   = 250 * time.Millisecond
	maxBreak       = 5 * time.Second
	defaultWait    = 60 * time.Second
	maxWait        = 24 * time.Hour
	maxSysrqKeyLen = 1
)

func decodeBody(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return newError(CodeBadRequest, "request body: %s", err)
	}
	return nil
}

// send serves POST /v1/tees/{tee}/send.
func (s *Server) send(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	t, err := s.lookupTee(r)
	if err != nil {
		return 0, nil, err
	}
	var req SendRequest
	if err := decodeBody(body, &req); err != nil {
		return 0, nil, err
	}
	p, err := watch.ParseEscapes(req.Text)
	if err != nil {
		return 0, nil, newError(CodeBadRequest, "text: %s", err)
	}
	p = append(p, req.Data...)
	if req.Line {
		p = append(p, s.lineEnding(t.Name())...)
	}
	if len(p) == 0 {
		return 0, nil, newError(CodeBadRequest, "nothing to send: give text, data or line")
	}
	res, err := t.Send(ctx, "ctl send", p, req.Force)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, res, nil
}

func (s *Server) lineEnding(teeName string) []byte {
	if le, ok := s.d.(LineEnder); ok {
		if b := le.LineEnding(teeName); len(b) > 0 {
			return b
		}
	}
	return []byte("\r")
}

// sendBreak serves POST /v1/tees/{tee}/break.
func (s *Server) sendBreak(_ context.Context, r *http.Request, body []byte) (int, any, error) {
	t, err := s.lookupTee(r)
	if err != nil {
		return 0, nil, err
	}
	var req BreakRequest
	if err := decodeBody(body, &req); err != nil {
		return 0, nil, err
	}
	d := defaultBreak
	if req.Duration != "" {
		d, err = time.ParseDuration(req.Duration)
		if err != nil || d <= 0 || d > maxBreak {
			return 0, nil, newError(CodeBadRequest, "duration %q: want a duration from 1ms to %s, like 250ms", req.Duration, maxBreak)
		}
	}
	if err := breakOn(t, d); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, BreakResult{Duration: d}, nil
}

// breakOn sends a break on t's frontend, explaining a frontend that
// cannot send one.
func breakOn(t *tee.Tee, d time.Duration) error {
	err := t.SendBreak(d)
	if err != nil && chardev.IsUnsupported(err) {
		return newError(CodeUnsupported, "tee %s: its frontend (%s) cannot send a break: only a serial port, or a tcp-connect frontend with protocol telnet (IAC BREAK) or rfc2217 (SET-CONTROL break on/off), can",
			t.Name(), t.Stats().Frontend.Device)
	}
	return err
}

// sysrq serves POST /v1/tees/{tee}/sysrq: a break, then the key.
func (s *Server) sysrq(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	t, err := s.lookupTee(r)
	if err != nil {
		return 0, nil, err
	}
	var req SysrqRequest
	if err := decodeBody(body, &req); err != nil {
		return 0, nil, err
	}
	if len(req.Key) != maxSysrqKeyLen || req.Key[0] <= ' ' || req.Key[0] >= 0x7f {
		return 0, nil, newError(CodeBadRequest, "key %q: want one printable character (h for help, b to reboot, c to crash...)", req.Key)
	}
	if err := breakOn(t, defaultBreak); err != nil {
		return 0, nil, err
	}
	res, err := t.Send(ctx, "ctl sysrq", []byte(req.Key), req.Force)
	if err != nil {
		return 0, nil, fmt.Errorf("sysrq: break sent, key not: %w", err)
	}
	return http.StatusOK, SysrqResult{Key: req.Key, Offset: res.Offset}, nil
}

// wait serves POST /v1/tees/{tee}/wait. It runs as long as the wait asks
// (not the API's operation timeout) and ends early if the client leaves.
func (s *Server) wait(w http.ResponseWriter, r *http.Request) {
	if err := s.waitErr(w, r); err != nil {
		e := errorFor(err, false)
		s.writeError(w, r, e.Status, e)
	}
}

func (s *Server) waitErr(w http.ResponseWriter, r *http.Request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	t, err := s.lookupTee(r)
	if err != nil {
		return err
	}
	var req WaitRequest
	if err := decodeBody(body, &req); err != nil {
		return err
	}
	waiter, timeout, err := newWaiter(req)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(timeout + s.opts.WriteTimeout))
	ctx, cancel := s.streamContext(r)
	defer cancel()
	name := fmt.Sprintf("@wait-%d", s.waits.Add(1))
	if err := t.Attach(ctx, name, tee.LegOptions{Queue: 1 << 20}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return waiter, nil })); err != nil {
		return err
	}
	defer t.Detach(name)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-waiter.Found():
	case <-timer.C:
	case <-ctx.Done():
		return newError(CodeClosed, "wait: client gone or server shutting down")
	}
	res := WaitResult{Start: waiter.Start()}
	if m := waiter.Match(); m != nil {
		res.Matched, res.Match, res.Offset, res.End, res.Line = true, string(m.Text), m.Offset, m.End, string(m.Line)
	} else {
		res.LastLines = waiter.LastLines()
	}
	s.writeJSON(w, http.StatusOK, res)
	return nil
}

// newWaiter checks a wait request and builds its waiter.
func newWaiter(req WaitRequest) (*watch.Waiter, time.Duration, error) {
	re, err := watch.CompilePattern(req.Pattern)
	if err != nil {
		return nil, 0, newError(CodeBadRequest, "%s", err)
	}
	timeout := defaultWait
	if req.Timeout != "" {
		timeout, err = time.ParseDuration(req.Timeout)
		if err != nil || timeout <= 0 || timeout > maxWait {
			return nil, 0, newError(CodeBadRequest, "timeout %q: want a duration up to %s, like 60s", req.Timeout, maxWait)
		}
	}
	from, resume, err := ParseFrom(req.From)
	if err != nil {
		return nil, 0, newError(CodeBadRequest, "%s", err)
	}
	p := watch.Pattern{Name: "wait", Re: re, StripANSI: req.StripANSI}
	return watch.NewWaiter(p, from, resume), timeout, nil
}

// ParseFrom parses a wait's --from: "now" (or empty), "start" (as far
// back as the scrollback reaches) or a stream offset.
func ParseFrom(s string) (from uint64, resume bool, err error) {
	switch s {
	case "", "now":
		return 0, false, nil
	case "start":
		return 0, true, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("from %q: want now, start or a stream offset (a number)", s)
	}
	return n, true, nil
}
