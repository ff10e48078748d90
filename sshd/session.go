package sshd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"chartee/access"
	"chartee/audit"
	"chartee/backends/escape"
	"chartee/chardev"
	"chartee/tee"
)

// sessionReqs tracks a session channel's requests: the terminal (pty-req,
// window-change) and how it starts (shell, exec, subsystem).
type sessionReqs struct {
	mu     sync.Mutex
	pty    bool
	term   string
	cols   uint32
	rows   uint32
	start  chan startReq
	gone   chan struct{} // closed when the channel's requests end: the channel is closed
	once   sync.Once
	closed bool
}

type startReq struct {
	kind string // shell, exec
	cmd  string
}

// serve answers the channel's requests until it closes.
func (r *sessionReqs) serve(reqs <-chan *ssh.Request) {
	for req := range reqs {
		ok := false
		switch req.Type {
		case "pty-req":
			ok = r.ptyReq(req.Payload)
		case "window-change":
			// A console has no window size to change (a serial line
			// does not know it); the size is kept for status only.
			if len(req.Payload) >= 8 {
				r.mu.Lock()
				r.cols, r.rows = binary.BigEndian.Uint32(req.Payload), binary.BigEndian.Uint32(req.Payload[4:])
				r.mu.Unlock()
			}
			ok = true
		case "env":
			ok = true // accepted and ignored: nothing runs with an environment
		case "shell", "exec":
			// Reply before the session starts, so a session that
			// ends at once (no console) does not close the channel
			// under the client's pending request.
			var p struct{ Cmd string }
			if req.Type == "exec" && ssh.Unmarshal(req.Payload, &p) != nil {
				break
			}
			if r.claim() {
				if req.WantReply {
					req.Reply(true, nil)
				}
				r.start <- startReq{kind: req.Type, cmd: p.Cmd}
				close(r.start)
				continue
			}
		case "subsystem":
			ok = false // no sftp or other subsystems: consoles only
		}
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	r.once.Do(func() { close(r.start) })
	close(r.gone)
}

// claim reports whether this is the first start request; a second shell
// or exec on the same channel is refused.
func (r *sessionReqs) claim() bool {
	first := false
	r.once.Do(func() { first = true })
	return first
}

func (r *sessionReqs) ptyReq(payload []byte) bool {
	var p struct {
		Term          string
		Cols, Rows    uint32
		Width, Height uint32
		Modes         string
	}
	if ssh.Unmarshal(payload, &p) != nil {
		return false
	}
	r.mu.Lock()
	r.pty, r.term, r.cols, r.rows = true, p.Term, p.Cols, p.Rows
	r.mu.Unlock()
	return true
}

func (r *sessionReqs) hasPty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pty
}

// session runs one session channel to its end.
func (s *Server) session(sc *ssh.ServerConn, ch ssh.Channel, reqs <-chan *ssh.Request) {
	r := &sessionReqs{start: make(chan startReq, 1), gone: make(chan struct{})}
	go r.serve(reqs)
	start, ok := <-r.start
	if !ok {
		ch.Close()
		return
	}
	user, teeName, _ := access.ParseTarget(sc.User())
	if start.kind == "exec" {
		fmt.Fprintf(ch.Stderr(), "chartee: this SSH service runs no commands (asked: %q); for a console: ssh -t %s:CONSOLE@host\r\n", start.cmd, user)
		exit(ch, 1)
		return
	}
	out := &lineWriter{ch: ch}
	in := newLineReader(ch, r.hasPty())
	if teeName == "" {
		teeName = s.menu(user, out, in)
		if teeName == "" {
			exit(ch, 0)
			return
		}
	}
	code := s.attach(sc, ch, user, teeName, out, in, r.gone)
	exit(ch, code)
}

// exit sends the exit status and closes the channel.
func exit(ch ssh.Channel, code uint32) {
	ch.SendRequest("exit-status", false, ssh.Marshal(struct{ C uint32 }{code}))
	ch.Close()
}

// attach admits the session on teeName and runs it as a leg until it ends.
func (s *Server) attach(sc *ssh.ServerConn, ch ssh.Channel, user, teeName string, out *lineWriter, in *lineReader, gone <-chan struct{}) uint32 {
	cfg := s.cfg.Load()
	id := &chardev.Identity{User: user, Service: "ssh", Source: sc.RemoteAddr().String()}
	if p := sc.Permissions; p != nil {
		id.AuthMethod, id.KeyFingerprint = p.Extensions[extAuth], p.Extensions[extFP]
	}
	t, ok := s.opts.Consoles.Tee(teeName)
	if !ok {
		// Same answer as for a console the user may not see: the names
		// of consoles are not disclosed to those without access.
		out.say(fmt.Sprintf("no console %q for %s", teeName, user))
		s.refused(id, teeName, "no such console")
		return 1
	}
	d := newSessionDev(s, ch, id, t, cfg.Escape)
	d.gone = gone
	adm, err := s.opts.Gate.Admit(id, teeName, d)
	if err != nil {
		if errors.Is(err, access.ErrNoAccess) {
			out.say(fmt.Sprintf("no console %q for %s", teeName, user))
		} else {
			out.say(err.Error())
		}
		s.refused(id, teeName, err.Error())
		return 1
	}
	defer adm.Close()
	d.pending = in.rest()
	out.say(fmt.Sprintf("%s on %s as %s; %s ? for help, %s . to detach", user, teeName, id.Role(),
		escape.KeyName(cfg.Escape), escape.KeyName(cfg.Escape)))
	s.sessions.Add(1)
	defer s.sessions.Add(-1)
	if _, err := t.Join(Backend, cfg.Leg, d); err != nil {
		out.say("cannot attach: " + err.Error())
		return 1
	}
	<-d.closed
	if reason := d.revokedReason(); reason != "" {
		return 1
	}
	return 0
}

