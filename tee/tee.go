// Package tee is chartee's engine: it joins one frontend device to any
// number of legs, fans the frontend's output out to every leg through a
// bounded per-leg queue of shared chunks, merges the legs' input back into
// the frontend, and swaps any leg — or the frontend — while the others keep
// running.
//
// Every output byte has a 64-bit stream offset. The tee lock (Tee.mu) is
// held only while a chunk gets its offset and is offered to the legs, and
// while the set of legs changes; a swap cuts the stream under that lock, so
// "the old leg gets every byte before X and the new leg every byte from X"
// is exact. Writers never hold it: each leg has its own writer goroutine,
// so one slow or dead leg slows no one unless its policy is block. See
// docs/DESIGN.md for the queues, locks and swap protocol.
//
// The engine knows devices only through package chardev; it never imports
// a concrete backend.
package tee

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

// ErrClosed is returned by operations on a closed tee.
var ErrClosed = errors.New("tee: closed")

// ErrNotFound is returned (wrapped) when a backend name is unknown.
var ErrNotFound = errors.New("no such backend")

// inputChunkSize is the size of a leg's read buffer.
const inputChunkSize = 4 << 10

// ErrExists is returned (wrapped) when a backend name is taken.
var ErrExists = errors.New("backend name already in use")

// A backend is a named group of legs with shared options: one leg for a
// single-stream device, one leg per client for a source.
type backend struct {
	name   string
	opts   LegOptions
	source chardev.Source // nil for a single-stream backend
	// sourceClosed: source has been closed (or is being closed) by
	// whoever set it, so no one else closes it again.
	sourceClosed bool
	legs         []*leg
	seq          uint64
	// service: the legs come from Join (a service such as SSH accepts
	// the clients), not from a device or source of the backend's own.
	service bool

	acceptDone chan struct{} // closed when the current accept loop returns

	c legCounters // cumulative over every leg it ever had
}

// view is an immutable snapshot of the legs and backends, swapped in on
// every change, so stats and observers read them without locks.
type view struct {
	legs     []*leg
	backends []backendView
}

// backendView is a backend as of the last change: its options and source
// address are copied so readers need no lock.
type backendView struct {
	b      *backend
	opts   LegOptions
	source string
}

// Tee joins one frontend to many legs. Create it with New; it runs until
// Close.
type Tee struct {
	opts     Options
	chunks   *chunkPool
	sized    sizedPools // small reads are copied into these (see fanout)
	inChunks *chunkPool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// closers are the goroutines running device and listener Closes,
	// which may hang: Close waits for them, bounded (see bounds.go).
	closers sync.WaitGroup

	// mu is the tee lock: stream offset, scrollback, legs and backends.
	mu     sync.Mutex
	closed bool
	// noAccept: StopAccepting ran (Shutdown): sources are closed and no
	// new client becomes a leg.
	noAccept bool
	offset   uint64
	scroll   scrollback
	legs     []*leg
	backends map[string]*backend
	nextLeg  uint64
	view     atomic.Pointer[view]
	// publishedOffset is Offset(): offset once every leg has been offered
	// the chunk that ends there (block legs waited for), read without the
	// tee lock.
	publishedOffset atomic.Uint64
	// offsetNext is offset, for readers without the tee lock (input
	// records: see record.go).
	offsetNext atomic.Uint64

	// pending is fanout's scratch list of block legs to wait for. Only
	// the frontend reader uses it, and there is one reader at a time
	// (the frontend loop waits for the old reader before starting a new
	// one), so it needs no lock and no per-chunk copy.
	pending []*leg
	// inline is fanout's scratch list of legs to write inline (see
	// leg.writeInline), likewise the reader's own.
	inline []*leg
	// arm is fanout's scratch list of coalescing legs whose flush timer
	// it starts after the inline writes (see leg.armLater).
	arm []*leg

	front frontendState
	// ctlTok is the control path's token (see control): the one thing
	// held across a frontend control call, and taken by nothing else.
	ctlTok chan struct{}
	swapCh chan *frontendSwap
	// frontDone is closed when the frontend loop, and so its reader, has
	// stopped: nothing more will be fanned out.
	frontDone chan struct{}
	// startOnce starts the frontend loop (Start), or, for a held tee
	// closed before Start, closes frontDone in its place.
	startOnce   sync.Once
	input       inputMerge
	pacing      atomic.Pointer[Pacing] // nil: input is written as fast as the device takes it
	inputHook   atomic.Pointer[func(chardev.InputAuthor, []byte)]
	hook        hookQueue // input for inputHook (inputhook.go)
	events      eventHub
	swapsDone   [swapKinds]atomic.Uint64
	swapsFailed [swapKinds]atomic.Uint64
	// swapTimes are the durations of successful swaps, by kind.
	swapTimes [swapKinds]durationHistogram
	// frz is the freeze of a process upgrade (freeze.go), under mu.
	frz freezeState
	// frozenIn is frz.frozen for acceptInput, read without the lock:
	// input a session that is not stopped types waits for Thaw.
	frozenIn atomic.Bool
	// carried is what a resumed tee still has to hand to legs and
	// backends as they come (carry.go), under mu; nil once thawed.
	carried *carriedState
}

