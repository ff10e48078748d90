// Package daemon runs chartee's tees from a configuration: it starts one
// engine (package tee) per configured tee, attaches its backends, applies
// control-API changes, reloads the configuration without dropping anyone
// (SIGHUP), reopens capture files (SIGUSR1) and shuts everything down in
// order. The control API (package api) drives it and translates its types.
//
// The daemon keeps its own copy of the configuration that is actually
// running: every API change (attach, detach, swap, frontend swap) updates
// it, so a later reload diffs the file against what runs, not against what
// the file said last time.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
	"chartee/watch"
)

// ErrClosed is returned by every operation after Shutdown. It wraps
// tee.ErrClosed, so the API answers as for a closed tee.
var ErrClosed = fmt.Errorf("daemon: shut down (%w)", tee.ErrClosed)

// Options configure a Daemon. The zero value works: logs go to
// slog.Default and nobody is told about reloads.
type Options struct {
	// Logger receives one structured record per attach, detach, swap,
	// frontend loss/restore/swap, drop, reload and failure.
	Logger *slog.Logger
	// OnReload is called after every attempt to load or apply a
	// configuration, the initial one from New included (for the
	// config_last_reload_success metric).
	OnReload func(ok bool, at time.Time, err error)
	// WatchMetrics counts watch matches and action failures (nil: none).
	WatchMetrics *watch.Metrics
	// Inherit is what a process upgrade handed this process (nil: a
	// normal start). Its tees start frozen at the cut; Activate runs them.
	Inherit *Inheritance
	// Listener returns the listening socket a process upgrade handed
	// over under name for addr, or nil (the SSH service's, "ssh").
	Listener func(name, addr string) (net.Listener, error)
}

// Daemon runs the tees of a configuration. Create it with New; stop it
// with Shutdown.
type Daemon struct {
	log      *slog.Logger
	onReload func(ok bool, at time.Time, err error)

	watchMetrics *watch.Metrics
	// listener gives a socket handed over by a process upgrade (nil:
	// none); see Options.
	listener func(name, addr string) (net.Listener, error)

	// opMu serializes reloads (and Shutdown's start) with each other.
	// Operations on one tee take that tee's own lock, so a slow swap on
	// one tee does not hold up the API on another.
	opMu sync.Mutex

	// mu protects the fields below it; it is never held across device
	// I/O.
	mu   sync.RWMutex
	tees map[string]*runningTee
	// inherit and held are a process upgrade's inheritance and the tees
	// built from it, waiting for Activate.
	inherit *Inheritance
	held    []*tee.Tee
	top     config.Config // the running config's non-tee parts (Tees is nil)
	path    string
	closed  bool

	hubMu     sync.Mutex
	subs      map[chan tee.Event]struct{}
	hubClosed bool

	acc accessState

	shutdownOnce sync.Once
	shutdownErr  error
}

// runningTee is one started engine and the configuration it runs.
type runningTee struct {
	name string
	// op serializes changes to this tee: it is held across tee
	// operations, which may wait on devices (each wait bounded), so
	// nothing that only reads takes it.
	op sync.Mutex
	// mu guards cfg and stopped. Changes replace them under op and mu;
	// readers (Config, the API's show) take mu alone, which is held only
	// to read or replace them, never while a tee operation waits.
	mu      sync.Mutex
	t       *tee.Tee
	cfg     *config.Tee // private copy: what is running now
	stopped bool
	// watcher runs the tee's watches (nil without any); changed under op.
	watcher *watch.Watcher
}

// setBackends replaces the running backend list (the caller holds op).
func (rt *runningTee) setBackends(bs []*config.Backend) {
	rt.mu.Lock()
	rt.cfg.Backends = bs
	rt.mu.Unlock()
}

