package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"chartee/chardev"
	"chartee/tee"
)

// BackendName is the tee service backend every browser leg joins; legs
// are named "web:<user>#N" like SSH's "ssh:<user>#N".
const BackendName = "web"

// Close codes the page acts on: it reconnects after anything else.
const (
	closeUnauthorized = 4001 // logged out: back to the login page
	closeRevoked      = 4003 // access withdrawn or refused: stop
	closeNoConsole    = 4004 // console not there (any more): stop
)

// breakDuration is how long a break from the page lasts.
const breakDuration = 250 * time.Millisecond

// websocket upgrades a console page's connection after checking the
// Origin (it must be this server: no other site's page may drive a
// console with the user's cookie) and the session (authed), and makes it
// a leg of the tee. ?from=N resumes the stream at offset N.
func (s *Server) websocket(w http.ResponseWriter, r *http.Request) {
	if !originOK(r) {
		http.Error(w, "web: WebSocket from another origin refused", http.StatusForbidden)
		return
	}
	t, id, _, ok := s.console(w, r)
	if !ok {
		return
	}
	want, resume, err := parseFrom(r.URL.Query().Get("from"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "web: shutting down", http.StatusServiceUnavailable)
		return
	}
	s.viewers.Add(1)
	s.mu.Unlock()
	defer s.viewers.Done()
	// Origin was checked above, more strictly than Accept would.
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	conn.SetReadLimit(64 << 10)
	ident := &chardev.Identity{User: id.user, Service: "web", Source: r.RemoteAddr, AuthMethod: id.method}
	s.serveViewer(t, id, newViewer(conn, ident, want, resume))
}

func parseFrom(q string) (uint64, bool, error) {
	if q == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("web: from=%q: want a stream offset", q)
	}
	return n, true, nil
}

// serveViewer admits v through the access gate (session limits, role),
// joins it to the tee, says hello, then reads the socket until it closes.
func (s *Server) serveViewer(t *tee.Tee, id identity, v *viewer) {
	defer v.stop()
	adm, err := s.opts.Gate.Admit(v.id, t.Name(), v)
	if err != nil {
		v.conn.Close(closeRevoked, truncReason(err.Error()))
		return
	}
	defer adm.Close()
	opts := s.opts.Leg
	opts.Input = true // the identity's role decides, live
	opts.Control = v.role() >= chardev.RoleAdmin
	if _, err := t.Join(BackendName, opts, v); err != nil {
		v.conn.Close(closeNoConsole, "console not available")
		return
	}
	if err := s.waitStarted(v); err != nil {
		return
	}
	if err := v.sendHello(t.Name()); err != nil {
		return
	}
	go s.pushStatus(t, v)
	s.readLoop(t, id, v)
}

// truncReason fits a close reason in a control frame.
func truncReason(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

func (s *Server) waitStarted(v *viewer) error {
	select {
	case <-v.started:
		return nil
	case <-v.ctx.Done(): // the engine closed it: the tee is going away
		return errors.New("web: closed before start")
	case <-s.wsCtx.Done():
		return errors.New("web: shutting down")
	}
}

// readLoop takes what the page sends: binary frames are keystrokes,
// text frames control messages. It also ends the viewer when the session
// is gone (logout), access is revoked, or the server shuts down.
func (s *Server) readLoop(t *tee.Tee, id identity, v *viewer) {
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	go func() {
		select {
		case <-s.wsCtx.Done():
			v.conn.Close(websocket.StatusGoingAway, "server shutting down")
		case reason := <-v.revoked:
			v.conn.Close(closeRevoked, truncReason(reason))
		case <-ctx.Done():
		}
	}()
	for {
		typ, b, err := v.conn.Read(ctx)
		if err != nil {
			return
		}
		if !s.stillLoggedIn(id) {
			v.conn.Close(closeUnauthorized, "logged out")
			return
		}
		if typ == websocket.MessageBinary {
			// The engine discards a viewer's bytes (its identity's
			// role); not handing them over at all saves the trip.
			if canType(v.role()) && !v.typed(b) {
				return
			}
			continue
		}
		s.control(t, v, b)
	}
}

// stillLoggedIn: the session still exists (logout ends the page's
// console too).
func (s *Server) stillLoggedIn(id identity) bool {
	if id.session == "" {
		return true
	}
	_, ok := s.sess.get(id.session)
	return ok
}

func (s *Server) control(t *tee.Tee, v *viewer, b []byte) {
	m, err := parseClientMsg(b)
	if err != nil {
		v.sendJSON(replyMsg{T: "error", Op: "parse", Error: err.Error()})
		return
	}
	var opErr error
	switch m.T {
	case msgResize:
		v.cols, v.rows = m.Cols, m.Rows
		return
	case msgFlow:
		v.setPaused(*m.Pause)
		return
	case msgStatus:
		v.sendJSON(statusOf(t, v))
		return
	case msgBreak:
		opErr = v.ctl.Break(breakDuration)
		if opErr == nil {
			t.Emit(v.event(tee.EventAdmin, "break"))
		}
	case msgLock:
		opErr = s.lock(v, *m.Take)
	}
	s.reply(v, m.T, opErr)
	v.sendJSON(statusOf(t, v))
}

// lock takes or releases the write lock; an admin takes it from whoever
// holds it (the engine checks the role and reports the steal).
func (s *Server) lock(v *viewer, take bool) error {
	if !take {
		v.ctl.ReleaseWriteLock()
		return nil
	}
	err := v.ctl.TakeWriteLock()
	if errors.Is(err, chardev.ErrNotPermitted) && v.role() >= chardev.RoleAdmin {
		if ls, ok := v.ctl.(chardev.LockStealer); ok {
			_, _, err = ls.StealWriteLock()
		}
	}
	return err
}

// event is an event about this viewer's leg, naming its person.
func (v *viewer) event(kind tee.EventKind, reason string) tee.Event {
	return tee.Event{Kind: kind, Backend: BackendName, Leg: v.legName(), User: v.id.User, Role: v.role().String(),
		Source: v.id.Source, Auth: v.id.AuthMethod, Reason: reason}
}

func (s *Server) reply(v *viewer, op string, err error) {
	if err != nil {
		msg := err.Error()
		if errors.Is(err, chardev.ErrNotPermitted) {
			msg = "not permitted: " + msg
		}
		v.sendJSON(replyMsg{T: "error", Op: op, Error: msg})
		return
	}
	v.sendJSON(replyMsg{T: "ok", Op: op})
}

// pushStatus sends the console's state whenever it changes, and the
// notices the engine gives the viewer.
func (s *Server) pushStatus(t *tee.Tee, v *viewer) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last statusMsg
	for first := true; ; first = false {
		cur := statusOf(t, v)
		if first || !reflect.DeepEqual(cur, last) {
			if v.sendJSON(cur) != nil {
				return
			}
			last = cur
		}
		select {
		case <-v.ctx.Done():
			return
		case text := <-v.notices:
			if v.sendNotice(text) != nil {
				return
			}
		case <-tick.C:
		}
	}
}

func statusOf(t *tee.Tee, v *viewer) statusMsg {
	st := t.Stats()
	r := v.role()
	return statusMsg{T: "status", FrontendUp: st.Frontend.Up, Device: st.Frontend.Device,
		LastError: st.Frontend.LastError, InputMode: st.InputMode, WriteLock: lockHolder(st),
		YouHold: st.WriteLock != "" && st.WriteLock == v.legName(), Attached: attachedOf(st), Offset: st.Offset,
		Role: r.String(), Input: canType(r)}
}
