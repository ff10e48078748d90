package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
)

// Reload re-reads the configuration file and applies the difference (see
// Apply). An invalid file changes nothing: its error — a config.ErrorList
// naming every problem by file:line:col — is returned as is.
func (d *Daemon) Reload(ctx context.Context) (ReloadReport, error) {
	d.mu.RLock()
	path := d.path
	d.mu.RUnlock()
	if path == "" {
		err := errors.New("daemon: reload: no configuration file to re-read (started without -c)")
		d.reloaded(err)
		return ReloadReport{}, err
	}
	cfg, err := config.Load(path)
	if err != nil {
		d.reloaded(err)
		d.log.Error("reload failed: invalid configuration; the running one stays", "file", path, "err", err)
		return ReloadReport{File: path}, err
	}
	return d.Apply(ctx, cfg)
}

// Apply changes what runs into cfg without dropping anyone:
//
//   - tees only in cfg start, tees no longer in it stop (their legs drain);
//   - a backend whose device changed is hot-swapped with the engine's
//     handover (old file + new file == the stream), and a listener whose
//     address changed is replaced while its connected clients stay;
//   - a single-stream backend whose device failed is opened again;
//   - a backend whose only change is its leg options (queue, on_overflow,
//     replay, input) gets them in place;
//   - new backends are attached, removed ones detached;
//   - a changed frontend is swapped, a changed failover list or tee
//     setting applied in place.
//
// Every new device and listener is opened before anything changes, so a
// configuration whose new capture path is unwritable changes nothing and
// its error is returned. (A listener that must rebind the address it
// already holds, or a device still held by a backend being removed, can
// only be opened once the old one let go; such a failure is reported with
// what did change.)
//
// The report lists "tee" names for tees and frontends and "tee/backend"
// for backends; changes of tee settings or failover lists show in Updated
// as "tee (settings)" and "tee (failover)".
func (d *Daemon) Apply(ctx context.Context, cfg *config.Config) (ReloadReport, error) {
	start := time.Now()
	rep, err := d.apply(ctx, cfg)
	rep.Elapsed = time.Since(start)
	d.reloaded(err)
	attrs := []any{"file", rep.File, "took", rep.Elapsed}
	for _, kv := range []struct {
		k string
		v []string
	}{
		{"started", rep.Started}, {"stopped", rep.Stopped}, {"attached", rep.Attached},
		{"detached", rep.Detached}, {"swapped", rep.Swapped}, {"updated", rep.Updated},
		{"frontends", rep.Frontend}, {"warnings", rep.Warnings},
	} {
		if len(kv.v) > 0 {
			attrs = append(attrs, kv.k, kv.v)
		}
	}
	if err != nil {
		d.log.Error("reload failed", append(attrs, "err", err)...)
	} else {
		d.log.Info("reloaded", attrs...)
	}
	return rep, err
}

func (d *Daemon) apply(ctx context.Context, cfg *config.Config) (ReloadReport, error) {
	var rep ReloadReport
	if cfg != nil {
		rep.File = cfg.File
	}
	if err := checkConfig(cfg); err != nil {
		return rep, err
	}
	d.opMu.Lock()
	defer d.opMu.Unlock()
	d.mu.RLock()
	closed := d.closed
	running := make([]*runningTee, 0, len(d.tees))
	for _, rt := range d.tees {
		running = append(running, rt)
	}
	old := d.top
	d.mu.RUnlock()
	if closed {
		return rep, ErrClosed
	}
	// Hold every tee still for the whole reload: the diff is made against
	// what runs, and the API must not change it underneath.
	slices.SortFunc(running, func(a, b *runningTee) int { return strings.Compare(a.name, b.name) })
	for _, rt := range running {
		rt.op.Lock()
		defer rt.op.Unlock()
	}
	pol, err := prepareAccess(cfg)
	if err != nil {
		return rep, err
	}
	p, err := d.plan(ctx, cfg)
	if err != nil {
		return rep, err
	}
	rep.Warnings = warnings(&old, cfg, p)
	err = d.execute(ctx, p, &rep)
	warn, aerr := d.applyAccess(ctx, cfg, pol)
	rep.Warnings = append(rep.Warnings, warn...)
	err = errors.Join(err, aerr)
	top := topOf(cfg)
	// The control API and metrics listeners are the command's; they keep
	// what they started with until a restart (warned above).
	top.Control, top.Metrics = old.Control, old.Metrics
	d.mu.Lock()
	d.top = top
	d.mu.Unlock()
	return rep, err
}

