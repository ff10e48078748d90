package tee

import (
	"slices"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

type swapKind int

const (
	swapLeg swapKind = iota
	swapSource
	swapFrontend
	swapFailover
	swapKinds
)

var swapKindNames = [swapKinds]string{"leg", "source", "frontend", "failover"}

// durationBuckets are the upper bounds (seconds) of the swap duration
// histograms. An array, not a slice: the counts are sized from it, and
// nobody outside can change it under them.
var durationBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// DurationBuckets returns the upper bounds (seconds) of the swap duration
// histograms, a copy the caller may keep.
func DurationBuckets() []float64 { return slices.Clone(durationBuckets[:]) }

// durationHistogram counts durations in durationBuckets with atomics, so a
// scrape reads it without a lock.
type durationHistogram struct {
	counts [len(durationBuckets) + 1]atomic.Uint64 // one per bucket, then +Inf
	sumNs  atomic.Uint64
	n      atomic.Uint64
}

func (h *durationHistogram) observe(d time.Duration) {
	s := d.Seconds()
	i := len(durationBuckets)
	for k, ub := range durationBuckets {
		if s <= ub {
			i = k
			break
		}
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(max(d, 0)))
	h.n.Add(1)
}

// Histogram is a snapshot of a duration histogram: cumulative counts per
// upper bound in DurationBuckets(), as Prometheus wants them.
type Histogram struct {
	Kind       string             `json:"kind"`
	Count      uint64             `json:"count"`
	SumSeconds float64            `json:"sum_seconds"`
	Buckets    map[float64]uint64 `json:"-"`
}

func (h *durationHistogram) snapshot(kind string) Histogram {
	out := Histogram{Kind: kind, Buckets: make(map[float64]uint64, len(durationBuckets))}
	var cum uint64
	for k, ub := range durationBuckets {
		cum += h.counts[k].Load()
		out.Buckets[ub] = cum
	}
	cum += h.counts[len(durationBuckets)].Load()
	out.Count = cum
	out.SumSeconds = float64(h.sumNs.Load()) / 1e9
	return out
}

// LegStats are one leg's live counters.
type LegStats struct {
	Name      string    `json:"name"`
	Backend   string    `json:"backend"`
	Peer      string    `json:"peer,omitempty"`
	Since     time.Time `json:"since"`
	BytesOut  uint64    `json:"bytes_out"`
	BytesIn   uint64    `json:"bytes_in"`
	Dropped   uint64    `json:"dropped_bytes"`
	Discarded uint64    `json:"input_discarded_bytes"`
	// InputRecordDropped is input this leg's recorder (a capture of
	// input) did not get because it fell too far behind.
	InputRecordDropped uint64 `json:"input_record_dropped_bytes,omitempty"`
	QueueBytes         int64  `json:"queue_bytes"`
	FirstOffset        uint64 `json:"first_offset"`
	NextOffset         uint64 `json:"next_offset"`
	// User and Role are the person behind the leg, if any.
	User string `json:"user,omitempty"`
	Role string `json:"role,omitempty"`
}

// BackendStats are a backend's counters, cumulative over every leg it has
// had (so they never go down when clients leave), plus its live legs.
type BackendStats struct {
	Name       string `json:"name"`
	Device     string `json:"device,omitempty"` // a single stream's device, described
	Queue      int    `json:"queue"`            // the queue bound, bytes
	Replay     int    `json:"replay"`
	Source     string `json:"source,omitempty"`
	Input      bool   `json:"input"`
	Overflow   string `json:"on_overflow"`
	Legs       int    `json:"legs"`
	BytesOut   uint64 `json:"bytes_out"`
	BytesIn    uint64 `json:"bytes_in"`
	Dropped    uint64 `json:"dropped_bytes"`
	Discarded  uint64 `json:"input_discarded_bytes"`
	QueueBytes int64  `json:"queue_bytes"`
}

// FrontendStats describe the frontend.
type FrontendStats struct {
	Up           bool   `json:"up"`
	Device       string `json:"device"`
	Candidate    int    `json:"candidate"`
	LastError    string `json:"last_error,omitempty"`
	BytesOut     uint64 `json:"bytes_out"`
	BytesIn      uint64 `json:"bytes_in"`
	Reconnects   uint64 `json:"reconnects"`
	Failovers    uint64 `json:"failovers"`
	OpenFailures uint64 `json:"open_failures"`
	InputDropped uint64 `json:"input_dropped_bytes"`
	InputPending int    `json:"input_pending_bytes"`
	// InputHookDropped is input the input hook (the audit log) was not
	// given because it fell too far behind (see SetInputHook).
	InputHookDropped uint64 `json:"input_hook_dropped_bytes,omitempty"`
}

// SwapCount counts swaps of one kind and result.
type SwapCount struct {
	Kind   string `json:"kind"`
	Result string `json:"result"`
	Count  uint64 `json:"count"`
}

// Stats is a snapshot of a tee.
type Stats struct {
	Name      string `json:"name"`
	Offset    uint64 `json:"offset"`
	InputMode string `json:"input"`
	WriteLock string `json:"write_lock,omitempty"`
	// WriteLockUser is the person holding the write lock, if any.
	WriteLockUser string         `json:"write_lock_user,omitempty"`
	Frontend      FrontendStats  `json:"frontend"`
	Backends      []BackendStats `json:"backends"`
	Legs          []LegStats     `json:"legs"`
	Swaps         []SwapCount    `json:"swaps"`
	// SwapDurations has one histogram per swap kind (leg, source,
	// frontend, failover), of successful swaps.
	SwapDurations []Histogram `json:"swap_durations"`
}

// Stats reads the live counters. Counters are atomics and the leg list is
// an immutable snapshot, so a scrape never takes the tee lock.
func (t *Tee) Stats() Stats {
	v := t.view.Load()
	st := Stats{Name: t.opts.Name, Offset: t.Offset()}
	f := &t.front
	f.mu.Lock()
	st.Frontend = FrontendStats{
		Up: f.dev != nil, Device: f.desc, Candidate: f.current, LastError: f.lastErr,
	}
	f.mu.Unlock()
	st.Frontend.BytesOut = f.bytesOut.Load()
	st.Frontend.BytesIn = f.bytesIn.Load()
	st.Frontend.Reconnects = f.reconnects.Load()
	st.Frontend.Failovers = f.failovers.Load()
	st.Frontend.OpenFailures = f.openFails.Load()
	st.Frontend.InputDropped = t.input.dropped.Load()
	st.Frontend.InputHookDropped = t.hook.dropped.Load()
	m := &t.input
	m.mu.Lock()
	st.Frontend.InputPending = m.bytes
	st.InputMode = m.mode.String()
	if h := m.holderLocked(time.Now()); h != nil {
		st.WriteLock, st.WriteLockUser = h.name, h.user()
	}
	m.mu.Unlock()

	legsOf := map[*backend]int{}
	queued := map[*backend]int64{}
	device := map[*backend]string{}
	for _, l := range v.legs {
		ls := LegStats{
			Name: l.name, Backend: l.backend.name, Peer: l.peer, Since: l.since,
			BytesOut: l.c.out.Load(), BytesIn: l.c.in.Load(), Dropped: l.c.dropped.Load(),
			Discarded: l.c.discarded.Load(), QueueBytes: l.c.queued.Load(), InputRecordDropped: l.c.recDropped.Load(),
			FirstOffset: l.c.first.Load(), NextOffset: l.c.next.Load(),
		}
		if l.ident != nil {
			ls.User, ls.Role = l.ident.User, l.ident.Role().String()
		}
		st.Legs = append(st.Legs, ls)
		legsOf[l.backend]++
		queued[l.backend] += ls.QueueBytes
		if l.peer == "" {
			device[l.backend] = chardev.Describe(l.dev)
		}
	}
	for _, bv := range v.backends {
		b := bv.b
		st.Backends = append(st.Backends, BackendStats{
			Name: b.name, Device: device[b], Queue: bv.opts.queueLimit(), Replay: bv.opts.Replay,
			Source: bv.source, Input: bv.opts.Input, Overflow: bv.opts.Overflow.String(),
			Legs: legsOf[b], BytesOut: b.c.out.Load(), BytesIn: b.c.in.Load(), Dropped: b.c.dropped.Load(),
			Discarded: b.c.discarded.Load(), QueueBytes: queued[b],
		})
	}
	for k := range swapKinds {
		st.Swaps = append(st.Swaps,
			SwapCount{Kind: swapKindNames[k], Result: "ok", Count: t.swapsDone[k].Load()},
			SwapCount{Kind: swapKindNames[k], Result: "error", Count: t.swapsFailed[k].Load()})
		st.SwapDurations = append(st.SwapDurations, t.swapTimes[k].snapshot(swapKindNames[k]))
	}
	return st
}