// New starts a tee. The frontend is opened in the background: a device
// that is not there yet (a USB adapter not plugged in) is retried with
// backoff, and its state shows in Stats and events.
func New(opts Options) (*Tee, error) {
	if opts.Frontend == nil {
		return nil, errors.New("tee: a frontend is required")
	}
	opts = opts.withDefaults()
	t := &Tee{
		opts:      opts,
		chunks:    newChunkPool(opts.ReadSize),
		sized:     newSizedPools(opts.ReadSize),
		inChunks:  newChunkPool(inputChunkSize),
		backends:  map[string]*backend{},
		swapCh:    make(chan *frontendSwap),
		ctlTok:    make(chan struct{}, 1),
		frontDone: make(chan struct{}),
	}
	t.scroll = newScrollback(opts.Scrollback, t.chunks)
	t.resumeAt(opts.Resume)
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.view.Store(&view{})
	t.front.init(opts)
	t.input.init(opts)
	t.SetPacing(opts.InputPacing)
	t.startHook() // before anything can emit
	t.wg.Add(1)
	go t.frontendWriteLoop()
	if !opts.Hold {
		t.Start()
	}
	return t, nil
}

// Start opens the frontend and starts fanning its output out, for a tee
// made with Options.Hold; otherwise New has already called it. Calls after
// the first, or after Close, do nothing.
func (t *Tee) Start() {
	t.startOnce.Do(func() {
		t.wg.Add(1)
		go t.frontendLoop()
	})
}

// neverStarted closes frontDone for a held tee that is closed before it
// was started, so that Shutdown and Close need not know whether it ran.
func (t *Tee) neverStarted() {
	t.startOnce.Do(func() { close(t.frontDone) })
}

// Name is the tee's name.
func (t *Tee) Name() string { return t.opts.Name }

// Offset is the stream offset of the next output byte: every byte before
// it has been offered to every leg (queued, or dropped and counted).
func (t *Tee) Offset() uint64 { return t.publishedOffset.Load() }

// Scrollback returns a copy of the output the tee keeps for replay and the
// stream offset of its first byte.
func (t *Tee) Scrollback() ([]byte, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.scroll.last(t.scroll.size)
	return b, t.offset - uint64(len(b))
}

// fanout gives chunk c its stream offset and offers it to every leg. Legs
// with the block policy and a full queue are waited for after the tee lock
// is released, so a swap or detach never waits behind a slow leg.
func (t *Tee) fanout(c *chunk) {
	t.mu.Lock()
	c.off = t.offset
	t.offset += uint64(len(c.b))
	t.offsetNext.Store(t.offset)
	end := t.offset
	t.scroll.write(c)
	pending, inline, arm := t.pending[:0], t.inline[:0], t.arm[:0]
	for _, l := range t.legs {
		wait, in, a := l.offer(c)
		if wait {
			pending = append(pending, l)
		}
		if in {
			inline = append(inline, l)
		}
		if a {
			arm = append(arm, l)
		}
	}
	t.mu.Unlock()
	// Legs that were idle get the chunk written here, one non-blocking
	// attempt each: no writer goroutine to wake for a keystroke's echo.
	for _, l := range inline {
		l.writeInline()
	}
	// Then coalescing legs (captures) start their flush timers: after
	// the echo has gone out.
	for _, l := range arm {
		l.armFlush()
	}
	for _, l := range pending {
		l.pushBlocking(c)
	}
	clear(pending) // do not keep departed legs alive
	clear(inline)
	clear(arm)
	t.pending, t.inline, t.arm = pending[:0], inline[:0], arm[:0]
	t.publishedOffset.Store(end)
	t.chunks.release(c)
}