// New starts every tee of cfg and attaches its backends. Every backend is
// opened before any tee starts; if one cannot be, nothing is started and
// the error names the tee and the backend.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Daemon, error) {
	d := &Daemon{
		log:      opts.Logger,
		onReload: opts.OnReload,

		watchMetrics: opts.WatchMetrics,
		inherit:      opts.Inherit,
		listener:     opts.Listener,
		tees:         map[string]*runningTee{},
		subs:         map[chan tee.Event]struct{}{},
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	err := d.start(ctx, cfg)
	d.reloaded(err)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) start(ctx context.Context, cfg *config.Config) error {
	if err := checkConfig(cfg); err != nil {
		return err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	pol, err := prepareAccess(cfg)
	if err != nil {
		return err
	}
	p, err := d.plan(ctx, cfg)
	if err != nil {
		return err
	}
	var rep ReloadReport
	if err := d.execute(ctx, p, &rep); err != nil {
		// A tee that started with a backend missing is not what was
		// asked for: stop them all.
		d.stopAll()
		return err
	}
	if _, err := d.applyAccess(ctx, cfg, pol); err != nil {
		d.stopSSH()
		d.stopAll()
		d.closeAudit()
		return err
	}
	d.mu.Lock()
	d.top = topOf(cfg)
	d.mu.Unlock()
	for _, w := range cfg.Warnings {
		d.log.Warn("configuration warning", "warning", w.Error())
	}
	d.log.Info("started", "file", cfg.File, "tees", rep.Started, "backends", len(rep.Attached))
	return nil
}

// stopAll closes every tee at once (a failed start).
func (d *Daemon) stopAll() {
	d.mu.Lock()
	tees := d.tees
	d.tees = map[string]*runningTee{}
	d.mu.Unlock()
	for _, rt := range tees {
		rt.t.Close() // returns once its events are logged
		rt.closeWatcher()
	}
}

// reloaded reports one load/apply attempt to OnReload.
func (d *Daemon) reloaded(err error) {
	if d.onReload != nil {
		d.onReload(err == nil, time.Now(), err)
	}
}

// SetConfigPath sets the file Reload reads. "" means the daemon runs
// without a file (the built-in demo) and Reload fails saying so.
func (d *Daemon) SetConfigPath(path string) {
	d.mu.Lock()
	d.path = path
	d.mu.Unlock()
}

// Tees lists the running tees, sorted by name.
func (d *Daemon) Tees() []*tee.Tee {
	d.mu.RLock()
	defer d.mu.RUnlock()
	out := make([]*tee.Tee, 0, len(d.tees))
	for _, rt := range d.tees {
		out = append(out, rt.t)
	}
	slices.SortFunc(out, func(a, b *tee.Tee) int { return strings.Compare(a.Name(), b.Name()) })
	return out
}

// Tee finds a running tee.
func (d *Daemon) Tee(name string) (*tee.Tee, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	rt, ok := d.tees[name]
	if !ok {
		return nil, false
	}
	return rt.t, true
}

// Config returns a copy of the configuration that is running now, API
// changes included.
func (d *Daemon) Config() *config.Config {
	d.mu.RLock()
	c := d.top
	tees := make([]*runningTee, 0, len(d.tees))
	for _, rt := range d.tees {
		tees = append(tees, rt)
	}
	d.mu.RUnlock()
	for _, rt := range tees {
		rt.mu.Lock()
		if !rt.stopped {
			c.Tees = append(c.Tees, cloneTee(rt.cfg))
		}
		rt.mu.Unlock()
	}
	slices.SortFunc(c.Tees, func(a, b *config.Tee) int { return strings.Compare(a.Name, b.Name) })
	return &c
}

// lockTee finds a running tee and locks it for a change. The caller
// unlocks rt.op.
func (d *Daemon) lockTee(name string) (*runningTee, error) {
	d.mu.RLock()
	rt, ok := d.tees[name]
	closed := d.closed
	d.mu.RUnlock()
	if closed {
		return nil, ErrClosed
	}
	if !ok {
		return nil, noTeeError{name}
	}
	rt.op.Lock()
	rt.mu.Lock()
	stopped := rt.stopped
	rt.mu.Unlock()
	if stopped {
		rt.op.Unlock()
		return nil, noTeeError{name}
	}
	return rt, nil
}

// noTeeError is an unknown tee. It matches tee.ErrNotFound, so the API
// answers 404 for it as for an unknown backend.
type noTeeError struct{ name string }

func (e noTeeError) Error() string        { return fmt.Sprintf("daemon: no tee named %q", e.name) }
func (e noTeeError) Is(target error) bool { return target == tee.ErrNotFound }

// Attach adds backend b to a tee, opening its device (or listener) first:
// if that fails nothing changes.
func (d *Daemon) Attach(ctx context.Context, teeName string, b *config.Backend) error {
	if b == nil || b.Name == "" {
		return fmt.Errorf("daemon: attach: the backend needs a name: %w", ErrInvalid)
	}
	rt, err := d.lockTee(teeName)
	if err != nil {
		return err
	}
	defer rt.op.Unlock()
	nb := *b
	if err := nb.SetTee(teeName); err != nil {
		return fmt.Errorf("daemon: attach %s/%s: %w: %w", teeName, b.Name, err, ErrInvalid)
	}
	if err := attachBackend(ctx, rt.t, &nb, nil); err != nil {
		d.log.Warn("attach failed", "tee", teeName, "backend", b.Name, "err", err)
		return err
	}
	rt.setBackends(append(slices.Clone(rt.cfg.Backends), &nb))
	return nil
}

// Detach removes a backend and all its legs.
func (d *Daemon) Detach(teeName, backend string) error {
	rt, err := d.lockTee(teeName)
	if err != nil {
		return err
	}
	defer rt.op.Unlock()
	if err := rt.t.Detach(backend); err != nil {
		return err
	}
	rt.setBackends(slices.DeleteFunc(slices.Clone(rt.cfg.Backends), func(x *config.Backend) bool { return x.Name == backend }))
	return nil
}

// Swap replaces a backend with spec b. A single-stream backend is swapped
// with the engine's handover (or overlap, as opts say): its old and new
// devices together get the stream exactly. A listening backend gets its
// new listener while the clients it already accepted stay connected. A
// spec that would turn one kind into the other is refused (ErrInvalid):
// detach and attach instead.
func (d *Daemon) Swap(ctx context.Context, teeName, backend string, b *config.Backend, opts tee.SwapOptions) (tee.SwapReport, error) {
	rep := tee.SwapReport{Backend: backend, Mode: opts.Mode.String()}
	if b == nil {
		return rep, fmt.Errorf("daemon: swap %s/%s: no spec: %w", teeName, backend, ErrInvalid)
	}
	if b.Name != "" && b.Name != backend {
		return rep, fmt.Errorf("daemon: swap %s/%s: the spec names %q; a swap cannot rename: %w", teeName, backend, b.Name, ErrInvalid)
	}
	if err := b.SetTee(teeName); err != nil {
		return rep, fmt.Errorf("daemon: swap %s/%s: %w: %w", teeName, backend, err, ErrInvalid)
	}
	rt, err := d.lockTee(teeName)
	if err != nil {
		return rep, err
	}
	defer rt.op.Unlock()
	i := slices.IndexFunc(rt.cfg.Backends, func(x *config.Backend) bool { return x.Name == backend })
	if i < 0 {
		return rep, fmt.Errorf("daemon: tee %s: swap %q: %w", teeName, backend, tee.ErrNotFound)
	}
	old := rt.cfg.Backends[i]
	// What the spec does not give is inherited from the swapped backend:
	// a swap to a new path must not change the policy too.
	inherited, err := config.Inherit(old, b)
	if err != nil {
		return rep, fmt.Errorf("daemon: swap %s/%s: %w: %w", teeName, backend, err, ErrInvalid)
	}
	nb := *inherited
	nb.Name = backend
	if err := nb.SetTee(teeName); err != nil {
		return rep, fmt.Errorf("daemon: swap %s/%s: %w: %w", teeName, backend, err, ErrInvalid)
	}
	if old.IsSource() != nb.IsSource() {
		return rep, fmt.Errorf("daemon: swap %s/%s: %s is %s but %s is %s; detach and attach instead: %w",
			teeName, backend, old.Describe(), kindOf(old), nb.Describe(), kindOf(&nb), ErrInvalid)
	}
	if nb.IsSource() {
		start := time.Now()
		err = swapSource(ctx, rt.t, old, &nb, nil)
		rep.Mode = "listener"
		rep.Cut, rep.NewStart = rt.t.Offset(), rt.t.Offset()
		rep.Elapsed = time.Since(start)
	} else {
		if opts.Options == nil {
			opts.Options = &nb.Leg
		}
		rep, err = rt.t.Swap(ctx, backend, nb.Opener(), opts)
	}
	if err != nil {
		d.log.Warn("swap failed", "tee", teeName, "backend", backend, "to", nb.Describe(), "err", err)
		return rep, err
	}
	if opts.Options != nil {
		nb.Leg = *opts.Options
	}
	rep.Effective = Effective(&nb)
	bs := slices.Clone(rt.cfg.Backends)
	bs[i] = &nb
	rt.setBackends(bs)
	return rep, nil
}

// Effective describes a backend as it runs: its device and its leg
// options, for swap and attach reports.
func Effective(b *config.Backend) string {
	yes := map[bool]string{true: "yes", false: "no"}
	queue := b.Leg.Queue
	if queue <= 0 {
		queue = 256 << 10
	}
	return fmt.Sprintf("%s; input %s, on_overflow %s, queue %s, replay %s",
		b.Describe(), yes[b.Leg.Input], b.Leg.Overflow, chardev.Size(queue), chardev.Size(b.Leg.Replay))
}

// SwapFrontend replaces a tee's frontend device. The new device is opened
// first; the tee's line settings are replayed onto it.
func (d *Daemon) SwapFrontend(ctx context.Context, teeName string, dev *config.Device) (tee.FrontendSwapReport, error) {
	if dev == nil {
		return tee.FrontendSwapReport{}, fmt.Errorf("daemon: swap frontend of %s: no spec: %w", teeName, ErrInvalid)
	}
	nd := *dev
	if err := nd.SetTee(teeName); err != nil {
		return tee.FrontendSwapReport{}, fmt.Errorf("daemon: swap frontend of %s: %w: %w", teeName, err, ErrInvalid)
	}
	if nd.IsSource() {
		return tee.FrontendSwapReport{}, fmt.Errorf("daemon: swap frontend of %s: %s is a listener, not a single stream: %w", teeName, nd.Describe(), ErrInvalid)
	}
	rt, err := d.lockTee(teeName)
	if err != nil {
		return tee.FrontendSwapReport{}, err
	}
	defer rt.op.Unlock()
	rep, err := rt.t.SwapFrontend(ctx, nd.Opener())
	if err != nil {
		d.log.Warn("frontend swap failed", "tee", teeName, "to", nd.Describe(), "err", err)
		return rep, err
	}
	rt.mu.Lock()
	rt.cfg.Frontend.Device = nd
	rt.mu.Unlock()
	return rep, nil
}

// Reopen reopens every leg device that writes to a file (SIGUSR1, after
// logrotate moved the files away). Every device is tried; the errors of
// those that failed are joined.
func (d *Daemon) Reopen() error {
	var errs []error
	n := 0
	for _, t := range d.Tees() {
		t.Devices(func(backend string, dev chardev.Chardev) {
			r, ok := dev.(chardev.Reopener)
			if !ok {
				return
			}
			n++
			if err := r.Reopen(); err != nil {
				errs = append(errs, fmt.Errorf("daemon: tee %s: backend %s: reopen: %w", t.Name(), backend, err))
				d.log.Error("reopen failed", "tee", t.Name(), "backend", backend, "err", err)
			}
		})
	}
	if err := d.reopenAudit(); err != nil {
		errs = append(errs, fmt.Errorf("daemon: audit: reopen: %w", err))
	}
	d.log.Info("reopened capture files", "devices", n, "failed", len(errs))
	return errors.Join(errs...)
}

// Shutdown stops every tee: the frontends stop being read, every leg gets
// to write what it was already given (block legs lose nothing) until ctx
// ends, capture files are flushed and closed, then every source, client
// and device is closed. The tees stop in parallel, sharing ctx. Calling it
// again returns the first call's result.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.shutdownOnce.Do(func() {
		d.opMu.Lock()
		d.mu.Lock()
		d.closed = true
		tees := make([]*runningTee, 0, len(d.tees))
		for _, rt := range d.tees {
			tees = append(tees, rt)
		}
		d.mu.Unlock()
		d.opMu.Unlock()
		// People's sessions end first, with a clean exit, before
		// their consoles stop.
		d.stopSSH()

		errs := make([]error, len(tees))
		var wg sync.WaitGroup
		for i, rt := range tees {
			wg.Go(func() {
				errs[i] = rt.t.Shutdown(ctx)
				rt.t.Close()
				rt.closeWatcher()
			})
		}
		wg.Wait()
		for _, rt := range tees {
			rt.mu.Lock()
			rt.stopped = true
			rt.mu.Unlock()
		}
		// Each tee's Close returned after its last event was logged
		// and published.
		d.closeSubscribers()
		d.closeAudit()
		d.shutdownErr = errors.Join(errs...)
		if d.shutdownErr != nil {
			d.log.Warn("shut down", "tees", len(tees), "err", d.shutdownErr)
		} else {
			d.log.Info("shut down", "tees", len(tees))
		}
	})
	return d.shutdownErr
}

