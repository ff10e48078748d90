package daemon

// The daemon's side of a process upgrade: Freeze stops every tee at a cut
// and carries its devices into a state document plus files; in the new
// process, Options.Inherit makes the start use them instead of opening
// devices, and Activate lets them run once the old process has committed.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
	"chartee/watch"
)

// wireCarried is a chardev.Carried in the state document: its files are
// indexes into the handed-over files.
type wireCarried struct {
	Files []int           `json:"files"`
	State json.RawMessage `json:"state"`
}

type wireTee struct {
	Name       string        `json:"name"`
	Offset     uint64        `json:"offset"`
	Scrollback []byte        `json:"scrollback"`
	BytesOut   uint64        `json:"bytes_out"`
	BytesIn    uint64        `json:"bytes_in"`
	Frontend   wireCarried   `json:"frontend"`
	Backends   []wireBackend `json:"backends"`
	// Input is typed input not yet written to the frontend at the cut,
	// WriteLock the holder, Line the line state (tee/carry.go).
	Input     []tee.Input    `json:"input,omitempty"`
	WriteLock *tee.WriteLock `json:"write_lock,omitempty"`
	Line      *tee.LineState `json:"line,omitempty"`
}

type wireBackend struct {
	Name string `json:"name"`
	// Type is the backend's type: a carried device is only given back
	// to a backend of the same type.
	Type     string       `json:"type,omitempty"`
	Source   *wireCarried `json:"source,omitempty"`
	Seq      uint64       `json:"seq"`
	Legs     []wireLeg    `json:"legs"`
	Counters tee.Counters `json:"counters"`
}

type wireLeg struct {
	Name     string       `json:"name"`
	Dev      wireCarried  `json:"dev"`
	Counters tee.Counters `json:"counters"`
	// Owed is what the leg had not written at the cut.
	Owed tee.Owed `json:"owed"`
}

// UpgradeBlockers lists what a process upgrade cannot carry to the new
// binary, one line per tee that has something: device types that cannot
// be carried yet, watches. The upgrade refuses while the list is not
// empty rather than drop a client, a pty leg or a capture. (A device that
// can be carried in general but not in its current state — a TLS client —
// is refused by Freeze, naming it.)
func (d *Daemon) UpgradeBlockers() []string {
	var out []string
	for _, rt := range d.sortedTees() {
		rt.mu.Lock()
		var parts []string
		if rt.cfg.Frontend.Factory.Inherit == nil {
			f := rt.cfg.Frontend.Factory
			parts = append(parts, "frontend "+rt.cfg.Frontend.Type+because(" (", f.NotCarried, ")"))
		}
		for _, b := range rt.cfg.Backends {
			if b.IsSource() && b.Factory.InheritSource == nil || !b.IsSource() && b.Factory.Inherit == nil {
				parts = append(parts, fmt.Sprintf("backend %s (%s%s)", b.Name, b.Type, because(": ", b.Factory.NotCarried, "")))
			}
		}
		rt.mu.Unlock()
		if len(parts) > 0 {
			out = append(out, fmt.Sprintf("tee %s: %s cannot be carried yet", rt.name, strings.Join(parts, ", ")))
		}
	}
	return out
}

// because is a type's reason for not being carried, between pre and
// post, or nothing when it gives none.
func because(pre, reason, post string) string {
	if reason == "" {
		return ""
	}
	return pre + reason + post
}

func (d *Daemon) sortedTees() []*runningTee {
	d.mu.RLock()
	rts := make([]*runningTee, 0, len(d.tees))
	for _, rt := range d.tees {
		rts = append(rts, rt)
	}
	d.mu.RUnlock()
	slices.SortFunc(rts, func(a, b *runningTee) int { return strings.Compare(a.name, b.name) })
	return rts
}

