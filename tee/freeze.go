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
	t.frz = freezeState{frozen: true, thaw: make(chan struct{}), devs: map[any]bool{}}
	t.offset = r.Offset
	t.front.bytesOut.Store(r.BytesOut)
	t.front.bytesIn.Store(r.BytesIn)
	t.offsetNext.Store(r.Offset)
	t.publishedOffset.Store(r.Offset)
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

// Freeze stops the tee at a cut for a process upgrade and returns what a
// new process needs to continue it. Every device and source must be a
// chardev.Freezer; the frontend must be up and no swap running. Legs must
// drain to the cut and typed input reach the frontend within ctx (bound
// it by the drain timeout): a leg that cannot is an error, and the tee is
// thawed, never left half-frozen.
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
	// Freeze everything, then wait until every reader has parked; a
	// client accepted meanwhile is one more leg to freeze, so go round
	// until nothing new appears.
	for {
		want, err := t.freezeAll()
		if err != nil {
			return nil, err
		}
		if err := t.waitParked(ctx, want); err != nil {
			return nil, err
		}
		if again, _ := t.freezeAll(); again == want {
			break
		}
	}
	if err := t.waitInputWritten(ctx); err != nil {
		return nil, err
	}
	if err := t.waitLegsDrained(ctx); err != nil {
		return nil, err
	}
	return t.export(), nil
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
		l.mu.Unlock()
		if busy {
			t.mu.Unlock()
			return 0, fmt.Errorf("leg %s: a swap is running; try again when it is done", l.name)
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

func (t *Tee) waitParked(ctx context.Context, want int) error {
	parked := 0
	err := t.waitUntil(ctx, "waiting for the readers to stop at the cut", func() bool {
		t.mu.Lock()
		defer t.mu.Unlock()
		parked = t.frz.parked
		return parked >= want
	})
	if err != nil {
		return fmt.Errorf("%d of %d readers (frontend, listeners, legs) stopped: %w", parked, want, err)
	}
	return nil
}

func (t *Tee) waitInputWritten(ctx context.Context) error {
	m := &t.input
	return t.waitUntil(ctx, "waiting for typed input to reach the frontend", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.q.len() == 0 && !m.writing
	})
}

func (t *Tee) waitLegsDrained(ctx context.Context) error {
	t.mu.Lock()
	legs := append([]*leg(nil), t.legs...)
	t.mu.Unlock()
	for _, l := range legs {
		err := t.waitUntil(ctx, "leg "+l.name+" draining to the cut", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.failed != nil || (l.q.len() == 0 && l.batch == 0 && len(l.notices) == 0 && len(l.records) == 0)
		})
		if err != nil {
			return err
		}
		if l.failure() != nil {
			return fmt.Errorf("leg %s failed during the freeze: %w", l.name, l.failure())
		}
	}
	return nil
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
			fb.Legs = append(fb.Legs, FrozenLeg{Name: l.name, Dev: l.dev, Counters: l.c.export()})
		}
		fz.Backends = append(fz.Backends, fb)
	}
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
	devs := t.frz.devs
	thaw := t.frz.thaw
	t.frz = freezeState{}
	t.mu.Unlock()
	for v := range devs {
		chardev.Thaw(v)
	}
	close(thaw)
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
// cut), with options opts, its leg's counters continued from c. Like
// Adopt, the device stays frozen until Thaw on a resumed tee.
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
	t.publishLocked()
	t.mu.Unlock()
	t.freezeIfFrozen(dev)
	t.startLeg(l)
	t.emit(l.attachEvent())
	return nil
}
