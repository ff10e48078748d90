package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"chartee/access"
	"chartee/chardev"
	"chartee/tee"
)

var tlsState tls.ConnectionState

func TestWebSocketOrigin(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	c := e.login("alice")
	for _, hdr := range []http.Header{{}, {"Origin": {"http://evil.example"}}, {"Origin": {"null"}}} {
		_, resp, err := e.dialWS(c, "/console/t1/ws", hdr)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %v: accepted or not 403 (%v)", hdr, err)
		}
	}
	w := e.open(c, streamPos{})
	w.close()
}

func TestConsoleRoles(t *testing.T) {
	e := newEnv(t, tee.Options{Input: tee.Exclusive}, Options{})
	e.emit([]byte("before\r\n"))
	op := e.open(e.login("alice"), streamPos{})
	view := e.open(e.login("bob"), streamPos{})
	if op.hi.Role != "operate" || !op.hi.Input || view.hi.Role != "view" || view.hi.Input {
		t.Fatalf("hello: %+v / %+v", op.hi, view.hi)
	}
	// Both see the replay, then the same live output.
	e.emit([]byte("live\r\n"))
	want := []byte("before\r\nlive\r\n")
	op.waitData(len(want))
	view.waitData(len(want))
	if !bytes.Equal(op.data, want) || !bytes.Equal(view.data, want) {
		t.Fatalf("pages got %q and %q, want %q", op.data, view.data, want)
	}
	// The viewer types: nothing reaches the device; its break and lock
	// are refused by the engine.
	view.typeKeys("rm -rf /\r")
	view.send(map[string]any{"t": "break"})
	if m := view.waitCtl("error", "break"); !strings.Contains(m["error"].(string), "not permitted") {
		t.Fatalf("viewer break: %v", m)
	}
	view.send(map[string]any{"t": "lock", "take": true})
	view.waitCtl("error", "lock")
	// The operator types, takes the lock, breaks.
	op.typeKeys("ls\r")
	eventually(t, "keys at the device", func() bool { return e.front.WrittenLen() >= 3 })
	op.send(map[string]any{"t": "lock", "take": true})
	op.waitCtl("ok", "lock")
	st := op.waitCtl("status", "")
	for st["you_hold_lock"] != true {
		st = op.waitCtl("status", "")
	}
	if !strings.HasPrefix(st["write_lock"].(string), "alice ") {
		t.Fatalf("lock holder %v", st["write_lock"])
	}
	op.send(map[string]any{"t": "break"})
	op.waitCtl("ok", "break")
	if e.front.Breaks() != 1 {
		t.Fatalf("device saw %d breaks, want 1", e.front.Breaks())
	}
	if got := e.front.Written(); string(got) != "ls\r" {
		t.Fatalf("device got %q, want only the operator's keys", got)
	}
	var viewerLeg tee.LegStats
	for _, l := range e.tee.Stats().Legs {
		if l.User == "bob" {
			viewerLeg = l
		}
	}
	if viewerLeg.BytesIn != 0 {
		t.Fatalf("viewer leg put %d bytes in", viewerLeg.BytesIn)
	}
	op.close()
	view.close()
	eventually(t, "session ends audited", func() bool {
		return e.audited(`"kind":"detach"`, `"user":"alice"`) && e.audited(`"kind":"detach"`, `"user":"bob"`)
	})
	for _, rec := range [][]string{
		{`"kind":"attach"`, `"leg":"web:alice#1"`, `"user":"alice"`, `"role":"operate"`, `"auth_method":"password"`},
		{`"kind":"attach"`, `"leg":"web:bob#2"`, `"user":"bob"`, `"role":"view"`},
		{`"kind":"input"`, `"user":"alice"`, `"data":"ls\r"`},
		{`"kind":"admin"`, `"user":"alice"`, `"reason":"break"`},
		{`"kind":"write-lock"`, `"user":"alice"`},
	} {
		if !e.audited(rec...) {
			t.Errorf("no audit record with %v in:\n%s", rec, e.audit)
		}
	}
	if e.audited(`"kind":"input"`, `"user":"bob"`) {
		t.Error("the viewer's keys are in the audit trail as input")
	}
}