// Frozen is a daemon stopped at a cut for a process upgrade: its state
// document and the files to hand over. Until Thaw (a rollback) no tee
// reads, accepts or changes; after a commit the process must exit
// without closing anything.
type Frozen struct {
	State []byte
	Files []*os.File
	// Offsets is each tee's cut.
	Offsets map[string]uint64
	// Carried is how many bytes the new process writes first: output
	// legs owed at the cut and typed input, over every tee.
	Carried uint64
	// left are the legs that cannot be carried (TLS, SSH and browser
	// sessions), by tee: CloseLeft closes them after the commit.
	left map[*tee.Tee][]string
	thaw func()
}

// Left is how many sessions cannot be carried and are closed with a
// notice once the new process has taken over.
func (f *Frozen) Left() int {
	n := 0
	for _, names := range f.left {
		n += len(names)
	}
	return n
}

// CloseLeft is the old process's last act after a commit: every session
// that could not be carried gets what it is owed up to the cut, then
// notice ("upgrading, reconnect"), and is closed, within bound.
func (f *Frozen) CloseLeft(notice string, bound time.Duration) {
	var wg sync.WaitGroup
	for t, names := range f.left {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.CloseLegs(names, notice, bound)
		}()
	}
	wg.Wait()
}

// Thaw resumes every tee where it stopped and closes the duplicated
// files (a rolled-back upgrade).
func (f *Frozen) Thaw() {
	f.CloseFiles()
	f.thaw()
}

// CloseFiles closes this process's duplicates of the handed-over files.
func (f *Frozen) CloseFiles() {
	for _, file := range f.Files {
		file.Close()
	}
	f.Files = nil
}

// Freeze stops every tee at a cut (each bounded by its drain timeout) and
// carries its devices. On error everything is thawed and nothing changed.
func (d *Daemon) Freeze(ctx context.Context) (*Frozen, error) {
	if blockers := d.UpgradeBlockers(); len(blockers) > 0 {
		return nil, &BlockedError{Blockers: blockers}
	}
	d.opMu.Lock()
	rts := d.sortedTees()
	var locked, frozen []*runningTee
	thaw := func() {
		for _, rt := range frozen {
			rt.t.Thaw()
		}
		for _, rt := range locked {
			rt.op.Unlock()
		}
		d.opMu.Unlock()
	}
	fz := &Frozen{Offsets: map[string]uint64{}, left: map[*tee.Tee][]string{}}
	var wire []wireTee
	fail := func(err error) (*Frozen, error) {
		fz.CloseFiles()
		thaw()
		return nil, err
	}
	for _, rt := range rts {
		rt.op.Lock()
		locked = append(locked, rt)
	}
	// Every tee stops at its own cut at the same time: the pause is the
	// slowest tee's drain, not the sum of them all.
	tfs, err := freezeAll(ctx, rts)
	for i, tf := range tfs {
		if tf != nil {
			frozen = append(frozen, rts[i])
		}
	}
	if err != nil {
		return fail(err)
	}
	for i, rt := range rts {
		tf := tfs[i]
		rt.mu.Lock()
		types := backendTypes(rt.cfg)
		rt.mu.Unlock()
		wt, left, err := carryTee(rt.name, tf, types, &fz.Files)
		if err != nil {
			return fail(fmt.Errorf("tee %s: %w", rt.name, err))
		}
		wire = append(wire, wt)
		fz.Offsets[rt.name] = tf.Offset
		fz.Carried += tf.Carried()
		if len(left) > 0 {
			fz.left[rt.t] = left
		}
	}
	state, err := json.Marshal(wire)
	if err != nil {
		return fail(err)
	}
	fz.State, fz.thaw = state, thaw
	return fz, nil
}

