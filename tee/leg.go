package tee

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

// A leg is one attached device on the output side: its own bounded queue
// of shared chunks, its own writer goroutine, and a reader goroutine that
// feeds what the device sends into the tee's input merge.
type leg struct {
	t       *Tee
	id      uint64
	name    string
	backend *backend
	opts    atomic.Pointer[LegOptions] // replaced whole by SetLegOptions
	dev     chardev.Chardev
	peer    string
	since   time.Time

	recorder chardev.InputRecorder // nil unless the device logs input
	// attributed is recorder's attributing form, when it has one.
	attributed chardev.AttributedInputRecorder
	// ident is the person behind the leg (nil for a raw client).
	ident    *chardev.Identity
	observer chardev.LineObserver  // nil unless the device wants line changes
	tracker  chardev.OffsetTracker // nil unless the device wants stream offsets
	noticer  chardev.Noticer       // nil unless the device shows notices to a person

	mu sync.Mutex
	// writerOn: the leg's write side is owned — by a writer goroutine,
	// or by the frontend reader writing inline (see writeInline). With
	// nothing to write the writer goroutine exits, so an idle leg has
	// no writer goroutine; wakeLocked starts one when there is work.
	writerOn  bool
	started   bool                      // startLeg has run: the device may be written
	runWriter func()                    // the writer goroutine's body, made once (see wakeLocked)
	nbw       chardev.NonBlockingWriter // nil unless the device can try a write without waiting
	bw        chardev.BuffersWriter     // nil unless the device writes a batch in one call
	// waiter lets the reader wait for input without a goroutine
	// (chardev.ReadWaiter), until the first input; readable restarts
	// the reader, made once. Both are the reader's own.
	waiter   chardev.ReadWaiter
	readable func()
	// readDeferred: the reader has not been started yet; it starts at
	// the tee's first Thaw or when the leg finishes (Tee.deferReader;
	// the tee's lock).
	readDeferred bool
	// coalesce is how long new output may wait for the writer (a
	// chardev.Coalescer; 0: woken at once); flush is its timer, armed
	// while flushArmed (see wakeOutputLocked).
	coalesce   time.Duration
	flush      *time.Timer
	flushArmed bool
	// armLater: the frontend reader is queueing (offer), and starts the
	// flush timer itself once its inline writes are done (armFlush), so
	// the timer's cost (it may wake the runtime's poller) is not paid
	// before a client's echo goes out. armDue: it has to.
	armLater  bool
	armDue    bool
	spaceFree sync.Cond // a blocked frontend read waits for room
	q         spanQueue
	queued    int    // bytes in q
	charged   int    // memory q keeps alive: the sum of its chunks' charge, held against the queue limit
	batch     int    // spans at the head of q the writer is writing now (not to be appended to)
	next      uint64 // stream offset of the next byte to write (with q empty: every byte before it was written or dropped)
	end       uint64 // bytes at or past end are not for this leg
	dropEnd   uint64 // end offset of the last chunk dropped for this leg
	// successor is the new leg of a handover swap: a chunk before the cut
	// that this leg can no longer take (it failed while the frontend
	// reader waited for room) is owed to it.
	successor *leg
	held      bool   // writer paused: new leg of a handover waiting for the old
	wfrozen   bool   // writer stopped at a process upgrade's cut (freeze.go)
	uncut     bool   // its write at the cut could not be cut: not carried
	swapping  bool   // a swap owns this leg's end of life
	finishing bool   // its own writer owns its end of life: a swap must not take it
	overlapAt uint64 // overlap swap: cut as soon as idle at or past this offset
	overlap   bool
	failed    error
	dropping  bool     // in an overflow episode (for the drop event)
	notices   []string // for noticer, delivered by the writer
	// records are input waiting for recorder (see record.go).
	records     []inputRecord
	recBytes    int
	recDropping bool
	// refusedEpoch is the input lock episode this leg was last told its
	// typing is discarded in (guarded by the input lock, not mu).
	refusedEpoch uint64
	wbacking     [][]byte
	wbufs        net.Buffers

	writerDone signal // fired when the write loop has returned
	readerDone signal // fired when the read loop has returned
	gone       signal // fired when the leg is fully removed
	devClosed  signal // fired when the device's Close has returned

	c legCounters
}

