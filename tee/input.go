package tee

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

// inputMerge queues what legs type, in arrival order, for the one frontend
// writer. Each leg read is one chunk and chunks are written whole, so input
// from different legs interleaves by chunk and is never split.
type inputMerge struct {
	mu     sync.Mutex
	ready  sync.Cond
	q      spanQueue
	bytes  int
	limit  int
	closed bool
	// poolSize is the size of pooled input buffers (compact chunks
	// have other capacities).
	poolSize int
	writing  bool // the writer is writing the head chunk
	// cut: a process upgrade stopped the writer (freeze.go); what is
	// queued is carried, or written after Thaw.
	cut bool
	// recorded is how many bytes of the head chunk have been handed to
	// input recorders: a chunk written in several parts, or merged into
	// between two writes, is recorded once and in full.
	recorded int

	mode    InputMode
	idle    time.Duration
	holder  *leg
	lastKey time.Time
	// epoch counts changes of holder: a leg refused input is told once
	// per epoch (see refusedNoticeLocked).
	epoch uint64

	dropped atomic.Uint64 // input dropped because the buffer was full

	// queued and consumed count input bytes queued by Send and consumed
	// (written or purged) by anyone, so Send can wait for its own.
	queued     uint64
	consumed   uint64
	consumedCh sync.Cond
}

func (m *inputMerge) init(opts Options) {
	m.ready.L = &m.mu
	m.consumedCh.L = &m.mu
	m.limit = opts.InputBuffer
	m.poolSize = inputChunkSize
	m.mode = opts.Input
	m.idle = opts.ExclusiveIdle
}

func (m *inputMerge) close() {
	m.mu.Lock()
	m.closed = true
	m.ready.Broadcast()
	m.consumedCh.Broadcast()
	m.mu.Unlock()
}

// consume counts n input bytes as gone from the queue, for Send.
func (m *inputMerge) consume(n int) {
	m.consumed += uint64(n)
	m.consumedCh.Broadcast()
}

func (m *inputMerge) pendingBytes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// holderLocked returns the write-lock holder, releasing an idle one.
func (m *inputMerge) holderLocked(now time.Time) *leg {
	if m.holder != nil && now.Sub(m.lastKey) > m.idle {
		m.setHolderLocked(nil)
	}
	return m.holder
}

// legGone releases the write lock if the leaving leg held it.
func (m *inputMerge) legGone(l *leg) {
	m.mu.Lock()
	if m.holder == l {
		m.setHolderLocked(nil)
	}
	m.mu.Unlock()
}