// freezeAll freezes every tee in parallel, each bounded by its drain
// timeout. tfs[i] is nil where rts[i] did not freeze; err is the first
// failure in rts' order.
func freezeAll(ctx context.Context, rts []*runningTee) (tfs []*tee.Frozen, err error) {
	tfs = make([]*tee.Frozen, len(rts))
	errs := make([]error, len(rts))
	var wg sync.WaitGroup
	for i, rt := range rts {
		rt.mu.Lock()
		dt := drainTimeout(rt.cfg)
		rt.mu.Unlock()
		wg.Go(func() {
			tctx, cancel := context.WithTimeout(ctx, dt)
			defer cancel()
			tfs[i], errs[i] = rt.t.Freeze(tctx)
		})
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return tfs, e
		}
	}
	return tfs, nil
}

// BlockedError is Freeze's refusal: things that cannot be carried yet.
type BlockedError struct{ Blockers []string }

func (e *BlockedError) Error() string {
	return "upgrade: refused, nothing changed: " + strings.Join(e.Blockers, "; ")
}

// backendTypes maps tc's backends to their types.
func backendTypes(tc *config.Tee) map[string]string {
	m := map[string]string{}
	for _, b := range tc.Backends {
		m[b.Name] = b.Type
	}
	return m
}

// carryTee describes frozen tee tf for the new process, adding the files
// to carry to files. It returns the legs that cannot be carried (their
// device is not frozen, or says chardev.ErrNotCarried): they are closed
// with a notice after the commit.
func carryTee(name string, tf *tee.Frozen, types map[string]string, files *[]*os.File) (wt wireTee, left []string, err error) {
	wt = wireTee{Name: name, Offset: tf.Offset, Scrollback: tf.Scrollback, BytesOut: tf.BytesOut, BytesIn: tf.BytesIn,
		Input: tf.Input, WriteLock: tf.WriteLock, Line: tf.Line}
	if wt.Frontend, err = carry("frontend", tf.Frontend, files); err != nil {
		return wt, nil, err
	}
	for _, fb := range tf.Backends {
		wb := wireBackend{Name: fb.Name, Type: types[fb.Name], Seq: fb.Seq, Counters: fb.Counters}
		if fb.Source != nil {
			c, err := carry("backend "+fb.Name, fb.Source, files)
			if err != nil {
				return wt, nil, err
			}
			wb.Source = &c
		}
		cds, errs := carryLegs(fb.Legs)
		// Every file carried goes into files, also on an error: the
		// caller closes them.
		var failed error
		for i, l := range fb.Legs {
			switch {
			case !l.Frozen || errors.Is(errs[i], chardev.ErrNotCarried):
				left = append(left, l.Name)
			case errs[i] != nil:
				failed = cmp.Or(failed, errs[i])
			default:
				wb.Legs = append(wb.Legs, wireLeg{Name: l.Name, Dev: place(cds[i], files), Counters: l.Counters, Owed: l.Owed})
			}
		}
		if failed != nil {
			return wt, nil, failed
		}
		wt.Backends = append(wt.Backends, wb)
	}
	return wt, left, nil
}

// carryLegs carries the legs' devices, several at a time: each is a
// duplicated descriptor or two, and with a thousand clients they are a
// good part of an upgrade's pause.
func carryLegs(legs []tee.FrozenLeg) ([]chardev.Carried, []error) {
	cds := make([]chardev.Carried, len(legs))
	errs := make([]error, len(legs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(legs), max(adoptWorkers, runtime.GOMAXPROCS(0))) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(legs); i = int(next.Add(1) - 1) {
				if legs[i].Frozen {
					cds[i], errs[i] = carryOne("leg "+legs[i].Name, legs[i].Dev)
				}
			}
		})
	}
	wg.Wait()
	return cds, errs
}

func carry(what string, v any, files *[]*os.File) (wireCarried, error) {
	cd, err := carryOne(what, v)
	if err != nil {
		return wireCarried{}, err
	}
	return place(cd, files), nil
}

