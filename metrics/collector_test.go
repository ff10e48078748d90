package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"chartee/chardev"
	"chartee/chardev/memdev"
	"chartee/tee"
)

// registry returns a Collector over set and the gatherer a scrape uses
// for its series (Collector.Gather), so tests see exactly the engine's
// series. The Collector is registered in a pedantic registry too, which
// checks its descriptors.
func registry(t testing.TB, set *teeSet) (*Collector, prometheus.Gatherer) {
	t.Helper()
	c := NewCollector(set, "test")
	if err := prometheus.NewPedanticRegistry().Register(c); err != nil {
		t.Fatal(err)
	}
	return c, c
}

// typeInto feeds p to a leg device as if its client typed it, and waits
// until the leg has read it.
func typeInto(t testing.TB, d *memdev.Device, p string) {
	t.Helper()
	d.Feed([]byte(p))
	if !d.WaitFed(wait) {
		t.Fatalf("%s: typed input not read", d.Name)
	}
}

// withLabel returns the gathered series that have label k=v.
func withLabel(all []series, k, v string) []series {
	var out []series
	for _, s := range all {
		if s.labels[k] == v {
			out = append(out, s)
		}
	}
	return out
}

func named(all []series, name string) []series {
	var out []series
	for _, s := range all {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

func TestByteCountersEqualWhatWasEmittedAndTyped(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)

	capture := r.attach("cap", tee.LegOptions{})
	ops := r.attach("ops", tee.LegOptions{Input: true})

	out := append(pattern(1000, 1), pattern(777, 2)...)
	r.emit(out[:1000])
	r.emit(out[1000:])
	waitWritten(t, capture, len(out))
	waitWritten(t, ops, len(out))
	typeInto(t, ops, "hello")
	waitWritten(t, r.front, 5)

	n := float64(len(out))
	waitValue(t, reg, n, "chartee_backend_bytes_total", "tee", "lab", "backend", "cap", "direction", "out")
	waitValue(t, reg, n, "chartee_backend_bytes_total", "tee", "lab", "backend", "ops", "direction", "out")
	waitValue(t, reg, 5, "chartee_frontend_bytes_total", "tee", "lab", "direction", "in")
	all := gatherSeries(t, reg)
	for _, c := range []struct {
		want float64
		kv   []string
	}{
		{0, []string{"tee", "lab", "backend", "cap", "direction", "in"}},
		{5, []string{"tee", "lab", "backend", "ops", "direction", "in"}},
	} {
		s, ok := find(all, "chartee_backend_bytes_total", c.kv...)
		if !ok || s.value() != c.want {
			t.Errorf("chartee_backend_bytes_total%v = %v (present %v), want %v", c.kv, s.value(), ok, c.want)
		}
	}
	for _, c := range []struct {
		name string
		want float64
		kv   []string
	}{
		{"chartee_frontend_bytes_total", n, []string{"tee", "lab", "direction", "out"}},
		{"chartee_stream_offset_bytes", n, []string{"tee", "lab"}},
		{"chartee_frontend_up", 1, []string{"tee", "lab"}},
		{"chartee_backend_dropped_bytes_total", 0, []string{"tee", "lab", "backend", "cap"}},
		{"chartee_backend_queue_bytes", 0, []string{"tee", "lab", "backend", "cap"}},
		{"chartee_backend_legs", 1, []string{"tee", "lab", "backend", "cap"}},
		{"chartee_input_discarded_bytes_total", 0, []string{"tee", "lab", "backend", "ops"}},
		{"chartee_frontend_reconnects_total", 0, []string{"tee", "lab"}},
		{"chartee_frontend_input_pending_bytes", 0, []string{"tee", "lab"}},
	} {
		s, ok := find(all, c.name, c.kv...)
		if !ok || s.value() != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.kv, s.value(), ok, c.want)
		}
	}
	if s, ok := find(all, "chartee_build_info", "version", "test"); !ok || s.value() != 1 {
		t.Errorf("chartee_build_info{version=test} = %v (present %v)", s.value(), ok)
	}
	assertUnique(t, all)
}