func TestConsoleNotVisible(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	c := e.login("carol")
	for _, p := range []string{"/console/t1", "/console/t1/scrollback", "/console/nope"} {
		if r, _ := e.get(c, p); r.StatusCode != http.StatusNotFound {
			t.Errorf("carol GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	if _, resp, err := e.dialWS(c, "/console/t1/ws", nil); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("carol's WebSocket: %v", err)
	}
	if _, body := e.get(c, "/api/consoles"); strings.TrimSpace(body) != "[]" {
		t.Errorf("carol's console list: %s", body)
	}
}

func TestScrollbackDownload(t *testing.T) {
	e := newEnv(t, tee.Options{Scrollback: 100}, Options{})
	data := bytes.Repeat([]byte("0123456789"), 30)
	e.emit(data)
	resp, body := e.get(e.login("bob"), "/console/t1/scrollback")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment;") {
		t.Fatalf("download: %d %v", resp.StatusCode, resp.Header)
	}
	if !bytes.HasSuffix(data, []byte(body)) || len(body) < 100 {
		t.Fatalf("scrollback %d bytes, not the tail of the output", len(body))
	}
}

func TestConsolePage(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	_, body := e.get(e.login("bob"), "/console/t1")
	for _, s := range []string{`id="readonly"`, `data-input="false"`, `/static/vendor/xterm/xterm.js`, `id="download"`} {
		if !strings.Contains(body, s) {
			t.Errorf("viewer's page lacks %s", s)
		}
	}
	if strings.Contains(body, `id="break"`) {
		t.Error("viewer's page has a break button")
	}
	_, body = e.get(e.login("alice"), "/console/t1")
	if !strings.Contains(body, `id="break"`) || !strings.Contains(body, `id="lock"`) || strings.Contains(body, `id="readonly"`) {
		t.Error("operator's page lacks break/lock or shows read-only")
	}
}

// TestRoleChangeAndRevoke: a reload that lowers alice to view stops her
// typing at once and tells her page; one that takes her access away
// closes the page's connection with the code that stops it reconnecting.
func TestRoleChangeAndRevoke(t *testing.T) {
	e := newEnv(t, tee.Options{}, Options{})
	op := e.open(e.login("alice"), streamPos{})
	setRole := func(r chardev.Role) {
		cfg := access.Config{Grants: map[string]access.Grants{"t1": {Roles: map[string]chardev.Role{"alice": r}}}}
		cfg.Users = []access.User{{Name: "alice", PasswordHash: cheapHash("alice-pw")}}
		pol, err := access.NewPolicy(cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.gate.SetPolicy(pol)
	}
	setRole(chardev.RoleView)
	var viewStatus, notice bool
	for !viewStatus || !notice {
		m := op.waitCtl("", "")
		switch m["t"] {
		case "status":
			viewStatus = viewStatus || m["role"] == "view" && m["input"] == false
		case "notice":
			notice = notice || strings.Contains(m["text"].(string), "from operate to view")
		}
	}
	op.typeKeys("reboot\r")
	op.send(map[string]any{"t": "status"})
	op.waitCtl("status", "")
	if n := e.front.WrittenLen(); n != 0 {
		t.Fatalf("%d bytes reached the device after the downgrade", n)
	}
	setRole(chardev.RoleNone)
	<-op.done
	var ce websocket.CloseError
	if !errors.As(op.err, &ce) || ce.Code != closeRevoked {
		t.Fatalf("revoked page closed with %v, want code %d", op.err, closeRevoked)
	}
}

// TestNoticeOfRefusedInput: in exclusive mode, an operator typing while
// another holds the write lock is told so on the page (chardev.Noticer).
func TestNoticeOfRefusedInput(t *testing.T) {
	e := newEnv(t, tee.Options{Input: tee.Exclusive}, Options{})
	holder := e.open(e.login("alice"), streamPos{})
	holder.send(map[string]any{"t": "lock", "take": true})
	holder.waitCtl("ok", "lock")
	other := e.open(e.login("root"), streamPos{})
	other.typeKeys("x")
	m := other.waitCtl("notice", "")
	if !strings.Contains(m["text"].(string), "alice") {
		t.Fatalf("notice %v does not name the holder", m)
	}
	if n := e.front.WrittenLen(); n != 0 {
		t.Fatalf("%d refused bytes reached the device", n)
	}
}

// TestUpgradeClosesPageWithNotice: a browser leg cannot be carried to the
// process a chartee upgrade hands over to. After the commit the page has
// every byte up to the cut, then the notice, then the socket closes (going
// away: the page reconnects); the page that reconnects resumes from its
// offset, with no gap and nothing twice.
func TestUpgradeClosesPageWithNotice(t *testing.T) {
	e := newEnv(t, tee.Options{Scrollback: 4096}, Options{})
	c := e.login("alice")
	w := e.open(c, streamPos{})
	e.emit([]byte("before the cut\r\n"))
	w.waitOffset(e.tee.Offset())
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	fz, err := e.tee.Freeze(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, b := range fz.Backends {
		for _, l := range b.Legs {
			if !l.Frozen {
				left = append(left, l.Name)
			}
		}
	}
	if len(left) != 1 {
		t.Fatalf("legs left behind: %q, want the page's", left)
	}
	e.front.Feed([]byte("after the cut\r\n"))
	e.tee.CloseLegs(left, "chartee: upgrading to v2, reconnect", wait)
	if m := w.waitCtl("notice", ""); m["text"] != "chartee: upgrading to v2, reconnect" {
		t.Fatalf("notice %v", m)
	}
	<-w.done
	if websocket.CloseStatus(w.err) != websocket.StatusGoingAway {
		t.Fatalf("page closed with %v, want going away (reconnect)", w.err)
	}
	pos := w.position()
	if pos.next != fz.Offset || string(w.data) != "before the cut\r\n" {
		t.Fatalf("page at %d with %q; the cut is %d", pos.next, w.data, fz.Offset)
	}
	e.tee.Thaw() // the stream goes on from the cut (in the new process: the same offsets)
	w2 := e.open(c, pos)
	if w2.hi.Lost != 0 || w2.hi.Offset != fz.Offset {
		t.Fatalf("resumed at %d with %d lost, want %d and none", w2.hi.Offset, w2.hi.Lost, fz.Offset)
	}
	w2.waitOffset(fz.Offset + uint64(len("after the cut\r\n")))
	w2.mu.Lock()
	got := string(w2.data)
	w2.mu.Unlock()
	if got != "after the cut\r\n" {
		t.Fatalf("the resumed page got %q", got)
	}
	w2.close()
}