// warnings lists what the reload could not apply live.
func warnings(old, cfg *config.Config, p *plan) []string {
	var w []string
	for _, e := range cfg.Warnings {
		w = append(w, e.Error())
	}
	if old.Control != cfg.Control {
		w = append(w, "control: changes take effect at the next restart")
	}
	if old.Metrics != cfg.Metrics {
		w = append(w, "metrics: changes take effect at the next restart")
	}
	if !reflect.DeepEqual(old.Web, cfg.Web) {
		// Users and roles do follow a reload (the access gate); the
		// browser console's own listener and settings do not.
		w = append(w, "web: changes take effect at the next restart")
	}
	for _, tp := range p.keep {
		if tp.rt.cfg.Scrollback != tp.cfg.Scrollback {
			w = append(w, fmt.Sprintf("tee %s: scrollback changes take effect at the next restart", tp.cfg.Name))
		}
	}
	return w
}

// A plan is the difference between what runs and a new configuration,
// with every new device already opened.
type plan struct {
	stop   []*runningTee
	keep   []*teePlan
	start  []*newTee
	opened []*opened // for closing what was not used
	// inherit is what a process upgrade handed over (nil: nothing).
	inherit *Inheritance
}

// teePlan is what changes in a tee that keeps running.
type teePlan struct {
	rt       *runningTee
	cfg      *config.Tee // the new configuration
	settings bool
	failover bool
	frontend *opened // the new frontend device, already open; nil: unchanged
	detach   []*config.Backend
	ops      []*backendOp
}

type newTee struct {
	cfg *config.Tee
	ops []*backendOp
}

type opKind uint8

const (
	opAttach  opKind = iota // a new backend
	opSwap                  // a single stream to a new device
	opSource                // a listener to a new listener
	opOptions               // leg options only
)

type backendOp struct {
	kind opKind
	old  *config.Backend // nil for opAttach
	new  *config.Backend
	pre  *opened // the new device or listener, open; nil: opened when applied
}

// opened is a device or listener opened ahead of the change that uses it.
type opened struct {
	dev *primedOpener
	src chardev.Source
	// carried: dev was handed over by a process upgrade, with its
	// leg's counters; it is adopted at the cut, not attached.
	carried *tee.Counters
}

// take hands the listener over to its new owner.
func (o *opened) take() chardev.Source {
	s := o.src
	o.src = nil
	return s
}

func (o *opened) close() {
	if o.dev != nil {
		o.dev.discard()
	}
	if o.src != nil {
		o.src.Close()
		o.src = nil
	}
}

// primedOpener returns a device opened in advance on its first Open and
// opens a fresh one from the spec on every later call (a reconnect).
type primedOpener struct {
	mu   sync.Mutex
	dev  chardev.Chardev
	next chardev.Opener
}

func (o *primedOpener) Open(ctx context.Context) (chardev.Chardev, error) {
	o.mu.Lock()
	dev := o.dev
	o.dev = nil
	o.mu.Unlock()
	if dev != nil {
		return dev, nil
	}
	return o.next.Open(ctx)
}

func (o *primedOpener) Describe() string { return chardev.Describe(o.next) }

// discard closes the device opened in advance if nobody took it.
func (o *primedOpener) discard() {
	o.mu.Lock()
	dev := o.dev
	o.dev = nil
	o.mu.Unlock()
	if dev != nil {
		chardev.Discard(dev)
	}
}