func (t *Tee) publishLocked() {
	v := &view{legs: t.viewLegsLocked(), backends: make([]backendView, 0, len(t.backends))}
	for _, b := range t.backends {
		bv := backendView{b: b, opts: b.opts}
		if b.source != nil {
			bv.source = b.source.Addr()
		}
		v.backends = append(v.backends, bv)
	}
	slices.SortFunc(v.backends, func(a, b backendView) int { return strings.Compare(a.b.name, b.b.name) })
	t.view.Store(v)
}

// viewLegsLocked is the leg list for a new view. A leg added at the end
// (an attach: a thousand clients connecting) extends the last view's list
// in place — views only read their own length of it — so attaching N
// clients costs O(N), not O(N²) in copies; any other change copies.
func (t *Tee) viewLegsLocked() []*leg {
	prev := t.view.Load().legs
	if n := len(prev); len(t.legs) == n+1 && slices.Equal(prev, t.legs[:n]) {
		return append(prev, t.legs[n])
	}
	return slices.Clone(t.legs)
}

func validName(name string) error {
	if name == "" {
		return errors.New("tee: a backend needs a name")
	}
	for _, r := range name {
		if r < ' ' || r == '/' || r == '#' || r == 0x7f {
			return fmt.Errorf("tee: backend name %q: no control characters, '/' or '#'", name)
		}
	}
	return nil
}

// reserve claims a backend name before its device is opened, so two
// attaches of one name cannot both succeed.
func (t *Tee) reserve(name string, opts LegOptions) (*backend, error) {
	if err := validName(name); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if _, ok := t.backends[name]; ok {
		return nil, fmt.Errorf("tee %s: %q: %w", t.opts.Name, name, ErrExists)
	}
	b := &backend{name: name, opts: opts}
	t.backends[name] = b
	t.publishLocked()
	return b, nil
}

func (t *Tee) unreserve(b *backend) {
	t.mu.Lock()
	if t.backends[b.name] == b {
		delete(t.backends, b.name)
		t.publishLocked()
	}
	t.mu.Unlock()
}

// Attach opens a single-stream device and attaches it as backend name. An
// open error is returned and nothing changes.
func (t *Tee) Attach(ctx context.Context, name string, opts LegOptions, open chardev.Opener) error {
	b, err := t.reserve(name, opts)
	if err != nil {
		return err
	}
	dev, err := open.Open(ctx)
	if err != nil {
		t.unreserve(b)
		return fmt.Errorf("tee %s: attach %s: %w", t.opts.Name, name, err)
	}
	if _, err := t.attachLeg(b, dev, opts, false); err != nil {
		t.unreserve(b)
		dev.Close()
		return err
	}
	return nil
}

// AttachSource attaches a leg source (a listener) as backend name: every
// client it accepts becomes a leg named "name#N".
func (t *Tee) AttachSource(name string, opts LegOptions, src chardev.Source) error {
	b, err := t.reserve(name, opts)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed || t.noAccept {
		t.mu.Unlock()
		t.unreserve(b)
		return ErrClosed
	}
	b.source = src
	b.acceptDone = make(chan struct{})
	done := b.acceptDone
	t.publishLocked()
	t.wg.Add(1)
	t.mu.Unlock()
	t.freezeIfFrozen(src)
	go t.acceptLoop(b, src, done)
	t.emit(Event{Kind: EventAttach, Backend: name, Reason: "listening on " + src.Addr()})
	return nil
}

