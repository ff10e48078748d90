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

// Close codes the page acts on: it reconnects after anything else.
const (
	closeUnauthorized = 4001 // session gone or role lost: back to the login page
	closeNoConsole    = 4004 // console not there (any more)
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
	t, id, role, ok := s.console(w, r)
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
	v := newViewer(conn, id.user, r.RemoteAddr, role, want, resume)
	s.serveViewer(t, id, v)
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

// serveViewer attaches v to the tee, says hello, then reads the socket
// until it closes.
func (s *Server) serveViewer(t *tee.Tee, id identity, v *viewer) {
	defer v.stop()
	src, err := s.srcs.get(t, v.role)
	if err == nil && !src.offer(v) {
		err = errNoSource
	}
	if err == nil {
		err = s.waitStarted(v)
	}
	if err != nil {
		v.conn.Close(closeNoConsole, "console not available")
		return
	}
	if err := v.sendHello(t.Name()); err != nil {
		return
	}
	s.audit(id.user, t.Name(), "session start", fmt.Sprintf("web from %s, role %s, offset %d", v.peer, v.role, v.start))
	defer s.audit(id.user, t.Name(), "session end", "web "+v.peer)
	go s.pushStatus(t, v)
	s.readLoop(t, id, v)
}

func (s *Server) waitStarted(v *viewer) error {
	select {
	case <-v.started:
		return nil
	case <-v.ctx.Done(): // the engine closed it: the tee is going away
		return errNoSource
	case <-s.wsCtx.Done():
		return errNoSource
	}
}

// readLoop takes what the page sends: binary frames are keystrokes,
// text frames control messages. It also ends the viewer when the session
// is gone (logout) or the server shuts down.
func (s *Server) readLoop(t *tee.Tee, id identity, v *viewer) {
	ctx, cancel := context.WithCancel(v.ctx)
	defer cancel()
	go func() {
		select {
		case <-s.wsCtx.Done():
			v.conn.Close(websocket.StatusGoingAway, "server shutting down")
		case <-ctx.Done():
		}
	}()
	for {
		typ, b, err := v.conn.Read(ctx)
		if err != nil {
			return
		}
		if !s.stillAllowed(id, t, v) {
			v.conn.Close(closeUnauthorized, "logged out")
			return
		}
		if typ == websocket.MessageBinary {
			// Only a role that may type feeds the leg; the engine
			// would discard a viewer's bytes anyway (its leg has no
			// input right).
			if v.role.canType() && !v.typed(b) {
				return
			}
			continue
		}
		s.control(t, id, v, b)
	}
}

// stillAllowed: the session still exists (logout ends the page's
// console too).
func (s *Server) stillAllowed(id identity, t *tee.Tee, v *viewer) bool {
	if id.session == "" {
		return true
	}
	_, ok := s.sess.get(id.session)
	return ok
}

func (s *Server) control(t *tee.Tee, id identity, v *viewer, b []byte) {
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
		s.audit(id.user, t.Name(), "break", errText(opErr))
	case msgLock:
		if *m.Take {
			opErr = v.ctl.TakeWriteLock()
		} else {
			v.ctl.ReleaseWriteLock()
		}
		s.audit(id.user, t.Name(), map[bool]string{true: "lock take", false: "lock release"}[*m.Take], errText(opErr))
	}
	s.reply(v, m.T, opErr)
	v.sendJSON(statusOf(t, v))
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

func errText(err error) string {
	if err != nil {
		return "refused: " + err.Error()
	}
	return "ok"
}

// pushStatus sends the console's state whenever it changes.
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
		case <-tick.C:
		}
	}
}

func statusOf(t *tee.Tee, v *viewer) statusMsg {
	st := t.Stats()
	m := statusMsg{T: "status", FrontendUp: st.Frontend.Up, Device: st.Frontend.Device,
		LastError: st.Frontend.LastError, InputMode: st.InputMode, WriteLock: lockHolder(st),
		Attached: attachedOf(st), Offset: st.Offset}
	for _, l := range st.Legs {
		if l.Name == st.WriteLock && l.Peer == v.Peer() {
			m.YouHold = true
		}
	}
	return m
}