func carryOne(what string, v any) (chardev.Carried, error) {
	c, ok := v.(chardev.Carrier)
	if !ok {
		return chardev.Carried{}, fmt.Errorf("%s: %s cannot be carried", what, chardev.Describe(v))
	}
	cd, err := c.Carry()
	if err != nil {
		return chardev.Carried{}, fmt.Errorf("%s: %w", what, err)
	}
	return cd, nil
}

// place adds cd's files to files and returns cd for the state document.
func place(cd chardev.Carried, files *[]*os.File) wireCarried {
	w := wireCarried{State: cd.State}
	for _, f := range cd.Files {
		w.Files = append(w.Files, len(*files))
		*files = append(*files, f)
	}
	if w.State == nil {
		w.State = json.RawMessage("null")
	}
	return w
}

// Inheritance is what a process started by an upgrade was handed for its
// tees (see ParseInheritance).
type Inheritance struct {
	tees  map[string]*wireTee
	files []*os.File
	used  map[int]bool
	// srcs are the inherited listeners by tee and backend, once rebuilt.
	srcs map[string]chardev.Source
	// fronts are the inherited frontend devices, thawed by Activate.
	fronts []chardev.Chardev
}

// ParseInheritance reads the state document Freeze made, with the files
// handed over with it (in order).
func ParseInheritance(state []byte, files []*os.File) (*Inheritance, error) {
	var wire []wireTee
	if err := json.Unmarshal(state, &wire); err != nil {
		return nil, fmt.Errorf("upgrade: the tees' state: %w", err)
	}
	in := &Inheritance{tees: map[string]*wireTee{}, files: files, used: map[int]bool{}, srcs: map[string]chardev.Source{}}
	for i := range wire {
		wt := &wire[i]
		if in.tees[wt.Name] != nil {
			return nil, fmt.Errorf("upgrade: tee %q appears twice in the state", wt.Name)
		}
		if err := wt.resume().Validate(); err != nil {
			return nil, fmt.Errorf("upgrade: tee %s: %w", wt.Name, err)
		}
		in.tees[wt.Name] = wt
	}
	return in, nil
}

// carried turns w back into a chardev.Carried, marking its files used.
func (in *Inheritance) carried(w wireCarried) (chardev.Carried, error) {
	c := chardev.Carried{State: w.State}
	for _, i := range w.Files {
		if i < 0 || i >= len(in.files) || in.used[i] {
			return c, fmt.Errorf("upgrade: file %d: not handed over", i)
		}
		in.used[i] = true
		c.Files = append(c.Files, in.files[i])
	}
	return c, nil
}

// closeUnused closes the handed-over files nothing took (a tee or a
// backend the new config no longer has: its clients are disconnected).
func (in *Inheritance) closeUnused() {
	for i, f := range in.files {
		if !in.used[i] {
			f.Close()
		}
	}
}

func (in *Inheritance) backend(tee, name string) *wireBackend {
	if in == nil || in.tees[tee] == nil {
		return nil
	}
	for i, b := range in.tees[tee].Backends {
		if b.Name == name {
			return &in.tees[tee].Backends[i]
		}
	}
	return nil
}

// source rebuilds the inherited listener of backend b of tee teeName, or
// returns nil when there is none of that type.
func (in *Inheritance) source(teeName string, b *config.Backend) (chardev.Source, error) {
	wb := in.backend(teeName, b.Name)
	if wb == nil || wb.Source == nil || !b.IsSource() || b.Factory.InheritSource == nil {
		return nil, nil
	}
	c, err := in.carried(*wb.Source)
	if err != nil {
		return nil, err
	}
	src, err := b.Factory.InheritSource(b.Spec, c)
	if err != nil {
		return nil, fmt.Errorf("daemon: tee %s: backend %s: %w", teeName, b.Name, err)
	}
	in.srcs[teeName+"/"+b.Name] = src
	return src, nil
}

