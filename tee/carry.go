package tee

// This file is the tee-level state a process upgrade carries besides the
// devices (see freeze.go): what each leg still owes at the cut (output it
// had not written when the drain bound expired, notices, input records),
// typed input not yet written to the frontend, the write-lock holder, the
// line state, and the counters of backends the new process creates later
// (a service backend such as ssh exists only while someone is joined).
// Export builds it in the old process; Resume hands it to the new tee,
// which gives each piece to the leg of the same name as it is attached,
// and queues the input and restores the holder at Thaw.

import (
	"errors"
	"fmt"
	"time"

	"chartee/chardev"
)

// Span is carried output: Bytes, whose first byte has stream offset Off.
type Span struct {
	Off   uint64 `json:"off"`
	Bytes []byte `json:"bytes"`
}

// Record is carried input waiting for a leg's input recorder (a capture
// with direction in or both): typed by Leg, written to the frontend when
// the stream was at Before.
type Record struct {
	Before uint64 `json:"before"`
	Leg    string `json:"leg,omitempty"`
	Bytes  []byte `json:"bytes"`
}

// Owed is what a leg still owed at the cut: output spans in stream order
// (gaps where the leg dropped output), notices, input records. The new
// process writes them first, then continues from the cut.
type Owed struct {
	Spans   []Span   `json:"spans,omitempty"`
	Notices []string `json:"notices,omitempty"`
	Records []Record `json:"records,omitempty"`
}

// Bytes is how many output bytes o holds.
func (o Owed) Bytes() uint64 {
	var n uint64
	for _, s := range o.Spans {
		n += uint64(len(s.Bytes))
	}
	return n
}

func (o Owed) empty() bool {
	return len(o.Spans) == 0 && len(o.Notices) == 0 && len(o.Records) == 0
}

// Input is carried typed input not yet written to the frontend, by the
// leg that typed it. Recorded is how many of its first bytes input
// recorders and the input hook already had (they are not given again).
type Input struct {
	Leg      string `json:"leg,omitempty"`
	Bytes    []byte `json:"bytes"`
	Recorded int    `json:"recorded,omitempty"`
}

// LineState is the line state legs and the config set on the frontend
// (settings, modem lines), replayed on every new frontend device.
type LineState struct {
	Settings *chardev.LineSettings `json:"settings,omitempty"`
	DTR      *bool                 `json:"dtr,omitempty"`
	RTS      *bool                 `json:"rts,omitempty"`
}

// WriteLock is the write-lock holder at the cut (input: exclusive): the
// leg's name and how long it had been idle.
type WriteLock struct {
	Leg  string        `json:"leg"`
	Idle time.Duration `json:"idle"`
}

// carriedState is what a resumed tee still has to hand out: owed state
// by leg name, counters by backend name, input and holder for Thaw.
type carriedState struct {
	legs     map[string]Owed
	counters map[string]Counters
	input    []Input
	lock     *WriteLock
}

// Validate checks what a state document says against the offset it
// resumes at: owed output ends at or before the cut, in order, and typed
// input is within bounds. A document that fails is refused (the upgrade
// rolls back) rather than resumed into a wrong stream.
func (r *Resume) Validate() error {
	if uint64(len(r.Scrollback)) > r.Offset {
		return fmt.Errorf("resume: %d bytes of scrollback before offset %d", len(r.Scrollback), r.Offset)
	}
	for name, o := range r.Legs {
		var end uint64
		for i, s := range o.Spans {
			e := s.Off + uint64(len(s.Bytes))
			if len(s.Bytes) == 0 || e < s.Off || (i > 0 && s.Off < end) || e > r.Offset {
				return fmt.Errorf("resume: leg %s: owed span %d (%d bytes at %d) is not in order before the cut %d",
					name, i, len(s.Bytes), s.Off, r.Offset)
			}
			end = e
		}
		for i, rec := range o.Records {
			if rec.Before > r.Offset {
				return fmt.Errorf("resume: leg %s: input record %d is past the cut", name, i)
			}
		}
	}
	for i, in := range r.Input {
		if len(in.Bytes) == 0 || in.Recorded < 0 || in.Recorded > len(in.Bytes) {
			return fmt.Errorf("resume: typed input %d: %d bytes, %d recorded", i, len(in.Bytes), in.Recorded)
		}
	}
	if r.Line != nil && r.Line.Settings != nil {
		if err := r.Line.Settings.Validate(); err != nil {
			return fmt.Errorf("resume: line state: %w", err)
		}
	}
	return nil
}

// carryIn stashes r's carried state for the legs and backends attached
// before Thaw (New, before anything runs).
func (t *Tee) carryIn(r *Resume) {
	cs := &carriedState{legs: map[string]Owed{}, counters: map[string]Counters{}, input: r.Input, lock: r.WriteLock}
	for name, o := range r.Legs {
		if !o.empty() {
			cs.legs[name] = o
		}
	}
	for name, c := range r.Counters {
		cs.counters[name] = c
	}
	t.carried = cs
	if l := r.Line; l != nil {
		f := &t.front
		if l.Settings != nil {
			f.line.settings, f.line.hasSettings = *l.Settings, true
		}
		f.line.dtr, f.line.rts = l.DTR, l.RTS
	}
}

