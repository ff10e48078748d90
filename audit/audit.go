// Package audit writes chartee's audit trail: one JSON object per line for
// every session start and end, write-lock change, admin operation, refused
// login and input chunk, each naming the person (user, role, source,
// authentication method and key fingerprint where known).
//
// The log writes to any io.Writer; the daemon gives it a `file` device
// (through the backend registry), so the audit file is rotated and
// reopened on SIGUSR1 exactly like a capture. Each record is one Write, so
// a record is never split across rotated files.
//
// Input records carry the typed bytes (as a JSON string "data", or
// "data_base64" for bytes that are not valid UTF-8) unless RecordInput is false, for consoles where
// passwords are typed: then only their size is logged.
package audit

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"chartee/chardev"
	"chartee/tee"
)

// Record is one line of the audit file.
type Record struct {
	Time           time.Time `json:"time"`
	Kind           string    `json:"kind"` // attach, detach, write-lock, admin, input, login-failed, ...
	Tee            string    `json:"tee,omitempty"`
	Leg            string    `json:"leg,omitempty"`
	User           string    `json:"user,omitempty"`
	Role           string    `json:"role,omitempty"`
	Source         string    `json:"source,omitempty"`
	Auth           string    `json:"auth_method,omitempty"`
	KeyFingerprint string    `json:"key_fingerprint,omitempty"`
	FromLeg        string    `json:"from_leg,omitempty"`
	FromUser       string    `json:"from_user,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	Bytes          int       `json:"bytes,omitempty"`
	Data           *string   `json:"data,omitempty"`        // typed text (valid UTF-8)
	DataBase64     string    `json:"data_base64,omitempty"` // typed bytes that are not valid UTF-8
}

// Options configure a Log.
type Options struct {
	// RecordInput logs what was typed; false logs only sizes.
	RecordInput bool
	// OnError is told when a write fails (the log keeps trying).
	OnError func(error)
}

// Log is an audit trail writer, safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	w    io.Writer
	opts Options
	buf  []byte
	now  func() time.Time
}

// New returns a log writing to w.
func New(w io.Writer, opts Options) *Log {
	return &Log{w: w, opts: opts, now: time.Now}
}

// SetRecordInput changes whether input content is logged (a reload).
func (l *Log) SetRecordInput(on bool) {
	l.mu.Lock()
	l.opts.RecordInput = on
	l.mu.Unlock()
}

// Write logs r, filling in its time if unset.
func (l *Log) Write(r Record) {
	if l == nil {
		return
	}
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, err := json.Marshal(r)
	if err != nil {
		return
	}
	l.buf = append(append(l.buf[:0], b...), '\n')
	if _, err := l.w.Write(l.buf); err != nil && l.opts.OnError != nil {
		l.opts.OnError(err)
	}
}

// Input logs an input chunk typed on tee by who.
func (l *Log) Input(teeName string, who chardev.InputAuthor, p []byte) {
	if l == nil {
		return
	}
	r := Record{Kind: "input", Tee: teeName, Leg: who.Leg, Bytes: len(p)}
	if id := who.Identity; id != nil {
		r.User, r.Role, r.Source = id.User, id.Role().String(), id.Source
	}
	l.mu.Lock()
	rec := l.opts.RecordInput
	l.mu.Unlock()
	if rec {
		if utf8.Valid(p) {
			s := string(p)
			r.Data = &s
		} else {
			r.DataBase64 = base64.StdEncoding.EncodeToString(p)
		}
	}
	l.Write(r)
}

// Audited reports whether a tee event belongs in the audit trail.
func Audited(e tee.Event) bool {
	switch e.Kind {
	case tee.EventAttach, tee.EventDetach, tee.EventWriteLock, tee.EventAdmin:
		return e.Leg != "" || e.Kind == tee.EventAdmin
	}
	return false
}

// Event logs a tee event if it belongs in the audit trail.
func (l *Log) Event(e tee.Event) {
	if l == nil || !Audited(e) {
		return
	}
	l.Write(Record{Time: e.Time.UTC(), Kind: string(e.Kind), Tee: e.Tee, Leg: e.Leg, User: e.User, Role: e.Role,
		Source: e.Source, Auth: e.Auth, KeyFingerprint: e.KeyFingerprint, FromLeg: e.FromLeg, FromUser: e.FromUser,
		Reason: e.Reason})
}
