package tee

import (
	"sync"
	"sync/atomic"

	"chartee/chardev"
)

// The input hook (the daemon's audit log) is fed by a goroutine of its
// own, never by the frontend input writer: an audit file that is rotating,
// on a full or slow disk, or a hook that blocks for any reason must not
// stop typing for every leg. The input writer only queues a copy of each
// chunk, bounded by maxHookBacklog; beyond it the chunk is not given to
// the hook, counted (Stats.Frontend.InputHookDropped) and told by a drop event,
// as for input recorders (record.go).

// maxHookBacklog bounds the memory of input waiting for the hook: the
// bytes plus hookRecordCost for each queued chunk.
const maxHookBacklog = 64 << 10

// hookRecordCost is what a queued chunk costs beside its bytes (the record
// and its slice header, rounded up), so many 1-byte chunks are bounded by
// their memory, not their length.
const hookRecordCost = 64

type hookRecord struct {
	fn  *func(chardev.InputAuthor, []byte)
	who chardev.InputAuthor
	b   []byte
}

// hookQueue is the input hook's queue and the state of its goroutine,
// which runs while there is something to deliver (an idle tee has none).
type hookQueue struct {
	mu       sync.Mutex
	q        []hookRecord
	charged  int  // bytes + hookRecordCost per record, against maxHookBacklog
	running  bool // a delivery goroutine owns the queue's head
	dropping bool // in an overflow episode (for the drop event)
	closed   bool
	run      func() // the goroutine's body, made once
	dropped  atomic.Uint64
}

// queueHook queues p, typed by who on leg from (nil: the tee's own
// input), for the input hook if there is one. It never waits.
func (t *Tee) queueHook(from *leg, who chardev.InputAuthor, p []byte) {
	fn := t.inputHook.Load()
	if fn == nil {
		return
	}
	h := &t.hook
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if n := len(h.q); n > 0 && h.q[n-1].fn == fn && h.q[n-1].who == who {
		// Behind already: one call for consecutive chunks of one author.
		if h.charged+len(p) > maxHookBacklog {
			t.hookDropLocked(from, who, p)
			return
		}
		h.q[n-1].b = append(h.q[n-1].b, p...)
		h.charged += len(p)
		return
	}
	if h.charged+len(p)+hookRecordCost > maxHookBacklog {
		t.hookDropLocked(from, who, p)
		return
	}
	h.dropping = false
	h.q = append(h.q, hookRecord{fn: fn, who: who, b: append([]byte(nil), p...)})
	h.charged += len(p) + hookRecordCost
	if !h.running {
		h.running = true
		t.wg.Add(1) // the caller, the input writer, is counted: never zero here
		if h.run == nil {
			h.run = t.deliverHook
		}
		go h.run()
	}
}

func (t *Tee) hookDropLocked(from *leg, who chardev.InputAuthor, p []byte) {
	h := &t.hook
	h.dropped.Add(uint64(len(p)))
	if h.dropping {
		return
	}
	h.dropping = true
	e := Event{Kind: EventDrop, Leg: who.Leg, Offset: t.offsetNext.Load(),
		Reason: "input hook queue full (the audit log is not keeping up): input not audited"}
	if from != nil {
		e.Backend = from.backend.name
	}
	if who.Identity != nil {
		e.User, e.Role = who.Identity.User, who.Identity.Role().String()
	}
	t.emit(e)
}

// deliverHook gives queued input to the hook, in order, until the queue
// is empty. After Close it still delivers what was queued (bounded by
// Close's wait for the tee's goroutines).
func (t *Tee) deliverHook() {
	defer t.wg.Done()
	h := &t.hook
	for {
		h.mu.Lock()
		if len(h.q) == 0 {
			h.q = nil
			h.running = false
			h.mu.Unlock()
			return
		}
		r := h.q[0]
		h.q[0] = hookRecord{}
		h.q = h.q[1:]
		h.charged -= len(r.b) + hookRecordCost
		h.mu.Unlock()
		(*r.fn)(r.who, r.b)
	}
}

// closeHook stops queueing input for the hook; what is queued is still
// delivered.
func (t *Tee) closeHook() {
	t.hook.mu.Lock()
	t.hook.closed = true
	t.hook.mu.Unlock()
}
