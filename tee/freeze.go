package tee

// This file is the engine's side of a process upgrade (see package
// handover and DESIGN.md): Freeze stops the tee at a cut offset X without
// closing anything, Thaw resumes it (rollback), and Resume/Adopt rebuild
// it in the new process at X. It is the leg handover applied to the whole
// process: the old side stops taking bytes at X and drains what it owes,
// the new side continues from X.

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"chartee/chardev"
)

// freezeState is the tee's freeze: while frozen, reader loops whose device
// returned chardev.ErrFrozen park until thaw is closed.
type freezeState struct {
	frozen bool
	thaw   chan struct{}
	parked int
	devs   map[any]bool // what Freeze froze, to thaw
	// wdevs are the devices whose writes the cut froze (cutOwed), to
	// thaw; cut says the legs' writers and the input writer stopped.
	wdevs map[any]bool
	cut   bool
	cutAt time.Time // when the drain bound expired
	// resumed: a resumed tee before its first Thaw. Its legs whose
	// reader can wait without a goroutine (chardev.ReadWaiter: an
	// adopted idle client) start no reader until Thaw (idle), instead
	// of a goroutine each that reads, gets ErrFrozen and parks: with a
	// thousand clients those goroutines were a good part of the
	// upgrade's pause. Nothing waits for them to park (no Freeze runs
	// before the first Thaw). idle are the legs whose reader waits for
	// Thaw unstarted: those, and those parked by parkIdle.
	resumed bool
	idle    []*leg
}

// Frozen is a tee stopped at a cut: every device and source is frozen,
// every leg has written everything before Offset, and input typed before
// the freeze has reached the frontend.
type Frozen struct {
	Offset     uint64
	Scrollback []byte // the last bytes before Offset, for replay
	Frontend   chardev.Chardev
	Backends   []FrozenBackend
	// BytesOut and BytesIn are the frontend's byte counters.
	BytesOut, BytesIn uint64
	// Input is typed input not yet written to the frontend when the
	// drain bound expired; the new process writes it first.
	Input []Input
	// WriteLock is the write-lock holder (nil: none).
	WriteLock *WriteLock
	// Line is the line state to replay.
	Line *LineState
}

// Carried is how many bytes the new process must write first: output
// legs still owed at the cut, and typed input.
func (fz *Frozen) Carried() uint64 {
	var n uint64
	for _, b := range fz.Backends {
		for _, l := range b.Legs {
			n += l.Owed.Bytes()
		}
	}
	for _, in := range fz.Input {
		n += uint64(len(in.Bytes))
	}
	return n
}

// FrozenBackend is one backend of a frozen tee.
type FrozenBackend struct {
	Name   string
	Source chardev.Source // nil for a single-stream backend
	Seq    uint64         // the last leg number given
	Legs   []FrozenLeg
	// Counters are the backend's cumulative counters, continued by
	// the new process (Prometheus counters do not reset).
	Counters Counters
}

// Counters are a leg's or backend's byte counters.
type Counters struct {
	Out       uint64 `json:"out"`
	In        uint64 `json:"in"`
	Dropped   uint64 `json:"dropped"`
	Discarded uint64 `json:"discarded"`
}

func (c *legCounters) export() Counters {
	return Counters{Out: c.out.Load(), In: c.in.Load(), Dropped: c.dropped.Load(), Discarded: c.discarded.Load()}
}

func (c *legCounters) seed(v Counters) {
	c.out.Store(v.Out)
	c.in.Store(v.In)
	c.dropped.Store(v.Dropped)
	c.discarded.Store(v.Discarded)
}

// FrozenLeg is one leg of a frozen tee.
type FrozenLeg struct {
	Name     string
	Dev      chardev.Chardev
	Counters Counters
	// Owed is what the leg had not written when the drain bound
	// expired.
	Owed Owed
	// Frozen says the leg stopped exactly at the cut and can be
	// carried: its device is a chardev.Freezer, and a write in progress
	// when the drain bound expired could be cut short. One that is not
	// (an SSH or browser session, a stalled telnet client) is closed
	// with a notice after the handover instead (CloseLegs).
	Frozen bool
}