// acceptInput takes one chunk a leg read. Input from a leg without input
// rights, from anyone but the holder in exclusive mode, or beyond the
// buffer bound is discarded and counted.
//
// During a freeze (a process upgrade's cut), input from a leg that is
// carried (its device is a chardev.Freezer) is queued as always: its
// reader read it before its Read returned ErrFrozen and parks only after
// this, so Freeze, which waits for every reader to park, then writes it
// to the frontend or carries it (Frozen.Input). Waiting here for Thaw
// instead would keep the reader from parking: Freeze would wait out its
// drain bound and fail.
func (t *Tee) acceptInput(l *leg, c *chunk) {
	if t.frozenIn.Load() && !carried(l) && !t.waitThaw() {
		// Typed by a session the upgrade could not stop, after the
		// cut: it goes with the session.
		l.c.discarded.Add(uint64(len(c.b)))
		l.backend.c.discarded.Add(uint64(len(c.b)))
		t.inChunks.release(c)
		return
	}
	m := &t.input
	n := uint64(len(c.b))
	if !l.mayType() {
		l.c.discarded.Add(n)
		l.backend.c.discarded.Add(n)
		t.inChunks.release(c)
		return
	}
	// Looked up before the input lock (the frontend lock is never taken
	// inside it); a device swapped meanwhile fails the attempt, and the
	// input writer then writes the chunk to the new one.
	nbw, gen := t.frontendTryWriter()
	m.mu.Lock()
	now := time.Now()
	if m.mode == Exclusive {
		h := m.holderLocked(now)
		if h == nil {
			m.setHolderLocked(l)
			t.emit(l.event(EventWriteLock, "taken by typing"))
		} else if h != l {
			m.refusedNoticeLocked(t, l, h)
			m.mu.Unlock()
			l.c.discarded.Add(n)
			l.backend.c.discarded.Add(n)
			t.inChunks.release(c)
			return
		}
		m.lastKey = now
	}
	if m.closed || m.bytes+len(c.b) > m.limit {
		m.mu.Unlock()
		m.dropped.Add(n)
		l.c.discarded.Add(n)
		l.backend.c.discarded.Add(n)
		t.inChunks.release(c)
		return
	}
	if tail := m.appendableTailLocked(len(c.b), l); tail != nil {
		// Keystroke-sized reads are copied into the last queued chunk
		// instead of each pinning a 4 KiB buffer: a client typing byte
		// by byte during an outage would otherwise hold 4 KiB per byte
		// of the input bound. Each read's bytes stay contiguous and in
		// order, so input still interleaves by whole reads.
		tail.b = append(tail.b, c.b...)
		tail.buf = tail.b[:cap(tail.b)]
		t.inChunks.release(c)
	} else if m.q.len() > 0 && len(c.b) <= smallInput {
		// A keystroke behind another leg's input cannot join that
		// chunk (one author per chunk): it gets a chunk of its own
		// size, which its leg's next keystrokes grow.
		k := &chunk{buf: append([]byte(nil), c.b...), from: l}
		k.b = k.buf
		k.refs.Store(1)
		t.inChunks.release(c)
		m.q.push(span{c: k})
	} else {
		m.q.push(span{c: c})
	}
	m.bytes += int(n) // not len(c.b): a merged c is back in the pool
	m.queued += n
	inline := nbw != nil && m.inlineOKLocked(t)
	if !inline {
		m.ready.Signal()
	}
	m.mu.Unlock()
	l.c.in.Add(n)
	l.backend.c.in.Add(n)
	if inline {
		t.writeInputInline(nbw, gen)
	}
}

// frontendTryWriter is the frontend device and its generation when it can
// take a write without waiting (chardev.NonBlockingWriter), else nil.
func (t *Tee) frontendTryWriter() (chardev.NonBlockingWriter, uint64) {
	f := &t.front
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dev == nil || f.noTry == f.gen {
		return nil, 0
	}
	w, ok := f.dev.(chardev.NonBlockingWriter)
	if !ok {
		return nil, 0
	}
	return w, f.gen
}

// inlineOKLocked reports whether the leg reader that just queued the only
// input chunk may write it to the frontend itself (writeInputInline)
// instead of waking the input writer: nothing else is queued or being
// written, no cut, no pacing. It then takes the writer's token (writing),
// so the input writer waits until it is done.
func (m *inputMerge) inlineOKLocked(t *Tee) bool {
	if m.q.len() != 1 || m.writing || m.cut || m.closed || t.pacing.Load() != nil {
		return false
	}
	m.writing = true
	return true
}

// writeInputInline is a leg reader writing the input chunk it just queued
// to the frontend with one non-blocking attempt (inlineOKLocked said it
// may): a typed key reaches the device without a hand-off to the input
// writer goroutine, one thread wake-up less per keystroke. What the device
// does not take at once, and any error, is left queued for the input
// writer, which writes it (waiting as long as it takes) and handles a
// failed frontend as always: a leg reader never waits for the frontend.
// The chunk is recorded once, before the write, as the writer does.
func (t *Tee) writeInputInline(w chardev.NonBlockingWriter, gen uint64) {
	m := &t.input
	m.mu.Lock()
	head := m.q.front()
	b := head.bytes()
	record := head.c.b[m.recorded:]
	from := head.c.from
	m.recorded = len(head.c.b)
	m.mu.Unlock()

	t.recordInput(from, record)
	n, err := w.TryWrite(b)
	if chardev.IsUnsupported(err) {
		f := &t.front
		f.mu.Lock()
		f.noTry = gen // the input writer writes to this device from now on
		f.mu.Unlock()
	}

	m.mu.Lock()
	m.writing = false
	t.wroteHeadLocked(n)
	if m.q.len() > 0 || m.closed {
		m.ready.Signal() // the rest, or a close waiting for the token
	}
	m.mu.Unlock()
	if n > 0 {
		t.front.bytesIn.Add(uint64(n))
	}
}