// takeOwedLocked gives l what the leg of its name owed in the old
// process, queued before anything else, and reports whether there was
// anything (then the leg gets no replay: it has had everything before).
func (t *Tee) takeOwedLocked(l *leg) bool {
	if t.carried == nil {
		return false
	}
	o, ok := t.carried.legs[l.name]
	if !ok {
		return false
	}
	delete(t.carried.legs, l.name)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range o.Spans {
		c := newChunk(s.Off, s.Bytes)
		if l.q.len() == 0 {
			l.c.first.Store(s.Off)
		}
		l.pushLocked(c)
		c.refs.Add(-1) // newChunk's own reference; the queue holds one
	}
	l.notices = append(l.notices, o.Notices...)
	if l.recorder != nil || l.attributed != nil {
		for _, r := range o.Records {
			l.records = append(l.records, inputRecord{before: r.Before, who: chardev.InputAuthor{Leg: r.Leg}, b: r.Bytes})
			l.recBytes += len(r.Bytes)
		}
	}
	return true
}

// seedCarriedLocked continues backend b's counters from the old process
// when it is created after the resume (a service backend's first join).
func (t *Tee) seedCarriedLocked(b *backend) {
	if t.carried == nil {
		return
	}
	if c, ok := t.carried.counters[b.name]; ok {
		b.c.seed(c)
		delete(t.carried.counters, b.name)
	}
}

// carryOutLocked hands the carried input and write lock to the input
// merge (Thaw of a resumed tee, before any reader runs): the input goes
// first, ahead of anything typed in this process.
func (t *Tee) carryOutLocked() {
	cs := t.carried
	if cs == nil {
		return
	}
	t.carried = nil
	byName := map[string]*leg{}
	for _, l := range t.legs {
		byName[l.name] = l
	}
	m := &t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	rest := m.q.drain()
	for i, in := range cs.input {
		k := &chunk{buf: append([]byte(nil), in.Bytes...), from: byName[in.Leg]}
		k.b = k.buf
		k.refs.Store(1)
		m.q.push(span{c: k})
		m.bytes += len(k.b)
		if i == 0 {
			m.recorded = in.Recorded
		}
	}
	for _, s := range rest {
		m.q.push(s)
	}
	if m.q.len() > 0 {
		m.ready.Signal()
	}
	if lk := cs.lock; lk != nil && m.mode == Exclusive {
		if h := byName[lk.Leg]; h != nil {
			m.setHolderLocked(h)
			m.lastKey = time.Now().Add(-lk.Idle)
		}
	}
}

// exportOwedLocked is what l still owes: its queue from the first byte
// not written, its notices and input records. l.mu is held.
func (l *leg) exportOwedLocked() Owed {
	var o Owed
	for i := 0; i < l.q.len(); i++ {
		s := l.q.at(i)
		b := s.bytes()
		if len(b) == 0 {
			continue
		}
		off := s.c.off + uint64(s.skip)
		if n := len(o.Spans); n > 0 {
			last := &o.Spans[n-1]
			if last.Off+uint64(len(last.Bytes)) == off {
				last.Bytes = append(last.Bytes, b...)
				continue
			}
		}
		o.Spans = append(o.Spans, Span{Off: off, Bytes: append([]byte(nil), b...)})
	}
	o.Notices = append(o.Notices, l.notices...)
	for _, r := range l.records {
		o.Records = append(o.Records, Record{Before: r.before, Leg: r.who.Leg, Bytes: append([]byte(nil), r.b...)})
	}
	return o
}

// exportInput is the typed input not yet written to the frontend.
func (t *Tee) exportInput() []Input {
	m := &t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Input
	for i := 0; i < m.q.len(); i++ {
		s := m.q.at(i)
		b := s.bytes()
		if len(b) == 0 {
			continue
		}
		in := Input{Bytes: append([]byte(nil), b...)}
		if s.c.from != nil {
			in.Leg = s.c.from.name
		}
		if i == 0 {
			in.Recorded = max(min(m.recorded-s.skip, len(b)), 0)
		}
		out = append(out, in)
	}
	return out
}

// exportLock is the write-lock holder, if any.
func (t *Tee) exportLock() *WriteLock {
	m := &t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mode != Exclusive || m.holder == nil {
		return nil
	}
	now := time.Now()
	if m.holderLocked(now) == nil {
		return nil
	}
	return &WriteLock{Leg: m.holder.name, Idle: now.Sub(m.lastKey)}
}

// exportLine is the line state to replay in the new process.
func (t *Tee) exportLine() *LineState {
	f := &t.front
	f.mu.Lock()
	defer f.mu.Unlock()
	ls := &LineState{DTR: f.line.dtr, RTS: f.line.rts}
	if f.line.hasSettings {
		s := f.line.settings
		ls.Settings = &s
	}
	return ls
}

// errLeft is why a leg that could not be carried was closed.
var errLeft = errors.New("closed for a process upgrade (cannot be carried)")