// Resume makes a new tee continue a stream a tee in another process
// froze at Offset: its first byte gets Offset, and Scrollback (the bytes
// just before it) is what new legs are replayed.
type Resume struct {
	Offset     uint64
	Scrollback []byte
	// BytesOut and BytesIn continue the frontend's byte counters, so
	// that counters exported to Prometheus do not reset.
	BytesOut, BytesIn uint64
	// Legs is what each leg owed at the cut, by leg name: the leg of
	// that name attached to this tee (Adopt, Attach) writes it first.
	Legs map[string]Owed
	// Counters continue the counters of backends created after the
	// resume (a service backend such as ssh, on its first join).
	Counters map[string]Counters
	// Input is typed input to write to the frontend first, and
	// WriteLock the holder to restore, both at Thaw.
	Input     []Input
	WriteLock *WriteLock
	// Line is the line state to replay onto the frontend.
	Line *LineState
}

// resumeAt seeds the stream offset and scrollback (New, before anything
// runs).
func (t *Tee) resumeAt(r *Resume) {
	if r == nil {
		return
	}
	start := r.Offset - uint64(len(r.Scrollback))
	if len(r.Scrollback) > 0 {
		c := newChunk(start, r.Scrollback)
		t.scroll.write(c)
		c.release()
	}
	// A resumed tee starts frozen: what it is handed (AttachSource,
	// Adopt) stays frozen until Thaw, called once the old process has
	// committed the handover.
	t.frz = freezeState{frozen: true, thaw: make(chan struct{}), devs: map[any]bool{}, resumed: true}
	t.offset = r.Offset
	t.front.bytesOut.Store(r.BytesOut)
	t.front.bytesIn.Store(r.BytesIn)
	t.offsetNext.Store(r.Offset)
	t.publishedOffset.Store(r.Offset)
	t.carryIn(r)
}

// park is called by a reader whose device returned chardev.ErrFrozen. It
// waits for Thaw and reports true, or false when the tee closes. Outside
// a freeze (a Thaw raced the error) it returns true at once.
func (t *Tee) park() bool {
	t.mu.Lock()
	if !t.frz.frozen {
		t.mu.Unlock()
		return true
	}
	thaw := t.frz.thaw
	t.frz.parked++
	t.mu.Unlock()
	select {
	case <-thaw:
	case <-t.ctx.Done():
		return false
	}
	return true
}

// waitThaw waits while the tee is frozen: true once thawed, false when it
// closes (or the process exits after handing over).
func (t *Tee) waitThaw() bool {
	t.mu.Lock()
	thaw := t.frz.thaw
	frozen := t.frz.frozen
	t.mu.Unlock()
	if !frozen {
		return true
	}
	select {
	case <-thaw:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// Freeze stops the tee at a cut for a process upgrade and returns what a
// new process needs to continue it. Every device and source must be a
// chardev.Freezer; the frontend must be up and no swap running. Legs
// drain to the cut and typed input goes to the frontend until ctx's
// deadline (the drain timeout); what a leg still owes then, and input not
// yet written, is cut (a write in progress is stopped through
// chardev.WriteFreezer) and carried in the Frozen for the new process to
// write first. A leg whose device is not a Freezer (an SSH or browser
// session) is not stopped: it cannot be carried, and is closed with a
// notice once the new process has taken over (CloseLegs). On error the
// tee is thawed, never left half-frozen.
func (t *Tee) Freeze(ctx context.Context) (*Frozen, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, ErrClosed
	}
	if t.frz.frozen {
		t.mu.Unlock()
		return nil, fmt.Errorf("tee %s: already frozen", t.opts.Name)
	}
	t.frz = freezeState{frozen: true, thaw: make(chan struct{}), devs: map[any]bool{}}
	t.mu.Unlock()
	fz, err := t.freeze(ctx)
	if err != nil {
		t.Thaw()
		return nil, fmt.Errorf("tee %s: freeze: %w", t.opts.Name, err)
	}
	return fz, nil
}

func (t *Tee) freeze(ctx context.Context) (*Frozen, error) {
	t.frozenIn.Store(true)
	// Freeze everything, then wait until every reader has parked, typed
	// input has reached the frontend and every leg has written all
	// before the cut; a client accepted meanwhile is one more leg to
	// freeze, so go round until nothing new appears.
	err := t.settle(ctx, func() bool { return t.inputWritten() && t.legsDrained() })
	if err == nil {
		return t.export(), nil
	}
	if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		return nil, err
	}
	// The drain bound expired: cut what is still owed where it stands.
	// That also frees a frontend reader waiting for room in a stalled
	// block leg: the chunk it holds is owed like the rest.
	cctx, cancel := context.WithTimeout(context.Background(), cutWait)
	defer cancel()
	if err := t.settle(cctx, t.cutOwed); err != nil {
		return nil, err
	}
	return t.export(), nil
}

