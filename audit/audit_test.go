package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"chartee/chardev"
	"chartee/tee"
)

func lines(t *testing.T, b *bytes.Buffer) []Record {
	t.Helper()
	var out []Record
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, r)
	}
	return out
}

func TestInputRecordsAuthorAndContentOrSize(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, Options{RecordInput: true})
	id := chardev.NewIdentity("alice", chardev.RoleOperate)
	id.Source = "127.0.0.1:9"
	l.Input("c0", chardev.InputAuthor{Leg: "ssh:alice#1", Identity: id}, []byte("ls\n"))
	l.Input("c0", chardev.InputAuthor{Leg: "raw#2"}, []byte{0xff, 0x00})
	l.SetRecordInput(false)
	l.Input("c0", chardev.InputAuthor{Leg: "ssh:alice#1", Identity: id}, []byte("secret\n"))
	rs := lines(t, &b)
	if len(rs) != 3 {
		t.Fatalf("%d records", len(rs))
	}
	if r := rs[0]; r.User != "alice" || r.Role != "operate" || r.Leg != "ssh:alice#1" || r.Data == nil || *r.Data != "ls\n" || r.Bytes != 3 || r.Source != "127.0.0.1:9" {
		t.Fatalf("record 0 %+v", r)
	}
	if r := rs[1]; r.User != "" || r.Data != nil || r.DataBase64 != "/wA=" {
		t.Fatalf("record 1 %+v", r)
	}
	if r := rs[2]; r.Data != nil || r.DataBase64 != "" || r.Bytes != 7 || strings.Contains(b.String(), "secret") {
		t.Fatalf("record 2 %+v", r)
	}
}

func TestEventFilterAndFields(t *testing.T) {
	var b bytes.Buffer
	l := New(&b, Options{})
	l.Event(tee.Event{Kind: tee.EventDrop, Leg: "x"})
	l.Event(tee.Event{Kind: tee.EventAttach, Backend: "cap"}) // a source listening, not a leg
	l.Event(tee.Event{Kind: tee.EventWriteLock, Tee: "c0", Leg: "ssh:root#2", User: "root", Role: "admin",
		FromLeg: "ssh:olga#1", FromUser: "olga", Reason: "stolen from ssh:olga#1"})
	rs := lines(t, &b)
	if len(rs) != 1 || rs[0].User != "root" || rs[0].FromUser != "olga" || rs[0].Kind != "write-lock" {
		t.Fatalf("%+v", rs)
	}
	var nilLog *Log
	nilLog.Event(tee.Event{Kind: tee.EventAttach, Leg: "x"}) // no panic
}