func TestDropsAndQueueOfAStalledDropLeg(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)

	// The queue limit bounds the memory queued chunks keep alive (see
	// docs/DESIGN.md, Memory): a 3000-byte read is charged its 4 KiB
	// buffer, a small one joins a compact buffer of an eighth of the limit.
	slow := r.attach("slow", tee.LegOptions{Queue: 8192, Overflow: tee.Drop})
	slow.Stall()
	r.emit(pattern(3000, 1)) // queued: the writer is stuck in Write
	r.emit(pattern(5000, 2)) // 4 KiB + 8 KiB charged > 8 KiB: dropped for this leg
	r.emit(pattern(24, 3))   // 4 KiB + a 1 KiB compact buffer fits: queued
	waitValue(t, reg, 8024, "chartee_stream_offset_bytes", "tee", "lab")
	waitValue(t, reg, 5000, "chartee_backend_dropped_bytes_total", "tee", "lab", "backend", "slow")
	waitValue(t, reg, 3024, "chartee_backend_queue_bytes", "tee", "lab", "backend", "slow")
	if v := value(t, reg, "chartee_backend_bytes_total", "tee", "lab", "backend", "slow", "direction", "out"); v != 0 {
		t.Fatalf("stalled leg reported %v bytes written", v)
	}

	slow.Resume()
	waitWritten(t, slow, 3024)
	waitValue(t, reg, 3024, "chartee_backend_bytes_total", "tee", "lab", "backend", "slow", "direction", "out")
	waitValue(t, reg, 0, "chartee_backend_queue_bytes", "tee", "lab", "backend", "slow")
	// Every byte of the stream is either written or counted as dropped.
	out := value(t, reg, "chartee_backend_bytes_total", "tee", "lab", "backend", "slow", "direction", "out")
	dropped := value(t, reg, "chartee_backend_dropped_bytes_total", "tee", "lab", "backend", "slow")
	if off := value(t, reg, "chartee_stream_offset_bytes", "tee", "lab"); out+dropped != off {
		t.Fatalf("written %v + dropped %v != stream %v", out, dropped, off)
	}
	if got, want := slow.Written(), append(pattern(3000, 1), pattern(24, 3)...); !bytes.Equal(got, want) {
		t.Fatalf("drop leg got %d bytes, want the first and third chunk (%d)", len(got), len(want))
	}
}

func TestSourceLegsAreSummedUnderTheirBackend(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)
	src := r.attachSource("ops", tee.LegOptions{Input: true})

	// A listener with no client: its series exist, with zero legs.
	waitValue(t, reg, 0, "chartee_backend_legs", "tee", "lab", "backend", "ops")
	first := r.connect(src, "client-0")
	waitValue(t, reg, 1, "chartee_backend_legs", "tee", "lab", "backend", "ops")
	oneClient := len(gatherSeries(t, reg))

	const clients = 40
	devs := []*memdev.Device{first}
	for i := 1; i < clients; i++ {
		devs = append(devs, r.connect(src, fmt.Sprintf("client-%d", i)))
	}
	waitValue(t, reg, clients, "chartee_backend_legs", "tee", "lab", "backend", "ops")

	r.emit(pattern(100, 1))
	for _, d := range devs {
		waitWritten(t, d, 100)
		typeInto(t, d, "k")
	}
	waitValue(t, reg, clients*100, "chartee_backend_bytes_total", "tee", "lab", "backend", "ops", "direction", "out")
	waitValue(t, reg, clients, "chartee_backend_bytes_total", "tee", "lab", "backend", "ops", "direction", "in")

	// Cardinality is bounded by the configuration, not the clients: 40
	// clients make exactly the series one client made, and no series
	// carries a leg name.
	all := gatherSeries(t, reg)
	if len(all) != oneClient {
		t.Fatalf("%d series with %d clients, %d with one", len(all), clients, oneClient)
	}
	assertUnique(t, all)
	for _, s := range all {
		for k, v := range s.labels {
			if strings.Contains(v, "#") || strings.HasPrefix(v, "client-") {
				t.Fatalf("series %s has a per-leg label %s=%q", s.key(), k, v)
			}
		}
	}
	if n := len(withLabel(named(all, "chartee_backend_legs"), "backend", "ops")); n != 1 {
		t.Fatalf("%d chartee_backend_legs series for ops, want 1", n)
	}

	// Clients leave: the gauge goes down, the counters do not.
	for _, d := range devs[:clients/2] {
		d.EndInput()
	}
	waitValue(t, reg, clients/2, "chartee_backend_legs", "tee", "lab", "backend", "ops")
	for _, d := range devs[clients/2:] {
		d.EndInput()
	}
	waitValue(t, reg, 0, "chartee_backend_legs", "tee", "lab", "backend", "ops")
	if v := value(t, reg, "chartee_backend_bytes_total", "tee", "lab", "backend", "ops", "direction", "out"); v != clients*100 {
		t.Fatalf("bytes_total went from %d to %v when clients left", clients*100, v)
	}
	if n := len(gatherSeries(t, reg)); n != oneClient {
		t.Fatalf("%d series after the clients left, want %d", n, oneClient)
	}
}