// settle freezes every device and source not frozen yet and waits until
// all readers have parked and done reports true, again while new legs
// appear.
func (t *Tee) settle(ctx context.Context, done func() bool) error {
	for {
		want, err := t.freezeAll()
		if err != nil {
			return err
		}
		parked := 0
		err = t.waitUntil(ctx, "waiting for the readers to stop at the cut", func() bool {
			// Count the parked readers before looking at what is
			// done: a reader queues what it read before it parks, so
			// once all have parked, done sees all of it. (Looked at
			// the other way round, input queued just after done
			// would be carried and written by this process too.)
			t.mu.Lock()
			parked = t.frz.parked
			t.mu.Unlock()
			ok := done() // not after &&: cutOwed must run every round
			return ok && parked >= want
		})
		if err != nil {
			if parked < want {
				return fmt.Errorf("%d of %d readers (frontend, listeners, legs) stopped: %w", parked, want, err)
			}
			return err
		}
		if again, _ := t.freezeAll(); again == want {
			return nil
		}
	}
}

// freezeAll freezes every device and source not frozen yet and returns
// how many readers must park: the frontend's, one per leg, one per source.
func (t *Tee) freezeAll() (int, error) {
	f := &t.front
	f.mu.Lock()
	front := f.dev
	f.mu.Unlock()
	if front == nil {
		return 0, errors.New("the frontend is down (reconnecting); try again once it is up")
	}
	items := []struct {
		what string
		v    any
	}{{"frontend", front}}
	t.mu.Lock()
	for _, b := range t.backends {
		if b.source != nil {
			items = append(items, struct {
				what string
				v    any
			}{"backend " + b.name, b.source})
		}
	}
	for _, l := range t.legs {
		l.mu.Lock()
		busy := l.held || l.swapping || l.overlap
		failed := l.failed != nil
		l.mu.Unlock()
		if busy {
			t.mu.Unlock()
			return 0, fmt.Errorf("leg %s: a swap is running; try again when it is done", l.name)
		}
		if _, ok := l.dev.(chardev.Freezer); !ok || failed {
			// Not stopped: a session that cannot be carried (its
			// input waits for Thaw in acceptInput), or a leg on its
			// way out.
			continue
		}
		items = append(items, struct {
			what string
			v    any
		}{"leg " + l.name, l.dev})
	}
	var todo []any
	for _, it := range items {
		if !t.frz.devs[it.v] {
			if _, ok := it.v.(chardev.Freezer); !ok {
				t.mu.Unlock()
				return 0, fmt.Errorf("%s: %s cannot be frozen at a cut", it.what, chardev.Describe(it.v))
			}
			t.frz.devs[it.v] = true
			todo = append(todo, it.v)
		}
	}
	t.mu.Unlock()
	for _, v := range todo {
		if err := chardev.Freeze(v); err != nil {
			return 0, fmt.Errorf("%s: %w", chardev.Describe(v), err)
		}
	}
	return len(items), nil
}

// freezePoll is how often Freeze looks at what it waits for, after
// freezeSpin of looking continually.
const (
	freezePoll = time.Millisecond
	freezeSpin = time.Millisecond
)