func (p *plan) closeUnused() {
	for _, o := range p.opened {
		o.close()
	}
}

// plan diffs cfg against the running tees (whose locks the caller holds)
// and opens every new device and listener. On error, everything it opened
// is closed and nothing has changed.
func (d *Daemon) plan(ctx context.Context, cfg *config.Config) (*plan, error) {
	p := &plan{inherit: d.inheritance()}
	freed := p.diff(d.runningTees(), cfg)
	err := p.openBackends(ctx, freed)
	if err == nil {
		err = p.openFrontends(ctx)
	}
	if err != nil {
		p.closeUnused()
		return nil, err
	}
	return p, nil
}

// runningTees is a snapshot of the running tees by name.
func (d *Daemon) runningTees() map[string]*runningTee {
	d.mu.RLock()
	defer d.mu.RUnlock()
	running := make(map[string]*runningTee, len(d.tees))
	for name, rt := range d.tees {
		running[name] = rt
	}
	return running
}

// diff sorts the tees into those to stop, start and change, and returns
// the resources (see resources) that stops, detaches and swaps give up
// before new backends are attached: a new backend that needs one of them
// can only be opened afterwards.
func (p *plan) diff(running map[string]*runningTee, cfg *config.Config) (freed map[string]bool) {
	freed = map[string]bool{}
	wanted := map[string]bool{}
	for _, tc := range cfg.Tees {
		wanted[tc.Name] = true
	}
	for _, name := range slices.Sorted(maps.Keys(running)) {
		if rt := running[name]; !wanted[name] {
			p.stop = append(p.stop, rt)
			for _, b := range rt.cfg.Backends {
				free(freed, b)
			}
		}
	}
	for _, tc := range cfg.Tees {
		rt := running[tc.Name]
		if rt == nil {
			nt := &newTee{cfg: tc}
			for _, b := range tc.Backends {
				nt.ops = append(nt.ops, &backendOp{kind: opAttach, new: b})
			}
			p.start = append(p.start, nt)
			continue
		}
		tp := diffTee(rt, tc)
		for _, b := range tp.detach {
			free(freed, b)
		}
		for _, op := range tp.ops {
			if op.kind == opSwap || op.kind == opSource {
				free(freed, op.old)
			}
		}
		p.keep = append(p.keep, tp)
	}
	return freed
}

// openBackends opens the device or binds the listener of every backend
// the plan attaches or swaps in. Every listener is bound before any device
// is opened, so that a bind failure (a port in use) leaves no capture file
// created or appended. A backend that fails to open while it needs a
// resource being freed is opened later, when the old holder has let go.
func (p *plan) openBackends(ctx context.Context, freed map[string]bool) error {
	type teeOp struct {
		tee string
		op  *backendOp
	}
	var ops []teeOp
	for _, tp := range p.keep {
		for _, op := range tp.ops {
			ops = append(ops, teeOp{tp.cfg.Name, op})
		}
	}
	for _, nt := range p.start {
		for _, op := range nt.ops {
			ops = append(ops, teeOp{nt.cfg.Name, op})
		}
	}
	for _, sources := range []bool{true, false} {
		for _, o := range ops {
			b := o.op.new
			if b.IsSource() != sources || o.op.kind == opOptions || (o.op.kind == opSource && sameBind(o.op.old, b)) {
				continue
			}
			if o.op.kind == opAttach {
				// A listener or device a process upgrade handed over.
				pre, err := p.inherit.opened(o.tee, b)
				if err != nil {
					return err
				}
				if pre != nil {
					o.op.pre = pre
					p.opened = append(p.opened, pre)
					continue
				}
			}
			opened, err := openBackend(ctx, b)
			if err != nil {
				if anyFreed(freed, b) {
					continue // opened when the old holder has let go
				}
				return fmt.Errorf("daemon: tee %s: backend %s: %w", o.tee, b.Name, err)
			}
			p.opened = append(p.opened, opened)
			o.op.pre = opened
		}
	}
	return nil
}