// carried reports whether a freeze stops l's reader (its device is a
// chardev.Freezer): the leg goes to the new process of an upgrade.
func carried(l *leg) bool {
	_, ok := l.dev.(chardev.Freezer)
	return ok
}

// smallInput is the largest read appendableTailLocked merges: a quarter
// of an input buffer, so a merged buffer is at least a quarter full.
const smallInput = 1 << 10

// appendableTailLocked returns the last queued input chunk if n more bytes
// fit in its buffer and n is small; never the chunk the writer is writing
// (it reads that one's bytes without the lock), and never another leg's
// chunk (each chunk has one author for input captures and the audit log).
func (m *inputMerge) appendableTailLocked(n int, from *leg) *chunk {
	k := m.q.len()
	if n > smallInput || k == 0 || (k == 1 && m.writing) {
		return nil
	}
	tail := m.q.at(k - 1).c
	if tail.from != from {
		return nil
	}
	// A pooled buffer takes what fits; a compact one (see acceptInput)
	// grows by append up to smallInput.
	if cap(tail.buf) == m.poolSize {
		if len(tail.b)+n > cap(tail.buf) {
			return nil
		}
	} else if len(tail.b)+n > smallInput {
		return nil
	}
	return tail
}

// frontendWriteLoop is the single frontend writer. It writes each queued
// input chunk whole to whichever device is the frontend; when a write
// fails because the frontend was swapped or lost, the rest of the chunk
// goes to the next device.
func (t *Tee) frontendWriteLoop() {
	defer t.wg.Done()
	m := &t.input
	for {
		m.mu.Lock()
		// writing: a leg reader is writing the head chunk inline
		// (writeInputInline); it signals when it is done.
		for ((m.q.len() == 0 || m.cut) && !m.closed) || m.writing {
			m.ready.Wait()
		}
		if m.closed {
			for m.q.len() > 0 {
				t.inChunks.release(m.q.pop().c)
			}
			m.bytes, m.recorded = 0, 0
			m.mu.Unlock()
			return
		}
		head := m.q.front()
		b := head.bytes()
		// The bytes not yet recorded; nothing is appended to the head
		// chunk while it is being written, so they are stable.
		record := head.c.b[m.recorded:]
		from := head.c.from
		m.recorded = len(head.c.b)
		m.writing = true
		m.mu.Unlock()

		dev, gen := t.front.wait()
		n, err := 0, error(nil)
		if dev != nil {
			// Record before writing: the frontend may echo at once,
			// and a capture of both directions must show the key
			// before its echo. So a capture records what was sent
			// to the frontend, even if that write then fails (the
			// rest is written to the next device, and not recorded
			// twice).
			t.recordInput(from, record)
			n, err = t.writeFrontend(dev, b)
		}

		m.mu.Lock()
		m.writing = false
		if m.cut && errors.Is(err, chardev.ErrFrozen) {
			err = nil // cut by a process upgrade: the rest is carried
		}
		t.wroteHeadLocked(n)
		m.mu.Unlock()
		if n > 0 {
			t.front.bytesIn.Add(uint64(n))
		}
		if dev == nil {
			continue // closing: the loop top sees it
		}
		if err != nil {
			t.frontendWriteFailed(gen, err)
		}
	}
}