// acceptLoop turns each client a source accepts into a leg, until the
// source is closed or replaced.
func (t *Tee) acceptLoop(b *backend, src chardev.Source, done chan struct{}) {
	defer t.wg.Done()
	defer close(done)
	bo := chardev.AcceptBackoff()
	for {
		dev, err := src.Accept()
		if errors.Is(err, chardev.ErrFrozen) && t.park() {
			continue
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) || t.ctx.Err() != nil {
				return
			}
			// EMFILE and friends: back off rather than spin; the source
			// is still ours until it is closed.
			t.emit(Event{Kind: EventError, Backend: b.name, Reason: "accept: " + err.Error()})
			if !bo.Wait(t.ctx.Done()) {
				return
			}
			continue
		}
		bo.Reset()
		t.mu.Lock()
		opts := b.opts
		t.mu.Unlock()
		if _, err := t.attachLeg(b, dev, opts, true); err != nil {
			dev.Close()
		}
	}
}

// attachLeg adds a started leg for dev to backend b at the current offset,
// with replay if asked.
func (t *Tee) attachLeg(b *backend, dev chardev.Chardev, opts LegOptions, fromSource bool) (*leg, error) {
	t.mu.Lock()
	if err := t.attachableLocked(b, fromSource); err != nil {
		t.mu.Unlock()
		return nil, err
	}
	l := t.newLegLocked(b, dev, opts, fromSource)
	t.mu.Unlock()
	t.startLeg(l)
	t.emit(l.attachEvent())
	return l, nil
}

// attachableLocked says why backend b can take no new leg, if it cannot:
// the tee closed, the backend detached (or replaced) while its device
// opened, or the tee stopped accepting clients (Shutdown).
func (t *Tee) attachableLocked(b *backend, fromSource bool) error {
	switch {
	case t.closed:
		return ErrClosed
	case t.backends[b.name] != b:
		return fmt.Errorf("tee %s: backend %s was detached while its device opened: %w", t.opts.Name, b.name, ErrNotFound)
	case fromSource && t.noAccept:
		return fmt.Errorf("tee %s: backend %s: no new clients, the tee is shutting down: %w", t.opts.Name, b.name, ErrClosed)
	}
	return nil
}

// attachEvent is the attach event of l: where it came from and, for a
// person, how they authenticated.
func (l *leg) attachEvent() Event {
	e := l.event(EventAttach, l.peer)
	e.Offset = l.c.first.Load()
	if id := l.ident; id != nil {
		e.Source, e.Auth, e.KeyFingerprint = id.Source, id.AuthMethod, id.KeyFingerprint
	}
	return e
}

// Join attaches dev as one more leg of the service backend name, which is
// created on first use and has no device or source of its own: a service
// (SSH, the browser console) accepts and authenticates clients itself and
// joins each session here. Legs are named "name#N", or "name:user#N" when
// dev carries an identity (chardev.Identified). opts apply to this leg
// (replay, queue, overflow); for an identified leg, typing also needs its
// role to be operate or more. It fails with ErrExists if name is a
// configured backend, and with ErrClosed once the tee stops accepting.
// Join returns the leg's name; the leg leaves like any other (its device
// fails or is closed, or Detach(name) removes every session).
func (t *Tee) Join(name string, opts LegOptions, dev chardev.Chardev) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	t.mu.Lock()
	if t.closed || t.noAccept {
		t.mu.Unlock()
		return "", ErrClosed
	}
	b, ok := t.backends[name]
	if ok && !b.service {
		t.mu.Unlock()
		return "", fmt.Errorf("tee %s: %q is a configured backend: %w", t.opts.Name, name, ErrExists)
	}
	if !ok {
		b = &backend{name: name, opts: opts, service: true}
		t.backends[name] = b
		t.seedCarriedLocked(b)
	}
	l := t.newLegLocked(b, dev, opts, true)
	t.mu.Unlock()
	t.startLeg(l)
	t.emit(l.attachEvent())
	return l.name, nil
}