// waitUntil waits until done holds. For the first freezeSpin it checks
// continually, yielding the processor in between: a freeze is part of an
// upgrade's output pause, what it waits for (readers parking, a leg's
// last write) usually takes microseconds, and a Go timer shorter than a
// millisecond sleeps about a millisecond anyway.
func (t *Tee) waitUntil(ctx context.Context, what string, done func() bool) error {
	spin := time.Now().Add(freezeSpin)
	for !done() {
		if time.Now().Before(spin) && ctx.Err() == nil && t.ctx.Err() == nil {
			runtime.Gosched()
			continue
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-t.ctx.Done():
			return ErrClosed
		case <-time.After(freezePoll):
		}
	}
	return nil
}

func (t *Tee) inputWritten() bool {
	m := &t.input
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.q.len() == 0 && !m.writing
}

func (t *Tee) legsDrained() bool {
	t.mu.Lock()
	legs := t.legs
	t.mu.Unlock()
	for _, l := range legs {
		l.mu.Lock()
		done := l.failed != nil || (l.q.len() == 0 && l.batch == 0 && len(l.notices) == 0 && len(l.records) == 0)
		l.mu.Unlock()
		if !done {
			return false
		}
	}
	return true
}

// cutWait bounds how long, once the drain bound has expired, the writes
// cut short by FreezeWrite (or writers between two writes) and a
// frontend reader waiting for room take to stop.
var cutWait = 5 * time.Second

// cutOwed stops the input writer and the writers of the legs being
// carried where they are: a write in progress is cut short through
// chardev.WriteFreezer, and what is left queued is what export carries.
// It reports whether all have stopped; called until they have. A write
// that cannot be cut (the device has no WriteFreezer) and does not
// return fails the freeze: its bytes are neither written nor carriable.
func (t *Tee) cutOwed() bool {
	t.mu.Lock()
	if t.frz.wdevs == nil {
		t.frz.wdevs = map[any]bool{}
		t.frz.cutAt = time.Now()
	}
	grace := time.Since(t.frz.cutAt) > cutGrace
	legs := t.legs
	t.mu.Unlock()
	m := &t.input
	m.mu.Lock()
	m.cut = true
	writing := m.writing
	m.mu.Unlock()
	if writing {
		t.freezeWrite(t.frontDev())
	}
	stopped := !writing
	for _, l := range legs {
		if _, ok := l.dev.(chardev.Freezer); !ok {
			continue // closed, not carried: it may go on draining
		}
		l.mu.Lock()
		if !l.wfrozen {
			l.wfrozen = true
			l.spaceFree.Broadcast() // a reader waiting for room queues past it
		}
		busy := l.writerOn && l.failed == nil && !l.uncut
		l.mu.Unlock()
		if !busy || t.freezeWrite(l.dev) {
			stopped = stopped && !busy
			continue
		}
		if !grace {
			stopped = false
			continue
		}
		// A write its device cannot cut, still going: what the peer
		// got of it is unknown, so the leg cannot be carried. It is
		// closed with a notice after the handover instead.
		l.mu.Lock()
		l.uncut = true
		l.mu.Unlock()
	}
	return stopped
}

// cutGrace is how long cutOwed waits for a write its device cannot cut
// before it gives up carrying the leg.
var cutGrace = 250 * time.Millisecond

// freezeWrite cuts v's write in progress, once, noting it for Thaw, and
// reports whether v's writes are cut (false: v cannot cut a write).
func (t *Tee) freezeWrite(v any) bool {
	t.mu.Lock()
	done := v != nil && t.frz.wdevs[v]
	t.mu.Unlock()
	if done {
		return true
	}
	if v == nil || chardev.FreezeWrite(v) != nil {
		return false
	}
	t.mu.Lock()
	t.frz.wdevs[v] = true
	t.mu.Unlock()
	return true
}