// legCounters are read by Stats without locks.
type legCounters struct {
	out        atomic.Uint64 // bytes written to the device
	in         atomic.Uint64 // bytes accepted from it into the frontend
	dropped    atomic.Uint64 // output bytes dropped on overflow
	discarded  atomic.Uint64 // input bytes discarded (no input right, lock held elsewhere, buffer full)
	recDropped atomic.Uint64 // input bytes not recorded: the recorder's queue was full
	queued     atomic.Int64
	first      atomic.Uint64
	next       atomic.Uint64
}

var (
	errDetached     = errors.New("detached")
	errTeeClosed    = errors.New("tee closed")
	errOverflow     = errors.New("queue overflow (on_overflow: disconnect)")
	errDrainTimeout = errors.New("drain timed out")
	errSwappedOut   = errors.New("swapped out")
)

// maxBatch bounds how many queued spans one write hands to the device.
const maxBatch = 64

func newLeg(t *Tee, b *backend, dev chardev.Chardev, opts LegOptions, at uint64) *leg {
	l := &leg{
		t: t, backend: b, dev: dev, since: time.Now(),
		next: at, end: math.MaxUint64,
	}
	l.opts.Store(&opts)
	l.spaceFree.L = &l.mu
	if p, ok := dev.(chardev.Peer); ok {
		l.peer = p.Peer()
	}
	if chardev.RecordsInput(dev) {
		l.recorder, _ = dev.(chardev.InputRecorder)
		l.attributed, _ = dev.(chardev.AttributedInputRecorder)
	}
	l.ident = chardev.IdentityOf(dev)
	if o, ok := dev.(chardev.LineObserver); ok {
		l.observer = o
	}
	if tr, ok := dev.(chardev.OffsetTracker); ok {
		l.tracker = tr
	}
	if n, ok := dev.(chardev.Noticer); ok {
		l.noticer = n
	}
	if w, ok := dev.(chardev.NonBlockingWriter); ok {
		l.nbw = w
	}
	if w, ok := dev.(chardev.ReadWaiter); ok {
		l.waiter = w
	}
	if w, ok := dev.(chardev.BuffersWriter); ok {
		l.bw = w
	}
	if c, ok := dev.(chardev.Coalescer); ok {
		l.coalesce = min(c.CoalesceDelay(), maxCoalesceDelay)
	}
	l.c.first.Store(at)
	l.c.next.Store(at)
	return l
}

// offer queues c for this leg unless the leg is cut before c, failed, or
// full. It runs under the tee lock; it reports whether the caller must wait
// for room (block policy) and retry with pushBlocking outside that lock.
func (l *leg) offer(c *chunk) (mustWait, inline, arm bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil || c.off >= l.end {
		return false, false, false
	}
	o := l.opts.Load()
	if l.fullLocked(c, o.queueLimit()) {
		switch o.Overflow {
		case Block:
			return true, false, false
		case Disconnect:
			l.failLocked(errOverflow)
			return false, false, false
		default:
			l.c.dropped.Add(uint64(len(c.b)))
			l.backend.c.dropped.Add(uint64(len(c.b)))
			l.dropEnd = c.off + uint64(len(c.b))
			if !l.dropping {
				l.dropping = true
				l.t.emit(Event{Kind: EventDrop, Backend: l.backend.name, Leg: l.name, Offset: c.off,
					Reason: "queue full, dropping output for this leg"})
			}
			return false, false, false
		}
	}
	l.dropping = false
	inline = l.inlineOKLocked()
	l.armLater = true
	l.pushLocked(c)
	l.armLater = false
	return false, inline, l.armDue
}

// pushBlocking waits for room and queues c (block policy). The stream
// offset of c was fixed under the tee lock, so a swap that cut this leg in
// the meantime still counts c as owed when c.off is before the cut.
func (l *leg) pushBlocking(c *chunk) {
	l.mu.Lock()
	for l.failed == nil && c.off < l.end && !l.wfrozen && l.fullLocked(c, l.opts.Load().queueLimit()) {
		// (A process upgrade's cut takes c past the bound: it is owed
		// like the rest of the queue.)
		l.spaceFree.Wait()
	}
	switch {
	case c.off >= l.end:
		l.mu.Unlock()
	case l.failed != nil:
		next := l.successor
		l.mu.Unlock()
		if next != nil {
			// A handover swap cut this leg after c and then timed it out
			// (or it died) while we waited: c is owed to the new leg,
			// like the spans the swap hands over, or the stream would
			// have a gap.
			next.pushOwed(c)
		}
	default:
		l.pushLocked(c)
		l.mu.Unlock()
	}
}

