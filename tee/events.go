package tee

import (
	"sync"
	"sync/atomic"
	"time"
)

// EventKind names what happened.
type EventKind string

// Event kinds.
const (
	EventAttach           EventKind = "attach"
	EventDetach           EventKind = "detach"
	EventSwap             EventKind = "swap"
	EventFrontendLost     EventKind = "frontend-lost"
	EventFrontendRestored EventKind = "frontend-restored"
	// EventFrontendOpenFailed: a frontend device could not be opened
	// (first failure and every change of error, rate-limited).
	EventFrontendOpenFailed EventKind = "frontend-open-failed"
	EventFrontendSwap       EventKind = "frontend-swap"
	EventDrop               EventKind = "drop"
	EventWriteLock          EventKind = "write-lock"
	EventLine               EventKind = "line"
	EventError              EventKind = "error"
	// EventAdmin is an operation a person ran on the tee through a
	// session (break, write-lock steal, frontend swap).
	EventAdmin EventKind = "admin"
	// EventUpgrade: a new chartee process took the tee over at Offset
	// (Reason: old and new version, pause, bytes carried).
	EventUpgrade EventKind = "upgrade"
)

// Event is one thing that happened to a tee, for logs and the API.
type Event struct {
	Time    time.Time `json:"time"`
	Tee     string    `json:"tee"`
	Kind    EventKind `json:"kind"`
	Backend string    `json:"backend,omitempty"`
	Leg     string    `json:"leg,omitempty"`
	Offset  uint64    `json:"offset"`
	Reason  string    `json:"reason,omitempty"`
	// User and Role name the person behind Leg (an SSH or browser
	// session); empty for a leg without identity.
	User string `json:"user,omitempty"`
	Role string `json:"role,omitempty"`
	// Source, Auth and KeyFingerprint say where the person came from and
	// how they proved who they are (attach events of identified legs).
	Source         string `json:"source,omitempty"`
	Auth           string `json:"auth_method,omitempty"`
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	// FromLeg and FromUser name whom a stolen write lock was taken from.
	FromLeg      string              `json:"from_leg,omitempty"`
	FromUser     string              `json:"from_user,omitempty"`
	Swap         *SwapReport         `json:"swap,omitempty"`
	FrontendSwap *FrontendSwapReport `json:"frontend_swap,omitempty"`
}

// Subscription receives a tee's events on C until Close. A subscriber that
// does not keep up misses events (counted by Missed) rather than slowing
// the tee.
type Subscription struct {
	C      <-chan Event
	c      chan Event
	hub    *eventHub
	missed atomic.Uint64
	once   sync.Once
}

// Missed is how many events did not fit in the subscriber's buffer.
func (s *Subscription) Missed() uint64 { return s.missed.Load() }

// Close ends the subscription and closes C.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.hub.mu.Lock()
		delete(s.hub.subs, s)
		s.hub.mu.Unlock()
		close(s.c)
	})
}

type eventHub struct {
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool

	// hook is the subscription feeding Options.Events, made before the
	// tee starts so it sees every event; hookDone is closed when the
	// goroutine calling Options.Events has delivered the last one.
	hook     *Subscription
	hookDone chan struct{}
}

// startHook subscribes Options.Events before anything can emit, and runs
// the goroutine that calls it. Close waits for that goroutine after
// closing the subscription, so every event emitted before Close returns
// is delivered (or counted as missed).
func (t *Tee) startHook() {
	fn := t.opts.Events
	if fn == nil {
		return
	}
	h := &t.events
	h.hook = t.Subscribe(t.opts.EventBuffer)
	h.hookDone = make(chan struct{})
	go func(c <-chan Event, done chan struct{}) {
		defer close(done)
		for e := range c {
			fn(e)
		}
	}(h.hook.C, h.hookDone)
}

// waitHook waits until Options.Events has been given the last event.
func (h *eventHub) waitHook() {
	if h.hookDone != nil {
		<-h.hookDone
	}
}

// EventsMissed is how many events Options.Events did not get because it
// fell more than EventBuffer events behind.
func (t *Tee) EventsMissed() uint64 {
	if h := t.events.hook; h != nil {
		return h.Missed()
	}
	return 0
}

// Subscribe returns a subscription with room for buf events.
func (t *Tee) Subscribe(buf int) *Subscription {
	if buf <= 0 {
		buf = 64
	}
	c := make(chan Event, buf)
	s := &Subscription{C: c, c: c, hub: &t.events}
	h := &t.events
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.once.Do(func() { close(c) })
		return s
	}
	if h.subs == nil {
		h.subs = map[*Subscription]struct{}{}
	}
	h.subs[s] = struct{}{}
	return s
}

// event is an event about leg l, with its person if it has one.
func (l *leg) event(kind EventKind, reason string) Event {
	e := Event{Kind: kind, Backend: l.backend.name, Leg: l.name, Reason: reason}
	if id := l.ident; id != nil {
		e.User, e.Role = id.User, id.Role().String()
	}
	return e
}

func (t *Tee) emit(e Event) {
	e.Tee = t.opts.Name
	e.Time = time.Now()
	h := &t.events
	h.mu.Lock()
	for s := range h.subs {
		select {
		case s.c <- e:
		default:
			s.missed.Add(1)
		}
	}
	h.mu.Unlock()
}

func (h *eventHub) closeAll() {
	h.mu.Lock()
	subs := h.subs
	h.subs = nil
	h.closed = true
	h.mu.Unlock()
	for s := range subs {
		s.once.Do(func() { close(s.c) })
	}
}