// Subscribe streams the events of every tee, including tees a reload
// starts later, until cancel is called or the daemon shuts down (then the
// channel is closed). A subscriber that does not keep up misses events
// rather than slowing anyone.
func (d *Daemon) Subscribe(buf int) (<-chan tee.Event, func()) {
	if buf <= 0 {
		buf = 64
	}
	c := make(chan tee.Event, buf)
	d.hubMu.Lock()
	if d.hubClosed {
		d.hubMu.Unlock()
		close(c)
		return c, func() {}
	}
	d.subs[c] = struct{}{}
	d.hubMu.Unlock()
	return c, func() {
		d.hubMu.Lock()
		if _, ok := d.subs[c]; ok {
			delete(d.subs, c)
			close(c)
		}
		d.hubMu.Unlock()
	}
}

func (d *Daemon) publish(e tee.Event) {
	d.hubMu.Lock()
	for c := range d.subs {
		select {
		case c <- e:
		default:
		}
	}
	d.hubMu.Unlock()
}

func (d *Daemon) closeSubscribers() {
	d.hubMu.Lock()
	d.hubClosed = true
	for c := range d.subs {
		close(c)
	}
	d.subs = nil
	d.hubMu.Unlock()
}

// startTee starts an engine for tc. Its events go to the log and the
// subscribers from the very first (the frontend opening, which a
// subscription made after tee.New could miss), through the engine's
// Events hook, until the tee is closed. The caller attaches the backends
// and then calls Start.
func (d *Daemon) startTee(tc *config.Tee) (*tee.Tee, error) {
	opts := tc.Options()
	opts.Events = d.forward
	opts.Hold = true // the caller attaches the backends, then Starts
	if err := d.inheritance().resume(tc, &opts); err != nil {
		return nil, err
	}
	t, err := tee.New(opts)
	if err != nil {
		return nil, fmt.Errorf("daemon: tee %s: %w", tc.Name, err)
	}
	d.hookTee(t)
	return t, nil
}