// pushOwed queues c, which is before this leg's first live chunk, past
// the queue bound: it is at most one chunk, and dropping it would leave a
// gap a handover promises not to leave. If this leg failed too, c goes on
// to its own successor.
func (l *leg) pushOwed(c *chunk) {
	l.mu.Lock()
	if c.off >= l.end {
		l.mu.Unlock()
		return
	}
	if l.failed != nil {
		next := l.successor
		l.mu.Unlock()
		if next != nil {
			next.pushOwed(c)
		}
		return
	}
	if l.q.len() == 0 && l.c.out.Load() == 0 {
		l.c.first.Store(c.off)
	}
	l.pushLocked(c)
	l.mu.Unlock()
}

// fullLocked reports whether queueing c would take the queue's charge
// past limit. An empty queue always takes one chunk.
func (l *leg) fullLocked(c *chunk, limit int) bool {
	if l.charged == 0 {
		return false
	}
	_, extra := l.placeLocked(c)
	return l.charged+extra > limit
}

// compactMax is the largest chunk a backlogged leg copies into its own
// compact buffer rather than queueing by reference.
const compactMax = 1 << 10

// placeLocked says where c would go: appended to the leg's compact tail
// buffer (tail != nil, no extra charge), into a new compact buffer, or
// queued by reference; extra is the charge that adds. A leg whose queue is
// empty takes c by reference — its writer will be done with it at once —
// while a backlogged one copies small chunks into compact buffers, so a
// queue of one-byte reads costs about its bytes, not a chunk per byte.
func (l *leg) placeLocked(c *chunk) (tail *chunk, extra int) {
	n := l.q.len()
	if n == 0 || len(c.b) > compactMax || len(l.t.sized) == 0 {
		return nil, c.charge()
	}
	if n > l.batch {
		t := l.q.at(n - 1).c
		if t.legOwned && t.off+uint64(len(t.b)) == c.off && len(t.b)+len(c.b) <= cap(t.buf) {
			return t, 0
		}
	}
	return nil, l.compactSize() + chunkOverhead
}

// compactSize is the size of a leg's compact buffers: an eighth of its
// queue limit, from 256 bytes to 4 KiB.
func (l *leg) compactSize() int {
	size := min(max(l.opts.Load().queueLimit()/8, 256), 4<<10)
	for _, p := range l.t.sized {
		if p.size >= size {
			return p.size
		}
	}
	return l.t.sized[len(l.t.sized)-1].size
}

// pushLocked queues c. Into an empty queue it also moves next to c: with
// nothing queued, next may still be at the end of the last chunk written
// before a dropped one, or at a new leg's start when an owed chunk comes.
func (l *leg) pushLocked(c *chunk) {
	if l.q.len() == 0 {
		l.next = c.off
		l.c.next.Store(l.next)
	}
	tail, extra := l.placeLocked(c)
	switch {
	case tail != nil:
		tail.b = append(tail.b, c.b...)
	case extra != c.charge():
		cc := l.t.sized.fit(extra - chunkOverhead)
		cc.off, cc.legOwned = c.off, true
		cc.b = append(cc.buf[:0], c.b...)
		l.q.push(span{c: cc})
	default:
		c.refs.Add(1)
		l.q.push(span{c: c})
	}
	l.charged += extra
	l.queued += len(c.b)
	l.c.queued.Store(int64(l.queued))
	l.wakeOutputLocked()
}

// maxCoalesceDelay bounds what a device may ask for as CoalesceDelay.
const maxCoalesceDelay = 50 * time.Millisecond

// coalesceBatch is how much output a coalescing leg queues before its
// writer is woken at once, timer or not: a batch's worth, and never more
// than a quarter of the queue, so a block leg's queue never fills while
// waiting. With the default queue (256 KiB) that is 64 KiB; a capture
// given a larger queue gets larger batches, up to maxBatch spans (256 KiB
// of 4 KiB pty reads): a stream of 70 MB/s then wakes its writer about 300
// times a second rather than 1,000, which measured 0.87× the client-only
// throughput against 0.77× (docs/ENGINE.md, "fifth pass").
const coalesceBatch = 256 << 10

// wakeOutputLocked wakes the writer for output just queued: at once,
// unless the device coalesces (chardev.Coalescer) and the leg is in its
// plain streaming state, in which case the writer is woken when a batch
// has queued up or the device's delay has passed, whichever is first.
// Everything else that needs the writer (a failure, a cut, a swap, input
// records, notices) still wakes it at once.
func (l *leg) wakeOutputLocked() {
	if l.coalesce <= 0 || l.writerOn || !l.started || l.end != math.MaxUint64 || l.overlap ||
		l.queued >= min(coalesceBatch, l.opts.Load().queueLimit()/4) {
		l.wakeLocked()
		return
	}
	if l.flushArmed {
		return
	}
	l.flushArmed = true
	if l.armLater {
		l.armDue = true
		return
	}
	l.armFlushLocked()
}