// export describes the frozen tee.
func (t *Tee) export() *Frozen {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := &t.front
	f.mu.Lock()
	fz := &Frozen{Offset: t.offset, Frontend: f.dev, BytesOut: f.bytesOut.Load(), BytesIn: f.bytesIn.Load()}
	f.mu.Unlock()
	fz.Scrollback = t.scroll.last(t.scroll.size)
	for _, b := range t.backends {
		fb := FrozenBackend{Name: b.name, Source: b.source, Seq: b.seq, Counters: b.c.export()}
		for _, l := range b.legs {
			l.mu.Lock()
			if l.failed != nil {
				l.mu.Unlock()
				continue // leaving: its client hung up
			}
			fl := FrozenLeg{Name: l.name, Dev: l.dev, Counters: l.c.export()}
			if _, ok := l.dev.(chardev.Freezer); ok && !l.uncut {
				fl.Frozen, fl.Owed = true, l.exportOwedLocked()
			}
			l.mu.Unlock()
			fb.Legs = append(fb.Legs, fl)
		}
		fz.Backends = append(fz.Backends, fb)
	}
	fz.Input = t.exportInput()
	fz.WriteLock = t.exportLock()
	fz.Line = t.exportLine()
	return fz
}

// Thaw resumes a frozen tee exactly where Freeze stopped it (a rolled
// back upgrade): readers read on from the same kernel buffers.
func (t *Tee) Thaw() {
	t.mu.Lock()
	if !t.frz.frozen {
		t.mu.Unlock()
		return
	}
	devs, wdevs := t.frz.devs, t.frz.wdevs
	thaw, idle := t.frz.thaw, t.frz.idle
	t.frz = freezeState{}
	t.carryOutLocked()
	legs := append([]*leg(nil), t.legs...)
	t.mu.Unlock()
	for v := range wdevs {
		chardev.ThawWrite(v)
	}
	m := &t.input
	m.mu.Lock()
	m.cut = false
	m.ready.Broadcast()
	m.mu.Unlock()
	for _, l := range legs {
		l.mu.Lock()
		l.wfrozen, l.uncut = false, false
		if l.hasWorkLocked() {
			l.wakeLocked()
		}
		l.mu.Unlock()
	}
	t.frozenIn.Store(false)
	for v := range devs {
		chardev.Thaw(v)
	}
	close(thaw)
	if len(idle) > 0 {
		// After the thaw: what the tee owes goes out first, and the
		// clients' waits are armed meanwhile, by one goroutine.
		go t.armIdle(idle)
	}
}

// deferReader reports whether l's reader waits for Thaw unstarted (see
// freezeState.resumed); startLeg starts it otherwise.
func (t *Tee) deferReader(l *leg) bool {
	if l.waiter == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.frz.frozen || !t.frz.resumed {
		return false
	}
	l.readDeferred = true
	t.frz.idle = append(t.frz.idle, l)
	return true
}

// parkIdle parks l's reader without a goroutine if the tee is frozen and
// so is l's device: it was waiting for input without one (its device was
// woken by the freeze, or input came during it: that stays in the kernel,
// unread, like any input after the cut). Thaw, or the leg's end, starts it
// again. A leg on its way out (its close woke it) is not parked: its
// reader reads the error and ends, as it would have parked or ended
// before, so the parked count stays one per frozen reader.
func (t *Tee) parkIdle(l *leg) bool {
	if _, ok := l.dev.(chardev.Freezer); !ok || l.failure() != nil {
		return false // (only Freezers are keys of frz.devs)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.frz.frozen || !t.frz.devs[l.dev] {
		return false
	}
	t.frz.parked++
	l.readDeferred = true
	t.frz.idle = append(t.frz.idle, l)
	return true
}

// undefer reports whether l's reader was deferred and not started yet; the
// caller starts it. Exactly one caller gets true.
func (t *Tee) undefer(l *leg) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	ok := l.readDeferred
	l.readDeferred = false
	return ok
}

// armIdle starts the readers deferred until Thaw: each waits for its
// client's first input without a goroutine, as it would have after
// reading nothing (legReadLoop).
func (t *Tee) armIdle(legs []*leg) {
	for _, l := range legs {
		if t.undefer(l) {
			l.armReader()
		}
	}
}

// SeedCounters continues backend name's cumulative counters from the
// process this one took over from.
func (t *Tee) SeedCounters(name string, c Counters) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if b, ok := t.backends[name]; ok {
		b.c.seed(c)
	}
}