// forward logs one engine event and passes it to the subscribers.
func (d *Daemon) forward(e tee.Event) {
	d.logEvent(e)
	d.Audit().Event(e)
	d.publish(e)
}

// logEvent writes one structured record per engine event.
func (d *Daemon) logEvent(e tee.Event) {
	level := slog.LevelInfo
	switch e.Kind {
	case tee.EventFrontendLost, tee.EventFrontendOpenFailed, tee.EventDrop:
		level = slog.LevelWarn
	case tee.EventError:
		level = slog.LevelError
	case tee.EventLine, tee.EventWriteLock:
		level = slog.LevelDebug
	}
	if !d.log.Enabled(context.Background(), level) {
		// Nothing to build: a thousand clients connecting at a level
		// that does not log them must not cost a thousand records of
		// garbage (heap the process's RSS keeps).
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("tee", e.Tee))
	if e.Backend != "" {
		attrs = append(attrs, slog.String("backend", e.Backend))
	}
	if e.Leg != "" && e.Leg != e.Backend {
		attrs = append(attrs, slog.String("leg", e.Leg))
	}
	attrs = append(attrs, slog.Uint64("offset", e.Offset))
	if e.Reason != "" {
		attrs = append(attrs, slog.String("reason", e.Reason))
	}
	if e.User != "" {
		attrs = append(attrs, slog.String("user", e.User), slog.String("role", e.Role))
	}
	if e.FromUser != "" || e.FromLeg != "" {
		attrs = append(attrs, slog.String("from_user", e.FromUser), slog.String("from_leg", e.FromLeg))
	}
	if s := e.Swap; s != nil {
		attrs = append(attrs, slog.Uint64("cut", s.Cut), slog.Uint64("handed_over", s.Handed),
			slog.Uint64("overlap", s.Overlapped), slog.Duration("took", s.Elapsed))
		if s.OldErr != "" {
			attrs = append(attrs, slog.String("old_error", s.OldErr))
		}
	}
	if f := e.FrontendSwap; f != nil {
		attrs = append(attrs, slog.Bool("line_applied", f.LineApplied), slog.Duration("took", f.Elapsed))
	}
	d.log.LogAttrs(context.Background(), level, string(e.Kind), attrs...)
}