func (l *leg) armFlushLocked() {
	if l.flush == nil {
		l.flush = time.AfterFunc(l.coalesce, l.flushFired)
		return
	}
	l.flush.Reset(l.coalesce)
}

// armFlush starts the flush timer offer left to its caller (armLater).
func (l *leg) armFlush() {
	l.mu.Lock()
	if l.armDue {
		l.armDue = false
		l.armFlushLocked()
	}
	l.mu.Unlock()
}

// flushFired is the coalescing timer: the output held back is due. The
// timer's own goroutine writes it, rather than starting a writer.
func (l *leg) flushFired() {
	l.mu.Lock()
	l.flushArmed = false
	run := l.hasWorkLocked() && l.takeWriterLocked()
	l.mu.Unlock()
	if run {
		l.t.runLeg(l)
	}
}

// popLocked removes the head span and releases its chunk.
func (l *leg) popLocked() {
	c := l.q.pop().c
	l.charged -= c.charge()
	c.release()
}

// fail marks the leg failed and closes its device, which unblocks its
// reader and any write in progress; the write loop then finishes the leg.
func (l *leg) fail(err error) {
	l.mu.Lock()
	l.failLocked(err)
	l.mu.Unlock()
}

func (l *leg) failLocked(err error) {
	if l.failed != nil {
		return
	}
	l.failed = err
	l.wakeLocked()
	l.spaceFree.Broadcast()
	// Closing may block on some devices; never do it under our lock.
	// Detach and Swap wait (bounded) for devClosed, so when they return
	// a capture is flushed and a pty link is gone.
	l.t.closers.Add(1)
	go func() {
		defer l.t.closers.Done()
		defer l.devClosed.fire()
		l.dev.Close()
	}()
}

// mayType reports whether the leg's input may reach the frontend: its
// backend grants input and, for a person, the role in force now allows
// typing (a reload may have downgraded it).
func (l *leg) mayType() bool {
	if !l.opts.Load().Input {
		return false
	}
	return l.ident == nil || l.ident.Role() >= chardev.RoleOperate
}

// isAdmin reports whether the leg's person is an admin of the tee.
func (l *leg) isAdmin() bool { return l.ident.Role() >= chardev.RoleAdmin }

// user is the leg's person, or "".
func (l *leg) user() string { return l.ident.Name() }

func (l *leg) failure() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failed
}

// wakeLocked makes sure the leg's write side looks at its state: it
// starts a writer goroutine unless one runs (or the frontend reader is
// writing inline, and will look when it is done).
func (l *leg) wakeLocked() {
	if !l.takeWriterLocked() {
		return
	}
	if l.runWriter == nil { // made once: a go statement with arguments allocates
		l.runWriter = func() { l.t.runLeg(l) }
	}
	go l.runWriter()
}

// takeWriterLocked takes the leg's write side for a writer about to run
// (counted in the tee's goroutines), unless a writer already has it.
func (l *leg) takeWriterLocked() bool {
	if l.writerOn || !l.started {
		return false
	}
	l.writerOn = true
	l.t.wg.Add(1)
	return true
}

// hasWorkLocked reports whether the writer has something to do.
func (l *leg) hasWorkLocked() bool {
	return l.failed != nil || l.cutReachedLocked() || (l.q.len() > 0 && !l.held) ||
		len(l.notices) > 0 || len(l.records) > 0
}

// legWriteLoop is the leg's writer: it hands batches of queued chunks to
// the device (as one writev where the device supports it) until there is
// nothing to write — then it returns false, and the next chunk starts a
// writer again — or the leg fails or reaches its cut: then it returns
// true, for good.
func (l *leg) legWriteLoop() (final bool) {
	for {
		l.mu.Lock()
		if l.wfrozen && l.failed == nil {
			// Cut by a process upgrade: what is queued is carried
			// (or, on a rollback, Thaw wakes a writer again).
			l.writerOn = false
			l.mu.Unlock()
			return false
		}
		if l.failed == nil && l.deliverRecordLocked() {
			l.mu.Unlock()
			continue
		}
		if l.failed != nil || l.cutReachedLocked() {
			l.mu.Unlock()
			l.writerDone.fire()
			return true
		}
		if l.deliverNoticesLocked() {
			l.mu.Unlock()
			continue
		}
		if l.q.len() == 0 || l.held {
			l.writerOn = false
			l.mu.Unlock()
			return false
		}
		at := l.batchLocked()
		l.limitBatchLocked()
		l.batch = len(l.wbufs)
		l.mu.Unlock()

		if l.tracker != nil {
			l.tracker.StreamAt(at)
		}
		n, err := l.writeBatch()

		l.mu.Lock()
		clear(l.wbacking[:l.batch]) // keep no written buffer alive
		l.batch = 0
		l.consumeLocked(int(n))
		if err != nil && !(l.wfrozen && errors.Is(err, chardev.ErrFrozen)) {
			l.failLocked(fmt.Errorf("write: %w", err))
		}
		l.mu.Unlock()
	}
}