func TestDetachedBackendsAndRemovedTeesLeaveNoSeries(t *testing.T) {
	a := newRig(t, "a")
	b := newRig(t, "b")
	set := &teeSet{}
	set.set(a.tee, b.tee)
	_, reg := registry(t, set)

	capture := a.attach("cap", tee.LegOptions{})
	a.attach("keep", tee.LegOptions{})
	src := a.attachSource("ops", tee.LegOptions{})
	a.connect(src, "client")
	b.attach("cap", tee.LegOptions{})
	a.emit(pattern(10, 1))
	waitWritten(t, capture, 10)

	all := gatherSeries(t, reg)
	assertUnique(t, all)
	// Six backend series per backend: bytes in/out, dropped, discarded,
	// queue, legs.
	if n := len(withLabel(withLabel(all, "tee", "a"), "backend", "cap")); n != 6 {
		t.Fatalf("%d series for a/cap, want 6", n)
	}

	if err := a.tee.Detach("cap"); err != nil {
		t.Fatal(err)
	}
	if err := a.tee.Detach("ops"); err != nil {
		t.Fatal(err)
	}
	all = gatherSeries(t, reg)
	for _, s := range withLabel(all, "tee", "a") {
		if be := s.labels["backend"]; be == "cap" || be == "ops" {
			t.Fatalf("stale series %s after detach", s.key())
		}
	}
	if n := len(withLabel(withLabel(all, "tee", "a"), "backend", "keep")); n != 6 {
		t.Fatalf("%d series for a/keep, want 6", n)
	}
	if n := len(withLabel(withLabel(all, "tee", "b"), "backend", "cap")); n != 6 {
		t.Fatalf("another tee's backend of the same name lost its series: %d", n)
	}

	// Attached again, the backend starts from zero: a counter reset.
	again := a.attach("cap", tee.LegOptions{})
	a.emit(pattern(3, 2))
	waitWritten(t, again, 3)
	waitValue(t, reg, 3, "chartee_backend_bytes_total", "tee", "a", "backend", "cap", "direction", "out")

	set.set(b.tee) // tee a removed (a reload dropped it)
	all = gatherSeries(t, reg)
	if stale := withLabel(all, "tee", "a"); len(stale) != 0 {
		t.Fatalf("stale series of a removed tee: %s", stale[0].key())
	}
	if len(withLabel(all, "tee", "b")) == 0 {
		t.Fatal("remaining tee b lost its series")
	}
}

func TestFrontendUpReconnectsAndOutageInput(t *testing.T) {
	r := newRigOpts(t, tee.Options{
		Name:        "lab",
		Reconnect:   tee.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		InputBuffer: 10,
	})
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)
	ops := r.attach("ops", tee.LegOptions{Input: true})
	r.emit([]byte("before"))

	// The device vanishes and the opener has nothing to give: down.
	r.front.FailReads(errors.New("input/output error"))
	waitValue(t, reg, 0, "chartee_frontend_up", "tee", "lab")

	// Typed during the outage: 5 bytes wait, 10 more overflow the bound.
	typeInto(t, ops, "12345")
	waitValue(t, reg, 5, "chartee_frontend_input_pending_bytes", "tee", "lab")
	typeInto(t, ops, "6789012345")
	waitValue(t, reg, 10, "chartee_frontend_input_dropped_bytes_total", "tee", "lab")
	waitValue(t, reg, 10, "chartee_input_discarded_bytes_total", "tee", "lab", "backend", "ops")
	if v := value(t, reg, "chartee_backend_bytes_total", "tee", "lab", "backend", "ops", "direction", "in"); v != 5 {
		t.Fatalf("accepted input %v, want 5", v)
	}

	again := memdev.New("front-again")
	memdev.Add(r.open, again)
	waitValue(t, reg, 1, "chartee_frontend_up", "tee", "lab")
	waitValue(t, reg, 1, "chartee_frontend_reconnects_total", "tee", "lab")
	waitWritten(t, again, 5)
	waitValue(t, reg, 0, "chartee_frontend_input_pending_bytes", "tee", "lab")
	waitValue(t, reg, 5, "chartee_frontend_bytes_total", "tee", "lab", "direction", "in")
	all := gatherSeries(t, reg)
	for _, c := range []struct {
		name string
		want float64
		kv   []string
	}{
		// Reopened on the same (only) candidate: not a failover.
		{"chartee_frontend_failovers_total", 0, []string{"tee", "lab"}},
		{"chartee_swaps_total", 0, []string{"tee", "lab", "kind", "failover", "result", "ok"}},
		{"chartee_frontend_bytes_total", 6, []string{"tee", "lab", "direction", "out"}},
	} {
		if s, ok := find(all, c.name, c.kv...); !ok || s.value() != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.kv, s.value(), ok, c.want)
		}
	}
}