// stream rebuilds the device single-stream backend b of tee teeName had
// in the old process, with its leg's counters, or returns nil when it had
// none (its device had failed; it is opened afresh) or had another type.
func (in *Inheritance) stream(teeName string, b *config.Backend) (chardev.Chardev, *tee.Counters, error) {
	wb := in.backend(teeName, b.Name)
	if wb == nil || wb.Source != nil || len(wb.Legs) != 1 || wb.Type != b.Type || b.IsSource() || b.Factory.Inherit == nil {
		return nil, nil, nil
	}
	c, err := in.carried(wb.Legs[0].Dev)
	if err != nil {
		return nil, nil, err
	}
	dev, err := b.Factory.Inherit(b.Spec, c)
	if err != nil {
		return nil, nil, fmt.Errorf("daemon: tee %s: backend %s: %w", teeName, b.Name, err)
	}
	return dev, &wb.Legs[0].Counters, nil
}

// watchState is what tee teeName's watch leg carried, if it had one.
func (in *Inheritance) watchState(teeName string) (watch.State, bool, error) {
	wb := in.backend(teeName, watch.BackendName)
	if wb == nil || len(wb.Legs) != 1 {
		return watch.State{}, false, nil
	}
	st, err := watch.ParseState(wb.Legs[0].Dev.State)
	if err != nil {
		return st, false, fmt.Errorf("daemon: tee %s: %w", teeName, err)
	}
	return st, true, nil
}

// resume prepares the options of inherited tee tc: its stream continues
// at the cut, its frontend is the inherited device first.
func (in *Inheritance) resume(tc *config.Tee, opts *tee.Options) error {
	if in == nil || in.tees[tc.Name] == nil {
		return nil
	}
	wt := in.tees[tc.Name]
	if tc.Frontend.Factory.Inherit == nil {
		return fmt.Errorf("daemon: tee %s: frontend %s cannot be inherited", tc.Name, tc.Frontend.Type)
	}
	c, err := in.carried(wt.Frontend)
	if err != nil {
		return err
	}
	dev, err := tc.Frontend.Factory.Inherit(tc.Frontend.Spec, c)
	if err != nil {
		return fmt.Errorf("daemon: tee %s: frontend: %w", tc.Name, err)
	}
	in.fronts = append(in.fronts, dev)
	opts.Frontend = &primedOpener{dev: dev, next: opts.Frontend}
	opts.Resume = wt.resume()
	return nil
}

// resume is what tee.New needs to continue wt's stream.
func (wt *wireTee) resume() *tee.Resume {
	r := &tee.Resume{Offset: wt.Offset, Scrollback: wt.Scrollback, BytesOut: wt.BytesOut, BytesIn: wt.BytesIn,
		Legs: map[string]tee.Owed{}, Counters: map[string]tee.Counters{},
		Input: wt.Input, WriteLock: wt.WriteLock, Line: wt.Line}
	for _, b := range wt.Backends {
		r.Counters[b.Name] = b.Counters
		for _, l := range b.Legs {
			r.Legs[l.Name] = l.Owed
		}
	}
	return r
}

// carried is how many bytes wt's legs and input carry.
func (wt *wireTee) carried() uint64 {
	var n uint64
	for _, b := range wt.Backends {
		for _, l := range b.Legs {
			n += l.Owed.Bytes()
		}
	}
	for _, in := range wt.Input {
		n += uint64(len(in.Bytes))
	}
	return n
}

// adopt attaches the clients the old process's listeners had, as legs of
// the same backends under the same names.
func (in *Inheritance) adopt(t *tee.Tee) []error {
	wt := in.tees[t.Name()]
	if wt == nil {
		return nil
	}
	var errs []error
	for _, wb := range wt.Backends {
		src := in.srcs[t.Name()+"/"+wb.Name]
		t.SeedCounters(wb.Name, wb.Counters)
		ad, ok := src.(chardev.Adopter)
		if !ok {
			continue // closed with the unused files: the backend is gone
		}
		cs := make([]chardev.Carried, len(wb.Legs))
		cerrs := make([]error, len(wb.Legs))
		for i, l := range wb.Legs {
			cs[i], cerrs[i] = in.carried(l.Dev)
		}
		devs, aerrs := adoptAll(ad, cs, cerrs)
		for i, l := range wb.Legs {
			err := aerrs[i]
			if err == nil {
				if err = t.Adopt(wb.Name, l.Name, wb.Seq, devs[i], l.Counters); err != nil {
					devs[i].Close()
				}
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("daemon: tee %s: leg %s: %w", t.Name(), l.Name, err))
			}
		}
	}
	return errs
}

