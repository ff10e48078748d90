package web

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"chartee/access"
	"chartee/chardev"
)

// viewer is one browser's WebSocket as a tee leg. The engine writes
// console bytes to it (binary frames) and reads what the person types from
// it; the HTTP handler's goroutine reads the socket and feeds both the
// keystrokes and the control messages in.
type viewer struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	id     *chardev.Identity
	peer   string
	leg    string // the engine's name for this leg (LegNamer)
	legMu  sync.Mutex

	want   uint64 // offset the page resumes from
	resume bool   // the page holds part of the stream

	started   chan struct{} // closed by the first StreamAt
	start     uint64
	startOnce sync.Once
	ready     chan struct{} // closed once hello is sent: output may follow
	ctl       chardev.Control

	notices chan string // for the page, sent by the status pusher
	// noticesQueued and noticesSent count notices, so that Close can
	// wait for one the pusher is sending.
	noticesQueued, noticesSent atomic.Int64
	// revoked carries the reason access was withdrawn (a reload).
	revoked chan string

	keys chan []byte // typed bytes, for Read
	rest []byte

	sendMu sync.Mutex
	next   uint64 // offset of the next byte the page expects
	at     uint64 // offset of the next byte the engine gives (StreamAt)

	flowMu  sync.Mutex
	flow    *sync.Cond
	paused  bool
	stopped bool

	cols, rows int // informational (resize)
}

var (
	_ chardev.Chardev       = (*viewer)(nil)
	_ chardev.Resumer       = (*viewer)(nil)
	_ chardev.OffsetTracker = (*viewer)(nil)
	_ chardev.ControlAware  = (*viewer)(nil)
	_ chardev.Peer          = (*viewer)(nil)
	_ chardev.Identified    = (*viewer)(nil)
	_ chardev.LegNamer      = (*viewer)(nil)
	_ chardev.Noticer       = (*viewer)(nil)
	_ access.Session        = (*viewer)(nil)
)

func newViewer(conn *websocket.Conn, id *chardev.Identity, want uint64, resume bool) *viewer {
	v := &viewer{
		conn: conn, id: id, peer: id.Source, want: want, resume: resume,
		started: make(chan struct{}), ready: make(chan struct{}), keys: make(chan []byte, 16),
		notices: make(chan string, 8), revoked: make(chan string, 1),
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	v.flow = sync.NewCond(&v.flowMu)
	return v
}

// ResumeFrom implements chardev.Resumer.
func (v *viewer) ResumeFrom() (uint64, bool) { return v.want, v.resume }

// Peer is where the browser connects from.
func (v *viewer) Peer() string { return v.peer }

// Identity implements chardev.Identified: the engine names the leg after
// the user, lets it type only while its role allows, and attributes its
// input in captures and the audit trail, exactly as for SSH sessions.
func (v *viewer) Identity() *chardev.Identity { return v.id }

func (v *viewer) role() chardev.Role { return v.id.Role() }

// SetLegName implements chardev.LegNamer.
func (v *viewer) SetLegName(name string) {
	v.legMu.Lock()
	v.leg = name
	v.legMu.Unlock()
}

func (v *viewer) legName() string {
	v.legMu.Lock()
	defer v.legMu.Unlock()
	return v.leg
}

// Revoke implements access.Session: a reload took the user's access to
// this console away. The handler closes the page's connection.
func (v *viewer) Revoke(reason string) {
	select {
	case v.revoked <- reason:
	default:
	}
}

// RoleChanged implements access.Session: the engine already applies the
// new role (the identity is shared); the page is told so it can show it.
func (v *viewer) RoleChanged(old, now chardev.Role) {
	v.Notice("your role on this console changed from " + old.String() + " to " + now.String())
}

// SetControl implements chardev.ControlAware; it comes before StreamAt.
func (v *viewer) SetControl(c chardev.Control) { v.ctl = c }

// StreamAt implements chardev.OffsetTracker. The first call (the leg's
// start) releases the handler to send hello; later ones come from the
// writer, before a Write.
func (v *viewer) StreamAt(off uint64) {
	first := false
	v.startOnce.Do(func() {
		first = true
		v.start, v.at = off, off
		close(v.started)
	})
	if !first {
		v.at = off
	}
}

// sendHello tells the page where its stream starts; output waits for it.
func (v *viewer) sendHello(teeName string) error {
	lost, restarted := resumeStart(v.want, v.resume, v.start)
	h := helloMsg{T: "hello", Tee: teeName, User: v.id.User, Role: v.role().String(), Input: canType(v.role()),
		Offset: v.start, Lost: lost, Restarted: restarted}
	v.sendMu.Lock()
	defer v.sendMu.Unlock()
	v.next = v.start
	err := v.sendJSONLocked(h)
	close(v.ready)
	return err
}

func (v *viewer) sendJSON(m any) error {
	v.sendMu.Lock()
	defer v.sendMu.Unlock()
	return v.sendJSONLocked(m)
}

func (v *viewer) sendJSONLocked(m any) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return v.conn.Write(v.ctx, websocket.MessageText, b)
}