// openFrontends opens the new frontend device of every running tee whose
// frontend the config changes; the swap is handed it, primed.
func (p *plan) openFrontends(ctx context.Context) error {
	for _, tp := range p.keep {
		if tp.rt.cfg.Frontend.Canonical == tp.cfg.Frontend.Canonical {
			continue
		}
		dev, err := tp.cfg.Frontend.Opener().Open(ctx)
		if err != nil {
			return fmt.Errorf("daemon: tee %s: frontend %s: %w", tp.cfg.Name, tp.cfg.Frontend.Describe(), err)
		}
		tp.frontend = &opened{dev: &primedOpener{dev: dev, next: tp.cfg.Frontend.Opener()}}
		p.opened = append(p.opened, tp.frontend)
	}
	return nil
}

// diffTee compares a running tee with its new configuration.
func diffTee(rt *runningTee, tc *config.Tee) *teePlan {
	old := rt.cfg
	tp := &teePlan{rt: rt, cfg: tc}
	tp.settings = old.Input != tc.Input || old.ExclusiveIdle != tc.ExclusiveIdle ||
		old.InputBuffer != tc.InputBuffer || old.DrainTimeout != tc.DrainTimeout ||
		old.Frontend.Reconnect != tc.Frontend.Reconnect || old.Pacing != tc.Pacing
	dead := map[string]bool{}
	for _, b := range rt.t.Stats().Backends {
		dead[b.Name] = b.Legs == 0
	}
	tp.failover = !slices.EqualFunc(old.Frontend.Failover, tc.Frontend.Failover,
		func(a, b config.Device) bool { return a.Canonical == b.Canonical })
	oldBy := map[string]*config.Backend{}
	for _, b := range old.Backends {
		oldBy[b.Name] = b
	}
	newBy := map[string]bool{}
	for _, nb := range tc.Backends {
		newBy[nb.Name] = true
		ob := oldBy[nb.Name]
		switch {
		case ob == nil:
			tp.ops = append(tp.ops, &backendOp{kind: opAttach, new: nb})
		case ob.IsSource() != nb.IsSource():
			// A capture file that became a listener: no swap joins
			// those, so the old one goes and the new one comes.
			tp.detach = append(tp.detach, ob)
			tp.ops = append(tp.ops, &backendOp{kind: opAttach, new: nb})
		case ob.Canonical != nb.Canonical && nb.IsSource():
			tp.ops = append(tp.ops, &backendOp{kind: opSource, old: ob, new: nb})
		case ob.Canonical != nb.Canonical, !nb.IsSource() && dead[nb.Name]:
			// A single stream whose device failed (a capture on a full
			// disk, a peer that hung up) has no leg left; a reload
			// opens it again.
			tp.ops = append(tp.ops, &backendOp{kind: opSwap, old: ob, new: nb})
		case ob.Leg != nb.Leg:
			tp.ops = append(tp.ops, &backendOp{kind: opOptions, old: ob, new: nb})
		}
	}
	for _, ob := range old.Backends {
		if !newBy[ob.Name] {
			tp.detach = append(tp.detach, ob)
		}
	}
	return tp
}

// openBackend opens b's device or listener ahead of the change.
func openBackend(ctx context.Context, b *config.Backend) (*opened, error) {
	if b.IsSource() {
		src, err := b.Listen(ctx)
		if err != nil {
			return nil, err
		}
		return &opened{src: src}, nil
	}
	dev, err := b.Opener().Open(ctx)
	if err != nil {
		return nil, err
	}
	return &opened{dev: &primedOpener{dev: dev, next: b.Opener()}}, nil
}