// attachBackend attaches b to t. src, when not nil, is b's listener
// already bound (or primed, b's device already open); otherwise it is
// opened here. On error, whatever was opened is closed.
func attachBackend(ctx context.Context, t *tee.Tee, b *config.Backend, pre *opened) error {
	if b.IsSource() {
		var src chardev.Source
		if pre != nil {
			src = pre.take()
		}
		if src == nil {
			var err error
			if src, err = b.Listen(ctx); err != nil {
				return fmt.Errorf("daemon: tee %s: backend %s: %w", t.Name(), b.Name, err)
			}
		}
		if err := t.AttachSource(b.Name, b.Leg, src); err != nil {
			src.Close()
			return err
		}
		return nil
	}
	var open chardev.Opener = b.Opener()
	if pre != nil {
		open = pre.dev
		defer pre.dev.discard()
		if pre.carried != nil {
			dev, err := pre.dev.Open(ctx)
			if err != nil {
				return err
			}
			if err := t.AdoptStream(b.Name, b.Leg, dev, *pre.carried); err != nil {
				dev.Close()
				return err
			}
			return nil
		}
	}
	return t.Attach(ctx, b.Name, b.Leg, open)
}

// swapSource gives listening backend old the listener of spec nb. A new
// address is bound first, and the old listener is closed only once the new
// one accepts (an error changes nothing). The same address must be freed
// first: the old listener is closed, then the new one bound. Either way
// the clients already accepted stay connected. src, when not nil, is nb's
// listener already bound.
func swapSource(ctx context.Context, t *tee.Tee, old, nb *config.Backend, src chardev.Source) error {
	leg := nb.Leg
	var err error
	switch {
	case src != nil:
		err = t.SwapSource(nb.Name, src, &leg)
		if err != nil {
			src.Close()
		}
	case sameBind(old, nb):
		err = t.RebindSource(nb.Name, func() (chardev.Source, error) { return nb.Listen(ctx) }, &leg)
	default:
		src, err = nb.Listen(ctx)
		if err != nil {
			return fmt.Errorf("daemon: tee %s: backend %s: %w", t.Name(), nb.Name, err)
		}
		if err = t.SwapSource(nb.Name, src, &leg); err != nil {
			src.Close()
		}
	}
	if err != nil {
		return err
	}
	if leg != old.Leg {
		// The swap set the options for clients accepted from now on;
		// those already connected get them too.
		return t.SetLegOptions(nb.Name, leg)
	}
	return nil
}