func TestFailoverCountsAsReconnectFailoverAndSwap(t *testing.T) {
	primary := memdev.New("primary")
	spare := memdev.New("spare")
	r := newRigOpts(t, tee.Options{
		Name:      "lab",
		Frontend:  memdev.Opener(nil, primary),
		Failover:  []chardev.Opener{memdev.Opener(nil, spare)},
		Reconnect: tee.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
	})
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)

	primary.FailReads(errors.New("unplugged"))
	waitValue(t, reg, 1, "chartee_frontend_failovers_total", "tee", "lab")
	waitValue(t, reg, 1, "chartee_frontend_reconnects_total", "tee", "lab")
	waitValue(t, reg, 1, "chartee_frontend_up", "tee", "lab")
	waitValue(t, reg, 1, "chartee_swaps_total", "tee", "lab", "kind", "failover", "result", "ok")
	h, ok := find(gatherSeries(t, reg), "chartee_swap_duration_seconds", "tee", "lab", "kind", "failover")
	if !ok || h.metric.Histogram.GetSampleCount() != 1 {
		t.Fatalf("failover duration histogram: %v (present %v)", h.metric, ok)
	}
}

func TestSwapsAndTheirDurations(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)

	// All eight swap series exist before the first swap, so increase()
	// sees it.
	all := gatherSeries(t, reg)
	if n := len(named(all, "chartee_swaps_total")); n != 8 {
		t.Fatalf("%d chartee_swaps_total series before any swap, want 8", n)
	}
	// Histograms only once a kind has swapped: a fleet's tees that never
	// swap carry no 68 lines of zeros each.
	if n := len(named(all, "chartee_swap_duration_seconds")); n != 0 {
		t.Fatalf("%d chartee_swap_duration_seconds series before any swap, want 0", n)
	}
	for _, s := range named(all, "chartee_swaps_total") {
		if s.value() != 0 {
			t.Fatalf("%s = %v before any swap", s.key(), s.value())
		}
	}

	r.attach("cap", tee.LegOptions{})
	ctx := context.Background()
	for i := range 2 {
		if _, err := r.tee.Swap(ctx, "cap", memdev.Opener(nil, memdev.New(fmt.Sprint("cap", i))), tee.SwapOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.tee.Swap(ctx, "cap", memdev.Opener(errors.New("no such file")), tee.SwapOptions{}); err == nil {
		t.Fatal("swap to a device that cannot open succeeded")
	}
	if _, err := r.tee.SwapFrontend(ctx, memdev.Opener(nil, memdev.New("front2"))); err != nil {
		t.Fatal(err)
	}
	r.attachSource("ops", tee.LegOptions{})
	if err := r.tee.SwapSource("ops", newMemSource("mem:ops2"), nil); err != nil {
		t.Fatal(err)
	}

	all = gatherSeries(t, reg)
	for _, c := range []struct {
		kind, result string
		want         float64
	}{
		{"leg", "ok", 2}, {"leg", "error", 1},
		{"frontend", "ok", 1}, {"frontend", "error", 0},
		{"source", "ok", 1}, {"source", "error", 0},
		{"failover", "ok", 0}, {"failover", "error", 0},
	} {
		s, ok := find(all, "chartee_swaps_total", "tee", "lab", "kind", c.kind, "result", c.result)
		if !ok || s.value() != c.want {
			t.Errorf("chartee_swaps_total{kind=%s,result=%s} = %v (present %v), want %v", c.kind, c.result, s.value(), ok, c.want)
		}
	}
	for kind, want := range map[string]uint64{"leg": 2, "frontend": 1, "source": 1, "failover": 0} {
		s, ok := find(all, "chartee_swap_duration_seconds", "tee", "lab", "kind", kind)
		if ok != (want > 0) {
			t.Fatalf("duration histogram for %s present %v after %d swaps", kind, ok, want)
		}
		if !ok {
			continue
		}
		h := s.metric.Histogram
		if h.GetSampleCount() != want {
			t.Errorf("%s histogram has %d samples, want %d (failed swaps are not timed)", kind, h.GetSampleCount(), want)
		}
		if want > 0 && h.GetSampleSum() <= 0 {
			t.Errorf("%s histogram sum %v", kind, h.GetSampleSum())
		}
		if len(h.Bucket) != len(tee.DurationBuckets()) {
			t.Fatalf("%s histogram has %d buckets, want %d", kind, len(h.Bucket), len(tee.DurationBuckets()))
		}
		var prev uint64
		for i, b := range h.Bucket {
			if b.GetUpperBound() != tee.DurationBuckets()[i] || b.GetCumulativeCount() < prev || b.GetCumulativeCount() > want {
				t.Fatalf("%s histogram bucket %d: le=%v count=%d (previous %d)", kind, i, b.GetUpperBound(), b.GetCumulativeCount(), prev)
			}
			prev = b.GetCumulativeCount()
		}
		// A swap between memory devices takes far less than 30s.
		if prev != want {
			t.Errorf("%s histogram: le=30 holds %d of %d samples", kind, prev, want)
		}
	}
}

func TestInputDiscardedForInputDisabledAndLockedOutLegs(t *testing.T) {
	r := newRigOpts(t, tee.Options{Name: "lab", Input: tee.Exclusive})
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)
	ro := r.attach("ro", tee.LegOptions{})
	a := r.attach("a", tee.LegOptions{Input: true})
	b := r.attach("b", tee.LegOptions{Input: true})

	typeInto(t, ro, "secret")
	waitValue(t, reg, 6, "chartee_input_discarded_bytes_total", "tee", "lab", "backend", "ro")
	typeInto(t, a, "mine") // takes the exclusive write lock
	waitWritten(t, r.front, 4)
	typeInto(t, b, "yours") // locked out
	waitValue(t, reg, 5, "chartee_input_discarded_bytes_total", "tee", "lab", "backend", "b")

	all := gatherSeries(t, reg)
	for _, c := range []struct {
		name string
		want float64
		kv   []string
	}{
		{"chartee_backend_bytes_total", 0, []string{"tee", "lab", "backend", "ro", "direction", "in"}},
		{"chartee_backend_bytes_total", 4, []string{"tee", "lab", "backend", "a", "direction", "in"}},
		{"chartee_backend_bytes_total", 0, []string{"tee", "lab", "backend", "b", "direction", "in"}},
		{"chartee_input_discarded_bytes_total", 0, []string{"tee", "lab", "backend", "a"}},
		{"chartee_frontend_input_dropped_bytes_total", 0, []string{"tee", "lab"}},
		{"chartee_frontend_bytes_total", 4, []string{"tee", "lab", "direction", "in"}},
	} {
		if s, ok := find(all, c.name, c.kv...); !ok || s.value() != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.kv, s.value(), ok, c.want)
		}
	}
	if got := string(r.front.Written()); got != "mine" {
		t.Fatalf("frontend got %q, want only the lock holder's input", got)
	}
}