// execute carries out a plan: removals first (they may free what new
// backends need), then the changes of running tees, then new tees. It goes
// on past a failure, so the running config records exactly what runs, and
// returns every failure joined.
func (d *Daemon) execute(ctx context.Context, p *plan, rep *ReloadReport) error {
	defer p.closeUnused()
	var errs []error
	// Removed tees stop in parallel: each may wait up to its drain
	// timeout for its legs.
	var wg sync.WaitGroup
	for _, rt := range p.stop {
		d.mu.Lock()
		delete(d.tees, rt.cfg.Name)
		d.mu.Unlock()
		rt.mu.Lock()
		rt.stopped = true
		rt.mu.Unlock()
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, drainTimeout(rt.cfg))
			defer cancel()
			if err := rt.t.Shutdown(sctx); err != nil {
				d.log.Warn("tee stopped before its legs drained", "tee", rt.cfg.Name, "err", err)
			}
			rt.t.Close()
			rt.closeWatcher()
			d.log.Info("tee stopped", "tee", rt.cfg.Name)
		})
		rep.Stopped = append(rep.Stopped, rt.cfg.Name)
	}
	wg.Wait()
	live := make([]map[string]*config.Backend, len(p.keep))
	for i, tp := range p.keep {
		live[i] = map[string]*config.Backend{}
		for _, b := range tp.rt.cfg.Backends {
			live[i][b.Name] = b
		}
		for _, b := range tp.detach {
			if err := tp.rt.t.Detach(b.Name); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(live[i], b.Name)
			rep.Detached = append(rep.Detached, tp.cfg.Name+"/"+b.Name)
		}
	}
	for i, tp := range p.keep {
		errs = append(errs, d.changeTee(ctx, tp, live[i], rep)...)
	}
	for _, nt := range p.start {
		errs = append(errs, d.startNewTee(ctx, nt, rep)...)
	}
	return errors.Join(errs...)
}