// Adopt attaches dev, a client the source of backend name accepted in the
// process this one took over from, as a leg of that backend at the
// current offset (no replay: it has had everything before the cut), under
// the name it had there, its counters continued from c.
func (t *Tee) Adopt(backendName, legName string, seq uint64, dev chardev.Chardev, c Counters) error {
	t.mu.Lock()
	b, ok := t.backends[backendName]
	if !ok || b.source == nil {
		t.mu.Unlock()
		return fmt.Errorf("tee %s: adopt: %q is not a listening backend: %w", t.opts.Name, backendName, ErrNotFound)
	}
	if err := t.attachableLocked(b, true); err != nil {
		t.mu.Unlock()
		return err
	}
	opts := b.opts
	opts.Replay = 0
	l := t.newLegLocked(b, dev, opts, true)
	if legName != "" {
		l.name = legName
	}
	l.c.seed(c)
	t.takeOwedLocked(l)
	b.seq = max(b.seq, seq)
	// newLegLocked published the view with the leg appended (O(1));
	// publishing again would copy every leg, O(N²) for N clients.
	t.mu.Unlock()
	t.freezeIfFrozen(dev)
	t.startLeg(l)
	t.emit(l.attachEvent())
	return nil
}

// freezeIfFrozen freezes v, a source or leg device just attached, while
// the tee is frozen (a resumed tee before Thaw), so that its reader parks
// like the others; Thaw thaws it with them.
func (t *Tee) freezeIfFrozen(v any) {
	t.mu.Lock()
	frozen := t.frz.frozen
	if frozen {
		t.frz.devs[v] = true
	}
	t.mu.Unlock()
	if frozen {
		chardev.Freeze(v)
	}
}

// AdoptStream attaches dev, the device of single-stream backend name that
// a tee in the process this one took over from carried, as that backend's
// leg at the current offset: no replay (it had everything before the
// cut), what it owed at the cut first (Resume.Legs, queued by
// newLegLocked), with options opts and its leg's counters continued from
// c. Like Adopt, the device stays frozen until Thaw on a resumed tee.
func (t *Tee) AdoptStream(name string, opts LegOptions, dev chardev.Chardev, c Counters) error {
	b, err := t.reserve(name, opts)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if err := t.attachableLocked(b, false); err != nil {
		t.mu.Unlock()
		t.unreserve(b)
		return err
	}
	opts.Replay = 0
	l := t.newLegLocked(b, dev, opts, false)
	l.c.seed(c)
	t.mu.Unlock()
	t.freezeIfFrozen(dev)
	t.startLeg(l)
	t.emit(l.attachEvent())
	return nil
}

// CloseLegs closes the named legs of a frozen tee, which the process it
// was handed over to did not take (sessions that cannot be carried): each
// first writes everything it owes up to the cut, then notice if it shows
// notices, then its device is closed. It returns once all are closed, or
// bound has passed (those left are closed then anyway). Called by the old
// process after the commit, just before it exits.
func (t *Tee) CloseLegs(names []string, notice string, bound time.Duration) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	t.mu.Lock()
	var legs []*leg
	for _, l := range t.legs {
		if want[l.name] {
			legs = append(legs, l)
		}
	}
	wdevs := t.frz.wdevs
	t.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	for _, l := range legs {
		if wdevs[l.dev] {
			chardev.ThawWrite(l.dev)
		}
		l.mu.Lock()
		l.wfrozen = false
		l.wakeLocked()
		l.mu.Unlock()
	}
	t.waitUntil(ctx, "closing legs", func() bool { return legsIdle(legs) })
	for _, l := range legs {
		l.notice(notice)
	}
	t.waitUntil(ctx, "closing legs", func() bool { return legsIdle(legs) })
	for _, l := range legs {
		l.fail(errLeft)
	}
	for _, l := range legs {
		select {
		case <-l.devClosed.done():
		case <-ctx.Done():
		}
	}
}

// legsIdle reports whether every leg has written all it has queued.
func legsIdle(legs []*leg) bool {
	for _, l := range legs {
		l.mu.Lock()
		idle := l.failed != nil || (l.q.len() == 0 && len(l.notices) == 0 && !l.writerOn)
		l.mu.Unlock()
		if !idle {
			return false
		}
	}
	return true
}