func kindOf(b *config.Backend) string {
	if b.IsSource() {
		return "a listener"
	}
	return "a single stream"
}

// checkConfig catches what would make a config impossible to run even if
// it did not come from config.Parse (which reports these with positions).
func checkConfig(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("daemon: no configuration")
	}
	var errs []error
	seen := map[string]bool{}
	for _, tc := range cfg.Tees {
		if tc == nil || tc.Name == "" {
			errs = append(errs, errors.New("daemon: a tee needs a name"))
			continue
		}
		if seen[tc.Name] {
			errs = append(errs, fmt.Errorf("daemon: tee %q appears twice", tc.Name))
		}
		seen[tc.Name] = true
		if tc.Frontend.IsSource() {
			errs = append(errs, fmt.Errorf("daemon: tee %s: frontend %s is a listener, not a single stream", tc.Name, tc.Frontend.Describe()))
		}
		names := map[string]bool{}
		for _, b := range tc.Backends {
			if b == nil || b.Name == "" {
				errs = append(errs, fmt.Errorf("daemon: tee %s: a backend needs a name", tc.Name))
				continue
			}
			if names[b.Name] {
				errs = append(errs, fmt.Errorf("daemon: tee %s: backend %q appears twice", tc.Name, b.Name))
			}
			names[b.Name] = true
		}
	}
	return errors.Join(errs...)
}

// cloneTee copies a configured tee deeply enough that changing the copy's
// settings or backend list never touches the original. Backends and
// devices are shared: they are never modified once built.
func cloneTee(tc *config.Tee) *config.Tee {
	c := *tc
	c.Backends = slices.Clone(tc.Backends)
	c.Frontend.Failover = slices.Clone(tc.Frontend.Failover)
	return &c
}

func topOf(cfg *config.Config) config.Config {
	c := *cfg
	c.Tees = nil
	return c
}