func TestReloadSeriesAppearAfterSetReload(t *testing.T) {
	c, reg := registry(t, &teeSet{})
	all := gatherSeries(t, reg)
	for _, name := range []string{"chartee_config_last_reload_success", "chartee_config_last_reload_timestamp_seconds"} {
		if len(named(all, name)) != 0 {
			t.Fatalf("%s exported before any SetReload", name)
		}
	}
	at := time.Unix(1_700_000_000, 250_000_000)
	c.SetReload(ReloadState{Success: true, Time: at})
	if v := value(t, reg, "chartee_config_last_reload_success"); v != 1 {
		t.Fatalf("reload success %v, want 1", v)
	}
	if v := value(t, reg, "chartee_config_last_reload_timestamp_seconds"); v != 1_700_000_000.25 {
		t.Fatalf("reload timestamp %v, want 1700000000.25", v)
	}
	c.SetReload(ReloadState{Success: false, Time: at.Add(time.Minute)})
	if v := value(t, reg, "chartee_config_last_reload_success"); v != 0 {
		t.Fatalf("reload success %v after a failed reload, want 0", v)
	}
	if v := value(t, reg, "chartee_config_last_reload_timestamp_seconds"); v != 1_700_000_060.25 {
		t.Fatalf("reload timestamp %v, want 1700000060.25", v)
	}
	if st, ok := c.Reload(); !ok || st.Success || !st.Time.Equal(at.Add(time.Minute)) {
		t.Fatalf("Reload() = %+v, %v", st, ok)
	}
	c.SetReload(ReloadState{Success: false})
	if v := value(t, reg, "chartee_config_last_reload_timestamp_seconds"); v != 0 {
		t.Fatalf("zero reload time exported as %v, want 0", v)
	}
}