// frontendWriteFailed closes the frontend if it is still the one that
// failed, so its reader fails too and the frontend loop reconnects. A
// device already replaced (swap, failover) is left alone.
func (t *Tee) frontendWriteFailed(gen uint64, err error) {
	f := &t.front
	f.mu.Lock()
	var dev chardev.Chardev
	if f.gen == gen {
		dev = f.dev
		f.lastErr = "write: " + err.Error()
	}
	f.mu.Unlock()
	if dev != nil {
		dev.Close()
		// Wait for the frontend loop to notice, rather than spin on a
		// closed device.
		f.mu.Lock()
		for f.gen == gen && !f.closed {
			f.up.Wait()
		}
		f.mu.Unlock()
	}
}

// recordInput hands input about to be written to the frontend to legs
// that log input, and to the input hook (the audit log), with its author.
func (t *Tee) recordInput(from *leg, p []byte) {
	if len(p) == 0 {
		return
	}
	var who chardev.InputAuthor
	if from != nil {
		who = chardev.InputAuthor{Leg: from.name, Identity: from.ident}
	}
	t.queueHook(from, who, p)
	at := t.offsetNext.Load()
	for _, l := range t.view.Load().legs {
		if l.recorder != nil || l.attributed != nil {
			l.queueRecord(at, who, p)
		}
	}
}

// SetInputHook sets a function called with every input chunk, and who
// typed it, as it is written to the frontend (nil removes it). The audit
// log uses it. It runs on a goroutine of its own, one call at a time in
// typing order (consecutive chunks of one author may come as one call
// when it is behind), so a slow or stuck hook never delays typing: up to
// 64 KiB of input waits for it, beyond that input is not given to it,
// counted in Stats.Frontend.InputHookDropped and told by a drop event. Input
// queued before Close is still delivered, within Close's bound.
func (t *Tee) SetInputHook(fn func(who chardev.InputAuthor, p []byte)) {
	if fn == nil {
		t.inputHook.Store(nil)
		return
	}
	t.inputHook.Store(&fn)
}

// PurgeInput discards input queued for the frontend and not yet written
// (RFC 2217 PURGE-DATA). A chunk being written is finished.
func (t *Tee) PurgeInput() {
	m := &t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	keep := 0
	if m.writing {
		keep = 1
	}
	if keep == 0 && m.q.len() > 0 {
		m.recorded = 0 // the head chunk goes
	}
	for m.q.len() > keep {
		// Pop from the tail side by rebuilding: purges are rare.
		spans := m.q.drain()
		for i, s := range spans {
			if i < keep {
				m.q.push(s)
				continue
			}
			m.bytes -= len(s.c.b) - s.skip
			m.consume(len(s.c.b) - s.skip)
			m.dropped.Add(uint64(len(s.c.b) - s.skip))
			t.inChunks.release(s.c)
		}
	}
}

// legControl is the chardev.Control a leg's device gets: the tee's
// operations, with the leg's permissions enforced.
type legControl struct {
	t *Tee
	l *leg
}

var _ chardev.Control = (*legControl)(nil)

func (c *legControl) SetLineSettings(ls chardev.LineSettings) error {
	if !c.l.opts.Load().Control && !c.l.isAdmin() {
		return fmt.Errorf("line settings from %s: %w", c.l.name, chardev.ErrNotPermitted)
	}
	return c.t.SetLineSettings(ls)
}

func (c *legControl) LineSettings() chardev.LineSettings { return c.t.LineSettings() }

func (c *legControl) SetModemLines(dtr, rts *bool) error {
	if !c.l.opts.Load().Control && !c.l.isAdmin() {
		return fmt.Errorf("modem lines from %s: %w", c.l.name, chardev.ErrNotPermitted)
	}
	return c.t.SetModemLines(dtr, rts)
}

func (c *legControl) ModemStatus() (chardev.ModemStatus, error) { return c.t.ModemStatus() }

func (c *legControl) Break(d time.Duration) error {
	if !c.l.mayType() {
		return fmt.Errorf("break from %s: %w", c.l.name, chardev.ErrNotPermitted)
	}
	m := &c.t.input
	m.mu.Lock()
	var h *leg
	if m.mode == Exclusive {
		h = m.holderLocked(time.Now())
	}
	m.mu.Unlock()
	if h != nil && h != c.l {
		return fmt.Errorf("break from %s: write lock held by %s: %w", c.l.name, h.name, chardev.ErrNotPermitted)
	}
	return c.t.SendBreak(d)
}

