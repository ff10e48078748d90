package watch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
	"chartee/tee"
)

// Console is what a watcher needs from its tee. *tee.Tee implements it.
type Console interface {
	Name() string
	Emit(tee.Event)
	Send(ctx context.Context, who string, p []byte, force bool) (tee.SendResult, error)
}

var _ Console = (*tee.Tee)(nil)

// Options tune a Watcher. The zero value works.
type Options struct {
	// Logger receives the log action and exec output (default slog.Default()).
	Logger *slog.Logger
	// Metrics counts matches and failures (nil: not counted).
	Metrics *Metrics
	// Workers bounds how many actions run at once per tee (default 4).
	Workers int
	// Queue bounds actions waiting for a worker (default 256); past it an
	// action is dropped, and that is a failure.
	Queue int
	// Client posts webhooks (default: the environment's proxy settings,
	// which never proxy loopback addresses; no redirects followed).
	Client *http.Client
	// RetryDelay is the first pause between webhook attempts, doubling
	// (default 500ms).
	RetryDelay time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	if o.Client == nil {
		o.Client = &http.Client{
			Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, MaxIdleConns: 4, IdleConnTimeout: 30 * time.Second},
			// A hook that redirects is misconfigured; following it
			// could post the console's output somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = 500 * time.Millisecond
	}
	return o
}

// Watcher runs a tee's watches: its Device is the tee's watch leg (fed the
// output stream by the engine, like any leg), its workers run the actions.
// Matching happens on the leg's writer goroutine; actions never do, so a
// slow webhook cannot stall the leg, and the leg (drop policy) cannot
// stall the console.
type Watcher struct {
	con  Console
	opts Options

	state atomic.Pointer[watchSet]
	// prime is what a watch leg of the previous process carried (see
	// Resume), for the next device.
	prime atomic.Pointer[State]

	jobs   chan job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// watchSet is the watches in force; reload swaps in a new one.
type watchSet struct {
	specs []Spec
	pats  []Pattern
	// last[i] is when watch i last ran its actions (cooldown), shared
	// with the previous set for watches that did not change.
	last []*atomic.Int64
}

type job struct {
	spec   *Spec
	action Action
	match  Match
	at     time.Time
}

// New returns a watcher for con with specs, and starts its workers.
func New(con Console, specs []Spec, opts Options) *Watcher {
	opts = opts.withDefaults()
	w := &Watcher{con: con, opts: opts, jobs: make(chan job, opts.Queue)}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	w.SetSpecs(specs)
	for range opts.Workers {
		w.wg.Add(1)
		go w.worker()
	}
	return w
}

// SetSpecs replaces the watches. A watch whose spec did not change keeps
// its cooldown; the leg and its position in the stream are not touched.
// Matchers of devices already attached pick the new set up at their next
// write.
func (w *Watcher) SetSpecs(specs []Spec) {
	old := w.state.Load()
	s := &watchSet{specs: specs}
	for _, sp := range specs {
		s.pats = append(s.pats, Pattern{Name: sp.Name, Re: sp.Re, StripANSI: sp.StripANSI})
		last := new(atomic.Int64)
		if old != nil {
			for i, o := range old.specs {
				if o.String() == sp.String() {
					last = old.last[i]
				}
			}
		}
		s.last = append(s.last, last)
	}
	w.state.Store(s)
}

// Specs are the watches in force.
func (w *Watcher) Specs() []Spec { return w.state.Load().specs }

// Close stops the workers; actions under way are cancelled (an exec is
// killed, a webhook abandoned). Devices already handed out stop matching.
func (w *Watcher) Close() {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
}

// Device returns a new leg device for the watcher: each attach of the
// watch leg gets its own, with a fresh matcher.
func (w *Watcher) Device() chardev.Chardev {
	return &device{w: w, done: make(chan struct{}), frozen: make(chan struct{}), prime: w.prime.Swap(nil)}
}

// device is the watch leg: output written to it is matched; it types
// nothing (send actions go through the tee's Send, with its answer).
type device struct {
	w    *Watcher
	done chan struct{}
	once sync.Once

	frz      sync.Mutex
	frozen   chan struct{} // closed by Freeze (a process upgrade)
	isFrozen bool

	// Used only by the leg's writer goroutine (and Carry, with the
	// writer stopped).
	set   *watchSet
	m     *Matcher
	at    uint64
	end   uint64 // offset past the last byte matched
	tail  tailRing
	prime *State // carried by the previous process, for the first matcher
}

var (
	_ chardev.Chardev       = (*device)(nil)
	_ chardev.OffsetTracker = (*device)(nil)
)

func (d *device) StreamAt(off uint64) { d.at = off }

func (d *device) Write(p []byte) (int, error) {
	select {
	case <-d.done:
		return 0, errors.New("watch: device closed")
	default:
	}
	if s := d.w.state.Load(); s != d.set {
		d.set, d.m = s, NewMatcher(s.pats)
		d.primed(d.prime)
		if d.prime != nil {
			d.end = d.prime.At
		}
		d.prime = nil
	}
	if d.at != d.end {
		d.tail.reset() // a gap: the tail carried must be one run
	}
	d.m.Feed(p, d.at, d.matched)
	d.tail.write(p)
	d.at += uint64(len(p))
	d.end = d.at
	return len(p), nil
}

// matched counts a match and queues its actions unless the watch is
// cooling down. It never blocks: a full queue is a failure, not a stall.
func (d *device) matched(m Match) {
	w, s := d.w, d.set
	sp := &s.specs[m.Pattern]
	w.opts.Metrics.match(w.con.Name(), sp.Name)
	now := time.Now()
	last := s.last[m.Pattern]
	if prev := last.Load(); prev != 0 && sp.Cooldown > 0 && now.Sub(time.Unix(0, prev)) < sp.Cooldown {
		return
	}
	last.Store(now.UnixNano())
	for _, a := range sp.Actions {
		select {
		case w.jobs <- job{spec: sp, action: a, match: m, at: now}:
		default:
			w.failed(sp, a, m, errors.New("action queue full; action dropped"))
		}
	}
}

func (d *device) Read(p []byte) (int, error) {
	select {
	case <-d.done:
		return 0, io.EOF
	case <-d.frozenCh():
		return 0, errFrozenRead
	}
}

func (d *device) Close() error {
	d.once.Do(func() { close(d.done) })
	return nil
}

func (d *device) Describe() string { return "watch" }

func (w *Watcher) worker() {
	defer w.wg.Done()
	for {
		select {
		case <-w.ctx.Done():
			return
		case j := <-w.jobs:
			if err := w.run(j); err != nil {
				w.failed(j.spec, j.action, j.match, err)
			}
		}
	}
}

// failed reports an action failure as an event, a log line and a metric.
func (w *Watcher) failed(sp *Spec, a Action, m Match, err error) {
	w.opts.Metrics.failure(w.con.Name(), sp.Name, string(a.Kind))
	w.con.Emit(tee.Event{Kind: tee.EventWatch, Backend: BackendName, Offset: m.Offset,
		Reason: fmt.Sprintf("watch %s: action %s failed: %v", sp.Name, a.Kind, err)})
	w.opts.Logger.Warn("watch action failed", "tee", w.con.Name(), "watch", sp.Name, "action", string(a.Kind), "err", err)
}

// BackendName is the name of a tee's watch leg. It cannot clash with a
// configured backend ('@' is not allowed in names).
const BackendName = "@watch"