// busyRig makes a tee with something in every metric family, for the
// lint and exposition checks.
func busyRig(t testing.TB, name string) *rig {
	t.Helper()
	r := newRig(t, name)
	capture := r.attach("cap", tee.LegOptions{})
	ro := r.attach("ro", tee.LegOptions{})
	src := r.attachSource("ops", tee.LegOptions{Input: true})
	client := r.connect(src, "client")
	r.emit(pattern(500, 1))
	waitWritten(t, capture, 500)
	waitWritten(t, client, 500)
	typeInto(t, ro, "x")
	typeInto(t, client, "ls\n")
	waitWritten(t, r.front, 3)
	if _, err := r.tee.Swap(context.Background(), "cap", memdev.Opener(nil, memdev.New("cap2")), tee.SwapOptions{}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCollectAndLintClean(t *testing.T) {
	a, b := busyRig(t, "a"), busyRig(t, "b")
	set := &teeSet{}
	set.set(a.tee, b.tee)
	c := NewCollector(set, "test")
	c.SetReload(ReloadState{Success: true, Time: time.Now()})
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	// Every engine family is there, and the whole registry (Go runtime
	// and process collectors included) lints clean too.
	if n := testutil.CollectAndCount(c); n == 0 {
		t.Fatal("collector produced nothing")
	}
	reg := NewRegistry(c)
	problems, err = testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("registry lint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{
		"chartee_backend_bytes_total", "chartee_backend_dropped_bytes_total", "chartee_backend_queue_bytes",
		"chartee_backend_legs", "chartee_frontend_up", "chartee_frontend_bytes_total",
		"chartee_frontend_reconnects_total", "chartee_swaps_total", "chartee_swap_duration_seconds",
		"chartee_input_discarded_bytes_total", "chartee_config_last_reload_success",
		"chartee_config_last_reload_timestamp_seconds", "chartee_build_info",
		"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_open_fds",
	} {
		if !have[name] {
			t.Errorf("registry has no %s", name)
		}
	}
}

// TestGatherAndCompareFixedScenario pins the exposition of a small,
// deterministic scenario: one tee, a capture that got "hello\n", a
// read-only leg that typed 3 bytes, a successful config load.
func TestGatherAndCompareFixedScenario(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	c, reg := registry(t, set)
	c.SetReload(ReloadState{Success: true, Time: time.Unix(1_700_000_000, 500_000_000)})
	capture := r.attach("cap", tee.LegOptions{})
	ro := r.attach("ro", tee.LegOptions{})
	r.emit([]byte("hello\n"))
	waitWritten(t, capture, 6)
	waitWritten(t, ro, 6)
	typeInto(t, ro, "abc")
	waitValue(t, reg, 3, "chartee_input_discarded_bytes_total", "tee", "lab", "backend", "ro")
	waitValue(t, reg, 6, "chartee_backend_bytes_total", "tee", "lab", "backend", "cap", "direction", "out")
	waitValue(t, reg, 6, "chartee_backend_bytes_total", "tee", "lab", "backend", "ro", "direction", "out")

	const want = `
# HELP chartee_backend_bytes_total Bytes through a backend, summed over every leg it has had. direction="out": stream bytes written to its legs; direction="in": bytes its legs typed that were accepted for the frontend.
# TYPE chartee_backend_bytes_total counter
chartee_backend_bytes_total{backend="cap",direction="in",tee="lab"} 0
chartee_backend_bytes_total{backend="cap",direction="out",tee="lab"} 6
chartee_backend_bytes_total{backend="ro",direction="in",tee="lab"} 0
chartee_backend_bytes_total{backend="ro",direction="out",tee="lab"} 6
# HELP chartee_backend_dropped_bytes_total Output bytes a backend's legs did not get because their queue was full (on_overflow: drop), summed over every leg it has had.
# TYPE chartee_backend_dropped_bytes_total counter
chartee_backend_dropped_bytes_total{backend="cap",tee="lab"} 0
chartee_backend_dropped_bytes_total{backend="ro",tee="lab"} 0
# HELP chartee_backend_legs Legs a backend has now: 0 or 1 for a single-stream device, the number of connected clients for a listener.
# TYPE chartee_backend_legs gauge
chartee_backend_legs{backend="cap",tee="lab"} 1
chartee_backend_legs{backend="ro",tee="lab"} 1
# HELP chartee_backend_queue_bytes Output bytes waiting now in the queues of a backend's legs.
# TYPE chartee_backend_queue_bytes gauge
chartee_backend_queue_bytes{backend="cap",tee="lab"} 0
chartee_backend_queue_bytes{backend="ro",tee="lab"} 0
# HELP chartee_build_info Always 1; the version label is the running chartee version.
# TYPE chartee_build_info gauge
chartee_build_info{version="test"} 1
# HELP chartee_config_last_reload_success Whether the last configuration load or reload succeeded (1) or failed and the previous configuration kept running (0).
# TYPE chartee_config_last_reload_success gauge
chartee_config_last_reload_success 1
# HELP chartee_config_last_reload_timestamp_seconds Unix time of the last configuration load or reload attempt.
# TYPE chartee_config_last_reload_timestamp_seconds gauge
chartee_config_last_reload_timestamp_seconds 1.7000000005e+09
# HELP chartee_frontend_bytes_total Bytes through the frontend device. direction="out": read from it and fanned out; direction="in": written to it (merged input).
# TYPE chartee_frontend_bytes_total counter
chartee_frontend_bytes_total{direction="in",tee="lab"} 0
chartee_frontend_bytes_total{direction="out",tee="lab"} 6
# HELP chartee_frontend_reconnects_total Times the frontend was reopened after it failed, on the same device or a failover device.
# TYPE chartee_frontend_reconnects_total counter
chartee_frontend_reconnects_total{tee="lab"} 0
# HELP chartee_frontend_up Whether the tee's frontend device is open (1) or being reconnected (0).
# TYPE chartee_frontend_up gauge
chartee_frontend_up{tee="lab"} 1
# HELP chartee_input_discarded_bytes_total Bytes a backend's legs sent that never reached the frontend: input disabled, another leg holding the exclusive write lock, or the input buffer full.
# TYPE chartee_input_discarded_bytes_total counter
chartee_input_discarded_bytes_total{backend="cap",tee="lab"} 0
chartee_input_discarded_bytes_total{backend="ro",tee="lab"} 3
# HELP chartee_stream_offset_bytes Stream offset of the tee: output bytes offered to every leg since the tee started.
# TYPE chartee_stream_offset_bytes gauge
chartee_stream_offset_bytes{tee="lab"} 6
# HELP chartee_swaps_total Hot swaps by kind (leg, source, frontend, failover) and result (ok, error).
# TYPE chartee_swaps_total counter
chartee_swaps_total{kind="failover",result="error",tee="lab"} 0
chartee_swaps_total{kind="failover",result="ok",tee="lab"} 0
chartee_swaps_total{kind="frontend",result="error",tee="lab"} 0
chartee_swaps_total{kind="frontend",result="ok",tee="lab"} 0
chartee_swaps_total{kind="leg",result="error",tee="lab"} 0
chartee_swaps_total{kind="leg",result="ok",tee="lab"} 0
chartee_swaps_total{kind="source",result="error",tee="lab"} 0
chartee_swaps_total{kind="source",result="ok",tee="lab"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"chartee_backend_bytes_total", "chartee_backend_dropped_bytes_total", "chartee_backend_legs",
		"chartee_backend_queue_bytes", "chartee_build_info", "chartee_config_last_reload_success",
		"chartee_config_last_reload_timestamp_seconds", "chartee_frontend_bytes_total",
		"chartee_frontend_reconnects_total", "chartee_frontend_up", "chartee_input_discarded_bytes_total",
		"chartee_stream_offset_bytes", "chartee_swaps_total", "chartee_swap_duration_seconds",
	); err != nil {
		t.Fatal(err)
	}
}

func TestDuplicateTeeNameIsACollectionError(t *testing.T) {
	a1, a2, b := newRig(t, "a"), newRig(t, "a"), newRig(t, "b")
	set := &teeSet{}
	set.set(a1.tee, nil, a2.tee, b.tee)
	_, reg := registry(t, set)
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), `two tees are named "a"`) {
		t.Fatalf("gather error %v, want the duplicate name", err)
	}
	// The rest of the scrape is still served, once per name.
	all := flatten(mfs)
	assertUnique(t, all)
	for _, name := range []string{"a", "b"} {
		if s, ok := find(all, "chartee_frontend_up", "tee", name); !ok || s.value() != 1 {
			t.Fatalf("chartee_frontend_up{tee=%q} missing after a collection error", name)
		}
	}
}

func TestUnrepresentableLabelValueIsACollectionError(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)
	r.attach("bad\xff", tee.LegOptions{}) // not valid UTF-8: no label can carry it
	r.attach("good", tee.LegOptions{})
	mfs, err := reg.Gather()
	if err == nil {
		t.Fatal("a backend name that is not UTF-8 was exported")
	}
	all := flatten(mfs)
	if _, ok := find(all, "chartee_backend_legs", "tee", "lab", "backend", "good"); !ok {
		t.Fatal("the valid backend's series were lost with the invalid one")
	}
}

func TestNilSourceAndDefaultVersion(t *testing.T) {
	c := NewCollector(nil, "")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	all := gatherSeries(t, reg)
	if len(all) != 1 || all[0].name != "chartee_build_info" || all[0].labels["version"] == "" {
		t.Fatalf("nil source: got %v, want only chartee_build_info with a version", all)
	}
	set := SourceFunc(func() []*tee.Tee { return nil })
	if got := set.Tees(); got != nil {
		t.Fatalf("SourceFunc returned %v", got)
	}
}

// TestConcurrentScrapesWhileLegsComeAndGo scrapes from several goroutines
// while output flows and legs attach, detach and swap: -race checks the
// lock-free reads, and counters never go backwards within a backend's
// life.
func TestConcurrentScrapesWhileLegsComeAndGo(t *testing.T) {
	r := newRig(t, "lab")
	set := &teeSet{}
	set.set(r.tee)
	_, reg := registry(t, set)
	steady := r.attach("steady", tee.LegOptions{Overflow: tee.Block})
	src := r.attachSource("ops", tee.LegOptions{Input: true})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 3 {
		wg.Go(func() {
			var last float64
			for {
				select {
				case <-stop:
					return
				default:
				}
				mfs, err := reg.Gather()
				if err != nil {
					errs <- err
					return
				}
				all := flatten(mfs)
				s, ok := find(all, "chartee_backend_bytes_total", "tee", "lab", "backend", "steady", "direction", "out")
				if !ok {
					errs <- errors.New("steady backend missing from a scrape")
					return
				}
				if s.value() < last {
					errs <- fmt.Errorf("bytes_total went back from %v to %v", last, s.value())
					return
				}
				last = s.value()
			}
		})
	}
	total := 0
	for i := range 20 {
		name := fmt.Sprint("tmp", i)
		r.attach(name, tee.LegOptions{})
		d := r.connect(src, fmt.Sprint("client", i))
		p := pattern(300, i)
		r.emit(p)
		total += len(p)
		typeInto(t, d, "k")
		if _, err := r.tee.Swap(context.Background(), name, memdev.Opener(nil, memdev.New(name+"b")), tee.SwapOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := r.tee.Detach(name); err != nil {
			t.Fatal(err)
		}
		d.EndInput()
	}
	waitWritten(t, steady, total)
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	waitValue(t, reg, float64(total), "chartee_backend_bytes_total", "tee", "lab", "backend", "steady", "direction", "out")
	waitValue(t, reg, 0, "chartee_backend_legs", "tee", "lab", "backend", "ops")
	waitValue(t, reg, 20, "chartee_swaps_total", "tee", "lab", "kind", "leg", "result", "ok")
	all := gatherSeries(t, reg)
	assertUnique(t, all)
	if n := len(named(all, "chartee_backend_legs")); n != 2 {
		t.Fatalf("%d backends exported after the temporary ones left, want 2", n)
	}
}

// TestGatherMatchesRegistry: the families Collector.Gather builds directly
// are what a pedantic prometheus.Registry returns for the same series
// through Collect (its own sort, consistency and duplicate checks), on a
// scrape with tees listed out of name order, backends whose names sort
// differently from their attach order, people on a service backend, a
// swap histogram, a duplicate tee name and a backend no label can carry.
func TestGatherMatchesRegistry(t *testing.T) {
	zeta, alpha, mid, dup := newRig(t, "zeta"), newRig(t, "alpha"), newRig(t, "Mid"), newRig(t, "alpha")
	set := &teeSet{}
	set.set(zeta.tee, alpha.tee, nil, mid.tee, dup.tee)
	c := NewCollector(set, "test")
	c.SetReload(ReloadState{Success: false, Time: time.Unix(1_700_000_000, 250_000_000)})
	for i, r := range []*rig{zeta, alpha, mid} {
		for _, name := range []string{"zz", "aa", "Mm", "b-1"} {
			r.attach(name, tee.LegOptions{})
		}
		r.emit(pattern(100+i, i))
	}
	alpha.attach("bad\xff", tee.LegOptions{})
	if _, err := zeta.tee.Swap(context.Background(), "aa", memdev.Opener(nil, memdev.New("aa2")), tee.SwapOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, role := range []chardev.Role{chardev.RoleView, chardev.RoleOperate, chardev.RoleOperate} {
		user := fmt.Sprint("user", i)
		d := personDev{memdev.New(user), chardev.NewIdentity(user, role)}
		if _, err := mid.tee.Join("web", tee.LegOptions{Input: true}, d); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*rig{zeta, alpha, mid} {
		eventually(t, "output written", func() bool {
			st := r.tee.Stats()
			for _, b := range st.Backends {
				if b.Name != "web" && b.Name != "bad\xff" && b.BytesOut != st.Offset {
					return false
				}
			}
			return true
		})
	}

	fast, fastErr := c.Gather()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	slow, slowErr := reg.Gather()
	if fastErr == nil || slowErr == nil {
		t.Fatalf("gather errors %v and %v, want the duplicate name and the bad backend in both", fastErr, slowErr)
	}
	for _, want := range []string{`two tees are named "alpha"`, `"bad\xff" is not valid UTF-8`} {
		if !strings.Contains(fastErr.Error(), want) || !strings.Contains(slowErr.Error(), want) {
			t.Errorf("gather errors %q and %q, want both to say %q", fastErr, slowErr, want)
		}
	}
	if got, want := exposition(t, fast), exposition(t, slow); got != want {
		t.Fatalf("Gather:\n%s\nregistry:\n%s", got, want)
	}
	all := flatten(fast)
	if s, ok := find(all, "chartee_sessions", "tee", "Mid", "backend", "web", "role", "operate"); !ok || s.value() != 2 {
		t.Errorf("sessions of Mid/web as operators: %v %v, want 2", s.metric, ok)
	}
	if _, ok := find(all, "chartee_backend_legs", "tee", "alpha", "backend", "Mm"); !ok {
		t.Error("alpha/Mm missing")
	}
	if h := named(all, "chartee_swap_duration_seconds"); len(h) != 1 || h[0].labels["tee"] != "zeta" ||
		h[0].metric.GetHistogram().GetSampleCount() != 1 || len(h[0].metric.GetHistogram().GetBucket()) == 0 {
		t.Errorf("swap histograms %v, want zeta's one leg swap", h)
	}
}

// exposition is mfs in the text format.
func exposition(t *testing.T, mfs []*dto.MetricFamily) string {
	t.Helper()
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}