// writeBatch writes the batch in wbufs: in one call where the device
// takes one (chardev.BuffersWriter: one writev for a raw client's socket
// or a raw capture file), else a Write per span.
func (l *leg) writeBatch() (int64, error) {
	if l.bw != nil {
		return l.bw.WriteBuffers(l.wbufs)
	}
	return l.wbufs.WriteTo(l.dev)
}

// inlineOKLocked reports whether the frontend reader may write the chunk
// it is about to queue itself, without waking a writer: the device can
// try a write without waiting, the queue is empty, no writer runs, and
// nothing else (a cut, a record, a notice, an offset to tell) needs the
// writer's care. It then takes the write side (writerOn).
func (l *leg) inlineOKLocked() bool {
	if l.nbw == nil || l.writerOn || !l.started || l.held || l.wfrozen || l.q.len() > 0 || l.failed != nil ||
		l.tracker != nil || l.overlap || l.end != math.MaxUint64 || len(l.records) > 0 || len(l.notices) > 0 {
		return false
	}
	l.writerOn = true
	return true
}

// writeInline is the frontend reader writing the chunk it just queued
// for l (inlineOKLocked said it may) with one non-blocking attempt: what
// the device takes is retired at once; the rest stays queued for a writer
// goroutine, so a slow leg still never blocks the reader.
func (l *leg) writeInline() {
	l.mu.Lock()
	if l.failed == nil && l.q.len() > 0 {
		b := l.q.front().bytes()
		l.batch = 1 // the head is being written: nothing is appended to it
		l.mu.Unlock()
		n, err := l.nbw.TryWrite(b)
		l.mu.Lock()
		l.batch = 0
		l.consumeLocked(max(n, 0))
		switch {
		case chardev.IsUnsupported(err):
			l.nbw = nil // its writer writes from now on
		case err != nil:
			l.failLocked(fmt.Errorf("write: %w", err))
		}
	}
	l.writerOn = false
	if l.hasWorkLocked() {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// batchLocked fills wbufs with the queued spans to write next and returns
// the stream offset of the first byte. For an offset tracker the batch
// stops at a gap (a chunk dropped between two queued ones), so that one
// Write is always contiguous in the stream.
func (l *leg) batchLocked() uint64 {
	l.wbufs = l.wbacking[:0]
	front := l.q.front()
	at := front.c.off + uint64(front.skip)
	end := at
	for i := 0; i < l.q.len() && i < maxBatch; i++ {
		s := l.q.at(i)
		if l.tracker != nil && i > 0 && s.c.off != end {
			break
		}
		end = s.c.off + uint64(len(s.c.b))
		l.wbufs = append(l.wbufs, s.bytes())
	}
	l.wbacking = l.wbufs[:0]
	return at
}

// cutReachedLocked reports whether the leg has written everything it owes
// before its cut. For an overlap swap it first makes the cut: as soon as
// the leg is idle at or past the swap offset, it ends where it stands.
func (l *leg) cutReachedLocked() bool {
	if l.overlap && l.q.len() == 0 && l.next >= l.overlapAt && l.end == math.MaxUint64 {
		l.end = l.next
	}
	return l.end != math.MaxUint64 && l.q.len() == 0 && l.next >= l.end
}

// consumeLocked retires n written bytes from the head of the queue. next
// follows the chunks' own offsets, so a chunk dropped between two queued
// ones (drop policy) does not leave it behind the stream; once the queue
// is empty it also covers chunks dropped after the last one written, so a
// cut at the current offset is reached.
func (l *leg) consumeLocked(n int) {
	if n == 0 {
		return
	}
	l.c.out.Add(uint64(n))
	l.backend.c.out.Add(uint64(n))
	l.queued -= n
	l.c.queued.Store(int64(l.queued))
	for n > 0 {
		s := l.q.front()
		rest := len(s.c.b) - s.skip
		if n < rest {
			s.skip += n
			l.next = s.c.off + uint64(s.skip)
			break
		}
		n -= rest
		l.next = s.c.off + uint64(len(s.c.b))
		l.popLocked()
	}
	if l.q.len() > 0 {
		s := l.q.front()
		l.next = s.c.off + uint64(s.skip)
	} else {
		l.next = max(l.next, l.dropEnd)
	}
	l.c.next.Store(l.next)
	l.spaceFree.Broadcast()
}

// takeOwed removes and returns the spans not yet written (for a handover)
// and the number of bytes in them.
func (l *leg) takeOwed() ([]span, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	owed := uint64(l.queued)
	spans := l.q.drain()
	l.queued, l.charged = 0, 0
	l.c.queued.Store(0)
	l.spaceFree.Broadcast()
	return spans, owed
}

// releaseQueue drops every queued chunk reference.
func (l *leg) releaseQueue() {
	l.mu.Lock()
	if l.flush != nil {
		l.flush.Stop()
	}
	l.mu.Unlock()
	spans, _ := l.takeOwed()
	for _, s := range spans {
		s.c.release()
	}
}

// armReader starts a deferred reader: it waits for input without a
// goroutine if the device lets it, else reads in one.
func (l *leg) armReader() {
	if l.waitReadable() {
		return
	}
	go l.runReader(true)
}

// waitReadable asks the device to call wake once there is input, instead
// of a goroutine waiting in Read; false if it cannot now.
func (l *leg) waitReadable() bool {
	if l.readable == nil { // made once: a method value allocates
		l.readable = l.wake
	}
	return l.waiter.WaitReadable(l.readable)
}

// wake is the reader's callback from a wait without a goroutine
// (chardev.ReadWaiter): input came, or the device was woken by a freeze
// or a close. While the tee is frozen the reader is not started to read
// ErrFrozen and park: it counts as parked at once (Tee.parkIdle), and
// waits again at Thaw. With a thousand idle clients, a goroutine each to
// park was a good part of an upgrade's pause.
func (l *leg) wake() {
	if l.t.parkIdle(l) {
		return
	}
	go l.runReader(true)
}

// runReader runs the leg's reader, from startLeg or, after a wait
// without a goroutine, from the device saying it has input (woken: read
// before waiting again). The reader's share of the tee's WaitGroup is held
// while it waits: it ends only when the read loop does.
func (l *leg) runReader(woken bool) {
	if l.legReadLoop(woken) {
		return // waiting: l.readable runs it again
	}
	l.readerDone.fire()
	l.t.wg.Done()
}

// legReadLoop reads what the device sends and feeds it to the input merge.
// A read error or EOF fails the leg (a client hung up). It returns true
// when it leaves the device waiting for input without a goroutine
// (chardev.ReadWaiter): a client that has never typed — the usual idle
// client — then holds no goroutine stack and no read buffer. Once a
// client has typed, its reader waits in Read like any other: the wait
// costs a wake-up through the device's poller, which keystrokes should not
// pay.
func (l *leg) legReadLoop(woken bool) (waiting bool) {
	// A reader that does wait in Read waits with a small buffer, not a
	// pooled 4 KiB one. A read that fills it switches to pooled buffers
	// until reads are small again (a paste).
	var small []byte
	big := false
	for {
		if !woken && l.waiter != nil {
			if l.waitReadable() {
				return true
			}
		}
		woken = false
		var c *chunk
		var n int
		var err error
		if big {
			c = l.t.inChunks.get()
			n, err = l.dev.Read(c.buf)
			big = n >= legReadSmall
		} else {
			if small == nil {
				small = make([]byte, legReadSmall)
			}
			n, err = l.dev.Read(small)
			if n > 0 {
				c = l.t.inChunks.get()
				copy(c.buf, small[:n])
			}
			big = n == len(small)
		}
		if n > 0 {
			l.waiter = nil
			c.b = c.buf[:n]
			c.from = l
			l.t.acceptInput(l, c)
		} else if c != nil {
			l.t.inChunks.release(c)
		}
		if errors.Is(err, chardev.ErrFrozen) && l.t.park() {
			continue
		}
		if err != nil {
			l.fail(fmt.Errorf("read: %w", err))
			return false
		}
	}
}

// legReadSmall is the buffer an idle leg's reader waits with.
const legReadSmall = 128