// newLegLocked builds a leg starting at the current offset (minus replay)
// and links it in; the caller starts it after releasing the tee lock.
func (t *Tee) newLegLocked(b *backend, dev chardev.Chardev, opts LegOptions, fromSource bool) *leg {
	if t.carried != nil && !fromSource {
		if _, owed := t.carried.legs[b.name]; owed {
			// A single-stream leg the old process carried: it has
			// had everything before what it owes, so no replay.
			opts.Replay = 0
		}
	}
	replay := t.replayLocked(dev, opts)
	start := t.offset - uint64(len(replay))
	l := newLeg(t, b, dev, opts, start)
	t.nextLeg++
	l.id = t.nextLeg
	l.name = b.name
	if fromSource {
		b.seq++
		l.name = fmt.Sprintf("%s#%d", b.name, b.seq)
		if l.ident != nil {
			l.name = fmt.Sprintf("%s:%s#%d", b.name, l.ident.User, b.seq)
		}
	}
	if len(replay) > 0 {
		c := newChunk(start, replay)
		l.pushLocked(c)
		c.refs.Add(-1) // newChunk's own reference; the queue holds one
	}
	if !fromSource {
		t.takeOwedLocked(l)
	}
	t.legs = append(t.legs, l)
	b.legs = append(b.legs, l)
	t.publishLocked()
	return l
}

// replayLocked is what a new leg gets before live output: from where a
// resuming device asks (as far back as the scrollback holds), else the
// backend's replay.
func (t *Tee) replayLocked(dev chardev.Chardev, opts LegOptions) []byte {
	if r, ok := dev.(chardev.Resumer); ok {
		if want, ok := r.ResumeFrom(); ok && want <= t.offset {
			return t.scroll.last(int(min(t.offset-want, math.MaxInt32)))
		}
	}
	if opts.Replay > 0 {
		return t.scroll.last(opts.Replay)
	}
	return nil
}

// startLeg hands the device its control handle and its start offset, and
// starts the leg's goroutines.
func (t *Tee) startLeg(l *leg) {
	if ln, ok := l.dev.(chardev.LegNamer); ok {
		ln.SetLegName(l.name)
	}
	if ca, ok := l.dev.(chardev.ControlAware); ok {
		ca.SetControl(&legControl{t: t, l: l})
	}
	if l.tracker != nil {
		l.tracker.StreamAt(l.c.first.Load())
	}
	t.wg.Add(1) // done when the read loop ends (runReader)
	if !t.deferReader(l) {
		go l.runReader(false)
	}
	// The writer runs only while there is something to write (see
	// wakeLocked): an idle leg has one goroutine, its reader.
	l.mu.Lock()
	l.started = true
	if l.hasWorkLocked() {
		l.wakeLocked()
	}
	l.mu.Unlock()
}

// runLeg runs the leg's writer and, when it stops, removes the leg unless
// a swap owns its end.
func (t *Tee) runLeg(l *leg) {
	defer t.wg.Done()
	if !l.legWriteLoop() {
		return // idle: the next thing to write starts a writer again
	}
	// Exactly one of this goroutine and a swap finishes the leg: whoever
	// marks it first under its lock.
	l.mu.Lock()
	swapping := l.swapping
	l.finishing = !swapping
	l.mu.Unlock()
	if !swapping {
		t.finishLeg(l, nil)
	}
}

// finishLeg closes the leg's device, waits for its reader, unlinks it and
// releases what it still held. reason overrides the recorded failure.
func (t *Tee) finishLeg(l *leg, reason error) {
	if reason == nil {
		reason = l.failure()
	}
	if reason == nil {
		reason = errors.New("finished")
	}
	l.fail(reason)
	if t.undefer(l) {
		// Finished before the first Thaw: the reader reads the closed
		// (or frozen) device and ends.
		go l.runReader(true)
	}
	<-l.writerDone.done()
	<-l.readerDone.done()
	t.mu.Lock()
	t.legs = slices.DeleteFunc(t.legs, func(x *leg) bool { return x == l })
	l.backend.legs = slices.DeleteFunc(l.backend.legs, func(x *leg) bool { return x == l })
	t.publishLocked()
	t.mu.Unlock()
	l.releaseQueue()
	t.input.legGone(l)
	e := l.event(EventDetach, reason.Error())
	e.Offset = l.c.next.Load()
	t.emit(e)
	l.gone.fire()
}