func (c *legControl) PurgeInput() {
	if c.l.mayType() {
		c.t.PurgeInput()
	}
}

func (c *legControl) TakeWriteLock() error {
	m := &c.t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mode != Exclusive {
		return nil
	}
	if !c.l.mayType() {
		return fmt.Errorf("write lock for %s: %w", c.l.name, chardev.ErrNotPermitted)
	}
	now := time.Now()
	if h := m.holderLocked(now); h != nil && h != c.l {
		return fmt.Errorf("write lock held by %s: %w", h.name, chardev.ErrNotPermitted)
	}
	m.setHolderLocked(c.l)
	m.lastKey = now
	c.t.emit(c.l.event(EventWriteLock, "taken"))
	return nil
}

var _ chardev.LockStealer = (*legControl)(nil)

// StealWriteLock takes the write lock from whoever holds it: an admin's
// right. The event names both legs and both users.
func (c *legControl) StealWriteLock() (prevLeg, prevUser string, err error) {
	if !c.l.isAdmin() || !c.l.mayType() {
		return "", "", fmt.Errorf("steal write lock for %s: admin role required: %w", c.l.name, chardev.ErrNotPermitted)
	}
	m := &c.t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mode != Exclusive {
		return "", "", nil
	}
	now := time.Now()
	if h := m.holderLocked(now); h != nil && h != c.l {
		prevLeg, prevUser = h.name, h.user()
	}
	m.setHolderLocked(c.l)
	m.lastKey = now
	e := c.l.event(EventWriteLock, "taken")
	if prevLeg != "" {
		e.Reason = "stolen from " + prevLeg
		e.FromLeg, e.FromUser = prevLeg, prevUser
	}
	c.t.emit(e)
	return prevLeg, prevUser, nil
}

func (c *legControl) ReleaseWriteLock() {
	m := &c.t.input
	m.mu.Lock()
	released := m.holder == c.l
	if released {
		m.setHolderLocked(nil)
	}
	m.mu.Unlock()
	if released {
		c.t.emit(c.l.event(EventWriteLock, "released"))
	}
}

func (c *legControl) Status() string { return c.t.StatusText() }

// StatusText is a short human summary: frontend, legs, write lock.
func (t *Tee) StatusText() string {
	st := t.Stats()
	var b strings.Builder
	fmt.Fprintf(&b, "tee %s: frontend %s", st.Name, st.Frontend.Device)
	if st.Frontend.Up {
		b.WriteString(" (up)")
	} else {
		fmt.Fprintf(&b, " (down: %s)", st.Frontend.LastError)
	}
	fmt.Fprintf(&b, ", line %s, input %s", t.LineSettings(), st.InputMode)
	if st.WriteLock != "" {
		fmt.Fprintf(&b, ", write lock: %s", st.WriteLock)
	}
	fmt.Fprintf(&b, "\r\n%d legs:", len(st.Legs))
	for _, l := range st.Legs {
		fmt.Fprintf(&b, " %s", l.Name)
		switch {
		case l.User != "":
			fmt.Fprintf(&b, "(%s %s from %s)", l.User, l.Role, l.Peer)
		case l.Peer != "":
			fmt.Fprintf(&b, "(%s)", l.Peer)
		}
	}
	return b.String()
}

// wroteHeadLocked takes n bytes written to the frontend off the head of
// the input queue, releasing the head chunk once all of it is written.
// The input lock is held.
func (t *Tee) wroteHeadLocked(n int) {
	if n <= 0 {
		return
	}
	m := &t.input
	s := m.q.front()
	s.skip += n
	m.bytes -= n
	m.consume(n)
	if s.skip == len(s.c.b) {
		t.inChunks.release(m.q.pop().c)
		m.recorded = 0
	}
}