// adoptWorkers is how many clients are rebuilt at a time.
const adoptWorkers = 4

// adoptAll rebuilds the carried clients of one listener (those whose
// carried[i] had no error, errs[i]), several at a time: each is a handful
// of system calls (a duplicate, non-blocking mode, the poller, keepalive),
// and with a thousand clients they are most of an upgrade's pause.
func adoptAll(ad chardev.Adopter, cs []chardev.Carried, errs []error) ([]chardev.Chardev, []error) {
	devs := make([]chardev.Chardev, len(cs))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(cs), max(adoptWorkers, runtime.GOMAXPROCS(0))) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(cs); i = int(next.Add(1) - 1) {
				if errs[i] == nil {
					devs[i], errs[i] = ad.Adopt(cs[i])
				}
			}
		})
	}
	wg.Wait()
	return devs, errs
}

// inheritance is what this process was handed, until Activate.
func (d *Daemon) inheritance() *Inheritance {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.inherit
}

// Upgraded describes the upgrade that handed this process its tees, for
// their upgrade events.
type Upgraded struct {
	OldVersion, NewVersion string
	OldPID                 int
	// Pause is from the old process's cut to now.
	Pause time.Duration
}

// Activate lets the inherited tees run: called once the old process has
// committed the handover. Before it, nothing inherited is read or
// accepted from, so a rollback (this process killed) loses nothing. Each
// tee emits an upgrade event.
func (d *Daemon) Activate(u Upgraded) {
	d.mu.Lock()
	pending := d.held
	d.held = nil
	in := d.inherit
	d.inherit = nil
	d.mu.Unlock()
	if in != nil {
		in.closeUnused()
		// The frontends are opened by Start, never frozen in this
		// process: thaw them here, which tells a device it is this
		// process's now (a pty's link is removed when it closes).
		for _, dev := range in.fronts {
			chardev.Thaw(dev)
		}
	}
	for _, t := range pending {
		var carried uint64
		if in != nil && in.tees[t.Name()] != nil {
			carried = in.tees[t.Name()].carried()
		}
		t.Thaw()
		t.Start()
		what := "every leg drained to the cut"
		if carried > 0 {
			what = "owed by legs or typed, written first"
		}
		d.forward(tee.Event{Time: time.Now(), Tee: t.Name(), Kind: tee.EventUpgrade, Offset: t.Offset(),
			Reason: fmt.Sprintf("from %s (pid %d) to %s; output paused %v; %d bytes carried (%s)",
				u.OldVersion, u.OldPID, u.NewVersion, u.Pause.Round(time.Millisecond), carried, what)})
	}
}

// opened is what backend b of tee teeName was handed by a process
// upgrade, ready to attach: its listener, or its device with its leg's
// counters; nil when nothing was handed over for it.
func (in *Inheritance) opened(teeName string, b *config.Backend) (*opened, error) {
	if in == nil {
		return nil, nil
	}
	if b.IsSource() {
		src, err := in.source(teeName, b)
		if src == nil || err != nil {
			return nil, err
		}
		return &opened{src: src}, nil
	}
	dev, c, err := in.stream(teeName, b)
	if dev == nil || err != nil {
		return nil, err
	}
	return &opened{dev: &primedOpener{dev: dev, next: b.Opener()}, carried: c}, nil
}