// Detach removes backend name: its source stops accepting and all its legs
// are closed. It returns when they are gone and their devices' Close has
// returned — a capture file flushed, a pty's link removed. It waits at
// most the drain timeout for the source and the legs to stop and as long
// again for the devices' Close: a device that hangs cannot hang the
// caller (an error event says what was left running; the backend is
// detached all the same).
func (t *Tee) Detach(name string) error {
	t.mu.Lock()
	b, ok := t.backends[name]
	if !ok {
		t.mu.Unlock()
		return fmt.Errorf("tee %s: detach %q: %w", t.opts.Name, name, ErrNotFound)
	}
	delete(t.backends, name)
	t.publishLocked()
	src, done := b.takeSourceLocked()
	legs := slices.Clone(b.legs)
	timeout := t.opts.DrainTimeout
	t.mu.Unlock()
	dl := t.newDeadline("detach", timeout)
	defer dl.stop()
	if src != nil {
		// Waited for (bounded): once Detach returns the address is
		// free for a reload to bind again.
		dl.wait(t.closeAsync(src), name, "", "the listener's close")
	}
	dl.wait(done, name, "", "the listener's accept loop")
	for _, l := range legs {
		l.fail(errDetached)
	}
	for _, l := range legs {
		if !dl.wait(l.gone.done(), name, l.name, "the leg's device I/O") {
			legs = slices.DeleteFunc(legs, func(x *leg) bool { return x == l })
		}
	}
	t.waitDevicesClosed(legs, timeout)
	return nil
}

// waitDevicesClosed waits until the Close of every leg's device has
// returned, for at most timeout in all: a device whose Close hangs must
// not hang the caller (the API) forever. It is told by an error event.
func (t *Tee) waitDevicesClosed(legs []*leg, timeout time.Duration) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for _, l := range legs {
		select {
		case <-l.devClosed.done():
		case <-timer.C:
			t.emit(Event{Kind: EventError, Backend: l.backend.name, Leg: l.name,
				Reason: fmt.Sprintf("device close still running after %s; not waiting for it", timeout)})
			return
		}
	}
}

// takeSourceLocked returns b's source for its caller to close, unless
// someone already closes it, and the channel closed when its accept loop
// has returned (nil for a single-stream backend).
func (b *backend) takeSourceLocked() (chardev.Source, chan struct{}) {
	if b.source == nil {
		return nil, nil
	}
	if b.sourceClosed {
		return nil, b.acceptDone
	}
	b.sourceClosed = true
	return b.source, b.acceptDone
}

// StopAccepting closes every source (listener) of the tee and waits until
// their accept loops have returned: from then on a client connecting is
// refused, and none becomes a leg. Clients already attached stay and keep
// receiving. Sources cannot be attached, swapped or rebound afterwards.
// Shutdown calls it first, so no client is attached during the drain only
// to be closed at its end.
func (t *Tee) StopAccepting() {
	t.mu.Lock()
	t.noAccept = true
	var srcs []chardev.Source
	var dones []chan struct{}
	for _, b := range t.backends {
		src, done := b.takeSourceLocked()
		if src != nil {
			srcs = append(srcs, src)
		}
		if done != nil {
			dones = append(dones, done)
		}
	}
	t.mu.Unlock()
	for _, s := range srcs {
		s.Close()
	}
	for _, d := range dones {
		<-d
	}
}

// sourceBackendLocked finds the listening backend name for op, which
// changes its source: refused once the tee stops accepting.
func (t *Tee) sourceBackendLocked(op, name string) (*backend, error) {
	b, ok := t.backends[name]
	switch {
	case t.closed || t.noAccept:
		return nil, ErrClosed
	case !ok:
		return nil, fmt.Errorf("tee %s: %s %q: %w", t.opts.Name, op, name, ErrNotFound)
	case b.source == nil:
		return nil, fmt.Errorf("tee %s: %s %q: backend is a single stream, not a source", t.opts.Name, op, name)
	}
	return b, nil
}