// changeTee applies a running tee's plan; live is its backends as they
// are now, updated as changes succeed.
func (d *Daemon) changeTee(ctx context.Context, tp *teePlan, live map[string]*config.Backend, rep *ReloadReport) []error {
	var errs []error
	t, name := tp.rt.t, tp.cfg.Name
	final := cloneTee(tp.cfg)
	// The engine's scrollback is fixed when it starts (Apply warned).
	final.Scrollback = tp.rt.cfg.Scrollback
	if tp.settings {
		t.Configure(tp.cfg.Options())
		rep.Updated = append(rep.Updated, name+" (settings)")
	}
	if tp.failover {
		t.SetFailover(tp.cfg.Options().Failover)
		rep.Updated = append(rep.Updated, name+" (failover)")
	}
	if tp.frontend != nil {
		if _, err := t.SwapFrontend(ctx, tp.frontend.dev); err != nil {
			errs = append(errs, err)
			final.Frontend.Device = tp.rt.cfg.Frontend.Device
		} else {
			rep.Frontend = append(rep.Frontend, name)
		}
	}
	for _, op := range tp.ops {
		b := op.new
		var err error
		var list *[]string
		switch op.kind {
		case opAttach:
			err, list = attachBackend(ctx, t, b, op.pre), &rep.Attached
		case opSwap:
			var open chardev.Opener = b.Opener()
			if op.pre != nil {
				open = op.pre.dev
			}
			leg := b.Leg
			_, err = t.Swap(ctx, b.Name, open, tee.SwapOptions{Options: &leg})
			list = &rep.Swapped
		case opSource:
			var src chardev.Source
			if op.pre != nil {
				src = op.pre.take()
			}
			err, list = swapSource(ctx, t, op.old, b, src), &rep.Swapped
		case opOptions:
			err, list = t.SetLegOptions(b.Name, b.Leg), &rep.Updated
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		live[b.Name] = b
		*list = append(*list, name+"/"+b.Name)
	}
	final.Backends = orderBackends(tp.cfg.Backends, tp.rt.cfg.Backends, live)
	if watchesChanged(tp.rt.cfg.Watches, tp.cfg.Watches) {
		w, err := d.setWatches(t, tp.rt.watcher, tp.cfg.Watches)
		tp.rt.watcher = w
		if err != nil {
			errs = append(errs, err)
			final.Watches = nil
		} else {
			rep.Updated = append(rep.Updated, name+" (watches)")
		}
	}
	tp.rt.mu.Lock()
	tp.rt.cfg = final
	tp.rt.mu.Unlock()
	return errs
}

// startNewTee starts a tee a reload added and attaches its backends.
func (d *Daemon) startNewTee(ctx context.Context, nt *newTee, rep *ReloadReport) []error {
	t, err := d.startTee(nt.cfg)
	if err != nil {
		return []error{err}
	}
	var errs []error
	live := map[string]*config.Backend{}
	for _, op := range nt.ops {
		if err := attachBackend(ctx, t, op.new, op.pre); err != nil {
			errs = append(errs, err)
			continue
		}
		live[op.new.Name] = op.new
		rep.Attached = append(rep.Attached, nt.cfg.Name+"/"+op.new.Name)
	}
	final := cloneTee(nt.cfg)
	final.Backends = orderBackends(nt.cfg.Backends, nil, live)
	// The watches, like the backends, see the stream from its first byte.
	w, err := d.setWatches(t, nil, nt.cfg.Watches)
	if err != nil {
		errs = append(errs, err)
		final.Watches = nil
	}
	d.mu.Lock()
	d.tees[nt.cfg.Name] = &runningTee{name: nt.cfg.Name, t: t, cfg: final, watcher: w}
	d.mu.Unlock()
	rep.Started = append(rep.Started, nt.cfg.Name)
	if in := d.inheritance(); in != nil && in.tees[nt.cfg.Name] != nil {
		// Inherited: its clients rejoin, and it runs from the cut once
		// the old process has committed (Activate).
		errs = append(errs, in.adopt(t)...)
		d.mu.Lock()
		d.held = append(d.held, t)
		d.mu.Unlock()
	} else {
		// Only now, with its configured backends attached, does the tee
		// open its frontend: every one of them sees the stream from its
		// first byte.
		t.Start()
	}
	attrs := []any{"tee", nt.cfg.Name, "frontend", nt.cfg.Frontend.Describe(), "backends", len(live)}
	d.log.Info("tee started", attrs...)
	return errs
}

// orderBackends lists the backends in live in the new config's order, then
// any left over from the old one (a detach that failed).
func orderBackends(want, had []*config.Backend, live map[string]*config.Backend) []*config.Backend {
	out := make([]*config.Backend, 0, len(live))
	seen := map[string]bool{}
	for _, list := range [][]*config.Backend{want, had} {
		for _, b := range list {
			if l, ok := live[b.Name]; ok && !seen[b.Name] {
				seen[b.Name] = true
				out = append(out, l)
			}
		}
	}
	return out
}

func drainTimeout(tc *config.Tee) time.Duration {
	if tc.DrainTimeout > 0 {
		return tc.DrainTimeout
	}
	return tee.DefaultDrainTimeout
}

// resources names what a backend holds exclusively: its claims (see
// chardev.Claimer), else its device.
func resources(b *config.Backend) []string {
	var out []string
	for _, c := range chardev.ClaimsOf(b.Spec) {
		if id := c.ID(); id != "" {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		out = append(out, "device "+b.Canonical)
	}
	return out
}

// free records that b's resources are given up before new backends are
// attached.
func free(freed map[string]bool, b *config.Backend) {
	for _, r := range resources(b) {
		freed[r] = true
	}
}

// anyFreed reports whether b needs a resource that is given up.
func anyFreed(freed map[string]bool, b *config.Backend) bool {
	for _, r := range resources(b) {
		if freed[r] {
			return true
		}
	}
	return false
}

// sameBind reports whether two listeners bind an address in common, so
// the old one must let go before the new one can bind.
func sameBind(a, b *config.Backend) bool {
	for _, x := range chardev.ClaimsOf(a.Spec) {
		if !x.IsBind() || x.ID() == "" {
			continue
		}
		for _, y := range chardev.ClaimsOf(b.Spec) {
			if x.ID() == y.ID() {
				return true
			}
		}
	}
	return false
}
