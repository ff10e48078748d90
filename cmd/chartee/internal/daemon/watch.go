package daemon

import (
	"context"
	"fmt"
	"slices"

	"chartee/chardev"
	"chartee/tee"
	"chartee/watch"
)

// watchQueue is the watch leg's queue. The leg drops on overflow, so a
// console faster than its matcher loses matches (counted as the leg's
// drops), never speed.
const watchQueue = 4 << 20

// setWatches makes t's watches specs: it starts the watcher and attaches
// its leg for the first watch, swaps the set in place for a change (no leg
// is touched, the watch leg included), and detaches the leg after the
// last one goes. It returns the watcher now in use (nil for none).
func (d *Daemon) setWatches(t *tee.Tee, w *watch.Watcher, specs []watch.Spec) (*watch.Watcher, error) {
	switch {
	case len(specs) == 0 && w == nil:
		return nil, nil
	case len(specs) == 0:
		err := t.Detach(watch.BackendName)
		w.Close()
		return nil, err
	case w != nil:
		w.SetSpecs(specs)
		return w, nil
	}
	w = watch.New(t, specs, watch.Options{Logger: d.log, Metrics: d.watchMetrics})
	// Taken over by a process upgrade: the matcher goes on from the
	// old process's (a pattern half seen at the cut still matches), and
	// so do the cooldowns.
	if st, ok, err := d.inheritance().watchState(t.Name()); err != nil {
		w.Close()
		return nil, err
	} else if ok {
		w.Resume(st)
	}
	open := chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return w.Device(), nil })
	leg := tee.LegOptions{Queue: watchQueue, Overflow: tee.Drop}
	if err := t.Attach(context.Background(), watch.BackendName, leg, open); err != nil {
		w.Close()
		return nil, fmt.Errorf("daemon: tee %s: watches: %w", t.Name(), err)
	}
	return w, nil
}

// watchesChanged reports whether a reload changes a tee's watches.
func watchesChanged(old, now []watch.Spec) bool {
	return !slices.EqualFunc(old, now, func(a, b watch.Spec) bool { return a.String() == b.String() })
}

// closeWatcher stops a stopped tee's watch actions.
func (rt *runningTee) closeWatcher() {
	if rt.watcher != nil {
		rt.watcher.Close()
		rt.watcher = nil
	}
}

// LineEnding is what `ctl send --line` appends on tee name (api.LineEnder).
func (d *Daemon) LineEnding(name string) []byte {
	d.mu.RLock()
	rt, ok := d.tees[name]
	d.mu.RUnlock()
	if !ok {
		return nil
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.cfg.Enter()
}