// SwapSource replaces backend name's source (a listener moved to a new
// address) while the clients it already accepted stay attached. opts, when
// not nil, applies to legs accepted from now on.
func (t *Tee) SwapSource(name string, src chardev.Source, opts *LegOptions) error {
	t.mu.Lock()
	b, err := t.sourceBackendLocked("swap source", name)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	old, oldDone := b.takeSourceLocked()
	b.source, b.sourceClosed = src, false
	b.acceptDone = make(chan struct{})
	if opts != nil {
		b.opts = *opts
	}
	done := b.acceptDone
	t.publishLocked()
	t.wg.Add(1)
	t.mu.Unlock()
	start := time.Now()
	go t.acceptLoop(b, src, done)
	oldAddr := "(closed)"
	// Bounded: a listener whose Close hangs cannot hang the caller.
	dl := t.newDeadline("swap source", t.drainTimeout())
	if old != nil {
		oldAddr = old.Addr()
		dl.wait(t.closeAsync(old), name, "", "the old listener's close")
	}
	dl.wait(oldDone, name, "", "the old listener's accept loop")
	dl.stop()
	t.swapsDone[swapSource].Add(1)
	t.swapTimes[swapSource].observe(time.Since(start))
	t.emit(Event{Kind: EventSwap, Backend: name, Reason: fmt.Sprintf("source %s -> %s", oldAddr, src.Addr())})
	return nil
}

// SetLegOptions changes backend name's options in place, for its current
// legs and those it accepts later, without reopening anything: queue
// bound, overflow policy, input and control rights. Replay applies to
// legs attached from now on. It waits for no device: it takes only the
// tee and leg locks, which are never held across device I/O.
func (t *Tee) SetLegOptions(name string, opts LegOptions) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.backends[name]
	if !ok {
		return fmt.Errorf("tee %s: options for %q: %w", t.opts.Name, name, ErrNotFound)
	}
	b.opts = opts
	for _, l := range b.legs {
		o := opts
		l.opts.Store(&o)
		l.mu.Lock()
		l.spaceFree.Broadcast() // a larger queue may unblock the frontend
		l.mu.Unlock()
	}
	t.publishLocked()
	return nil
}

// RebindSource replaces backend name's source when the new one must bind
// the address the old one holds (a listener whose address did not change
// but whose other options did): the old source is closed first, then open
// is called. Clients already accepted stay attached. If open fails the
// backend keeps its legs but accepts no one until the next swap, and the
// error is returned.
func (t *Tee) RebindSource(name string, open func() (chardev.Source, error), opts *LegOptions) error {
	t.mu.Lock()
	b, err := t.sourceBackendLocked("rebind", name)
	if err != nil {
		t.mu.Unlock()
		return err
	}
	old, oldDone := b.takeSourceLocked()
	t.mu.Unlock()
	start := time.Now()
	if old != nil {
		old.Close()
	}
	<-oldDone
	src, err := open()
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.swapsFailed[swapSource].Add(1)
		return fmt.Errorf("tee %s: rebind %s: %w", t.opts.Name, name, err)
	}
	if t.closed || t.noAccept || t.backends[name] != b {
		src.Close()
		return fmt.Errorf("tee %s: rebind %s: backend went away", t.opts.Name, name)
	}
	b.source, b.sourceClosed = src, false
	b.acceptDone = make(chan struct{})
	if opts != nil {
		b.opts = *opts
	}
	t.publishLocked()
	t.wg.Add(1)
	go t.acceptLoop(b, src, b.acceptDone)
	t.swapsDone[swapSource].Add(1)
	t.swapTimes[swapSource].observe(time.Since(start))
	t.emit(Event{Kind: EventSwap, Backend: name, Reason: "source rebound on " + src.Addr()})
	return nil
}

// Configure changes the tee settings that can change while it runs: input
// mode and exclusive idle time, input buffer, drain timeout and reconnect
// backoff. Frontend, failover, scrollback and read size are not touched.
func (t *Tee) Configure(o Options) {
	o = o.withDefaults()
	t.mu.Lock()
	t.opts.DrainTimeout = o.DrainTimeout
	t.opts.Reconnect = o.Reconnect
	t.mu.Unlock()
	m := &t.input
	m.mu.Lock()
	if m.mode != o.Input {
		m.setHolderLocked(nil)
	}
	m.mode, m.idle, m.limit = o.Input, o.ExclusiveIdle, o.InputBuffer
	m.mu.Unlock()
	t.SetPacing(o.InputPacing)
}