// Write sends console bytes as one binary frame, after an "at" message
// if they do not follow the last ones. It waits while the page has asked
// to pause (flow control): the leg's queue then fills, and its overflow
// policy decides, as for any slow leg.
func (v *viewer) Write(p []byte) (int, error) {
	select {
	case <-v.ready:
	case <-v.ctx.Done():
		return 0, io.ErrClosedPipe
	}
	if !v.waitFlow() {
		return 0, io.ErrClosedPipe
	}
	v.sendMu.Lock()
	defer v.sendMu.Unlock()
	if v.at != v.next {
		m := atMsg{T: "at", Offset: v.at}
		if v.at > v.next {
			m.Lost = v.at - v.next
		}
		if err := v.sendJSONLocked(m); err != nil {
			return 0, err
		}
		v.next = v.at
	}
	if err := v.conn.Write(v.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	v.next += uint64(len(p))
	v.at += uint64(len(p))
	return len(p), nil
}

// waitFlow blocks while output is paused; false once the viewer stops.
func (v *viewer) waitFlow() bool {
	v.flowMu.Lock()
	defer v.flowMu.Unlock()
	for v.paused && !v.stopped {
		v.flow.Wait()
	}
	return !v.stopped
}

func (v *viewer) setPaused(p bool) {
	v.flowMu.Lock()
	v.paused = p
	v.flow.Broadcast()
	v.flowMu.Unlock()
}

// Read returns what the person typed. Only the handler feeds keys, and
// only for a role that may type.
func (v *viewer) Read(p []byte) (int, error) {
	if len(v.rest) == 0 {
		select {
		case b := <-v.keys:
			v.rest = b
		case <-v.ctx.Done():
			return 0, io.EOF
		}
	}
	n := copy(p, v.rest)
	v.rest = v.rest[n:]
	return n, nil
}

// typed hands keystrokes to Read; false once the viewer has stopped.
func (v *viewer) typed(b []byte) bool {
	select {
	case v.keys <- b:
		return true
	case <-v.ctx.Done():
		return false
	}
}

// stop ends the viewer: Read and Write return, the socket closes.
func (v *viewer) stop() {
	v.cancel()
	v.flowMu.Lock()
	v.stopped = true
	v.flow.Broadcast()
	v.flowMu.Unlock()
}

// Close implements chardev.Chardev: the engine is done with this leg.
// Notices not sent yet go first (the last one may say why the leg is
// closed: a process upgrade, and the page reconnects by itself), then the
// close frame; only then is the viewer stopped (a cancelled read would
// drop the connection without its close frame).
func (v *viewer) Close() error {
	v.flushNotices()
	err := v.conn.Close(websocket.StatusGoingAway, "leg closed")
	v.stop()
	return err
}

// flushNotices sends the notices still queued, unless the page is gone,
// and waits (briefly) for one the status pusher is sending.
func (v *viewer) flushNotices() {
	select {
	case <-v.ready:
	default:
		return // no hello yet: the page would not show them
	}
	for {
		select {
		case text := <-v.notices:
			v.sendNotice(text)
			continue
		default:
		}
		break
	}
	deadline := time.Now().Add(noticeFlushWait)
	for v.noticesSent.Load() < v.noticesQueued.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
}

// noticeFlushWait bounds how long Close waits for a notice in flight.
const noticeFlushWait = time.Second

// sendNotice sends one queued notice (counted, sent or not).
func (v *viewer) sendNotice(text string) error {
	defer v.noticesSent.Add(1)
	return v.sendJSON(noticeMsg{T: "notice", Text: text})
}

// Notice implements chardev.Noticer: a line for the person, shown on the
// page apart from the terminal. It never blocks; the status pusher sends
// it, and a notice that does not fit is dropped.
func (v *viewer) Notice(text string) {
	select {
	case v.notices <- text:
		v.noticesQueued.Add(1)
	default:
	}
}