// refused records a session that was not let on a console.
func (s *Server) refused(id *chardev.Identity, teeName, reason string) {
	s.auditRecord(audit.Record{Kind: "session-refused", Tee: teeName, User: id.User, Source: id.Source,
		Auth: id.AuthMethod, KeyFingerprint: id.KeyFingerprint, Reason: reason})
}

// menu shows the consoles user may see, with their state, and returns the
// one chosen ("" to leave).
func (s *Server) menu(user string, out *lineWriter, in *lineReader) string {
	pol := s.opts.Gate.Policy()
	var names []string
	for _, t := range s.opts.Consoles.Tees() {
		names = append(names, t.Name())
	}
	var list []access.Console
	if pol != nil {
		list = pol.Consoles(user, names)
	}
	if len(list) == 0 {
		out.say("no consoles for " + user)
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "consoles for %s:\n", user)
	for i, c := range list {
		fmt.Fprintf(&b, "  %2d) %-20s %-8s %s\n", i+1, c.Tee, c.Role, s.state(c.Tee))
	}
	out.raw(strings.ReplaceAll(b.String(), "\n", "\r\n"))
	for tries := 0; tries < 5; tries++ {
		out.raw("choose a number or name (empty to leave): ")
		line, err := in.line(out)
		if err != nil {
			return ""
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return ""
		}
		if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(list) {
			return list[n-1].Tee
		}
		for _, c := range list {
			if c.Tee == line {
				return c.Tee
			}
		}
		out.raw(fmt.Sprintf("no console %q in the list\r\n", line))
	}
	return ""
}

// state is a one-line summary of a console for the menu.
func (s *Server) state(name string) string {
	t, ok := s.opts.Consoles.Tee(name)
	if !ok {
		return "(gone)"
	}
	return stateOf(t.Stats())
}

func stateOf(st tee.Stats) string {
	up := "up"
	if !st.Frontend.Up {
		up = "down"
	}
	people := 0
	for _, l := range st.Legs {
		if l.User != "" {
			people++
		}
	}
	s := fmt.Sprintf("%s, %d attached", up, people)
	if st.WriteLock != "" {
		who := st.WriteLockUser
		if who == "" {
			who = st.WriteLock
		}
		s += ", write lock: " + who
	}
	return s
}

// lineWriter writes messages to a session before it is a leg.
type lineWriter struct{ ch ssh.Channel }

func (w *lineWriter) raw(s string) { w.ch.Write([]byte(s)) }

func (w *lineWriter) say(msg string) {
	w.raw("[chartee] " + strings.ReplaceAll(msg, "\n", "\r\n") + "\r\n")
}

// lineReader reads a line of menu input, echoing it when the client has a
// pty (its terminal is in raw mode and shows nothing itself).
type lineReader struct {
	ch   ssh.Channel
	echo bool
	buf  []byte
}

func newLineReader(ch ssh.Channel, echo bool) *lineReader { return &lineReader{ch: ch, echo: echo} }

// maxLine bounds a menu answer.
const maxLine = 256

func (r *lineReader) line(out *lineWriter) (string, error) {
	var line []byte
	for {
		for len(r.buf) > 0 {
			b := r.buf[0]
			r.buf = r.buf[1:]
			switch b {
			case '\r', '\n':
				if b == '\r' && len(r.buf) > 0 && (r.buf[0] == '\n' || r.buf[0] == 0) {
					r.buf = r.buf[1:]
				}
				if r.echo {
					out.raw("\r\n")
				}
				return string(line), nil
			case 0x03, 0x04: // ^C, ^D
				if r.echo {
					out.raw("\r\n")
				}
				return "", errors.New("cancelled")
			case 0x7f, 0x08:
				if len(line) > 0 {
					line = line[:len(line)-1]
					if r.echo {
						out.raw("\b \b")
					}
				}
			default:
				if b >= 0x20 && len(line) < maxLine {
					line = append(line, b)
					if r.echo {
						out.raw(string(b))
					}
				}
			}
		}
		p := make([]byte, 256)
		n, err := r.ch.Read(p)
		r.buf = append(r.buf, p[:n]...)
		if n == 0 && err != nil {
			return "", err
		}
	}
}

// rest is what was typed after the last line, for the console.
func (r *lineReader) rest() []byte {
	b := r.buf
	r.buf = nil
	return b
}