// Device returns the device of single-stream backend name (to read a ring
// buffer, reopen a capture file).
func (t *Tee) Device(name string) (chardev.Chardev, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.backends[name]
	if !ok || b.source != nil || len(b.legs) == 0 {
		return nil, false
	}
	return b.legs[len(b.legs)-1].dev, true
}

// Devices calls fn for every attached leg's device (SIGUSR1 reopen).
func (t *Tee) Devices(fn func(backend string, dev chardev.Chardev)) {
	for _, l := range t.view.Load().legs {
		fn(l.backend.name, l.dev)
	}
}

// Shutdown stops accepting clients (StopAccepting) and reading the
// frontend, lets every leg write what it was already given (block legs
// lose nothing) until ctx ends, then closes.
func (t *Tee) Shutdown(ctx context.Context) error {
	t.StopAccepting()
	t.front.stopReading(t)
	t.neverStarted()
	// Whatever the reader already took from the device is owed to the
	// legs: wait until it has been fanned out before cutting. A reader
	// stuck behind a block leg that never drains is cut off by ctx.
	select {
	case <-t.frontDone:
	case <-ctx.Done():
		t.Close()
		return fmt.Errorf("tee %s: shutdown: %w", t.opts.Name, ctx.Err())
	}
	t.mu.Lock()
	legs := slices.Clone(t.legs)
	for _, l := range legs {
		l.mu.Lock()
		if l.end == math.MaxUint64 {
			l.end = t.offset
		}
		l.overlap = false
		l.wakeLocked()
		l.mu.Unlock()
	}
	t.mu.Unlock()
	var err error
	for _, l := range legs {
		select {
		case <-l.gone.done():
		case <-l.writerDone.done():
		case <-ctx.Done():
			err = fmt.Errorf("tee %s: shutdown: %w", t.opts.Name, ctx.Err())
		}
	}
	t.Close()
	return err
}

// Close stops everything: the frontend, every source and leg. Its waits
// are bounded: at most the drain timeout for listeners and legs to stop,
// as long again for the tee's goroutines and as long again for device
// Closes. No goroutine of the tee outlives it unless a device hangs past
// those bounds (an error event says so; that goroutine ends when the
// device lets go).
func (t *Tee) Close() error {
	t.mu.Lock()
	timeout := t.opts.DrainTimeout
	if t.closed {
		t.mu.Unlock()
		t.waitStopped(timeout)
		t.events.waitHook()
		return nil
	}
	t.closed = true
	var sources []chardev.Source
	var dones []chan struct{}
	for _, b := range t.backends {
		src, done := b.takeSourceLocked()
		if src != nil {
			sources = append(sources, src)
		}
		if done != nil {
			dones = append(dones, done)
		}
	}
	legs := slices.Clone(t.legs)
	t.mu.Unlock()

	t.cancel()
	t.neverStarted()
	dl := t.newDeadline("close", timeout)
	var closed []<-chan struct{}
	for _, s := range sources {
		closed = append(closed, t.closeAsync(s))
	}
	for _, c := range closed {
		dl.wait(c, "", "", "a listener's close")
	}
	for _, d := range dones {
		dl.wait(d, "", "", "a listener's close")
	}
	for _, l := range legs {
		l.fail(errTeeClosed)
	}
	for _, l := range legs {
		dl.wait(l.gone.done(), l.backend.name, l.name, "the leg's device I/O")
	}
	dl.stop()
	t.front.close()
	t.input.close()
	t.closeHook()
	t.waitStopped(timeout)
	t.mu.Lock()
	t.scroll.reset()
	t.mu.Unlock()
	t.events.closeAll()
	t.events.waitHook()
	return nil
}

// waitStopped waits, bounded, for the tee's goroutines and then for its
// device Closes.
func (t *Tee) waitStopped(timeout time.Duration) {
	dl := t.newDeadline("close", timeout)
	dl.wait(waitGroupDone(&t.wg), "", "", "a goroutine in device I/O")
	dl.stop()
	dl = t.newDeadline("close", timeout)
	dl.wait(waitGroupDone(&t.closers), "", "", "a device's close")
	dl.stop()
}

func (t *Tee) drainTimeout() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opts.DrainTimeout
}
