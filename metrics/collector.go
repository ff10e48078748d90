package metrics

import (
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"chartee/tee"
)

// Source lists the tees to export. The daemon implements it; it is called
// once per scrape, so it should return the current set without blocking.
type Source interface {
	Tees() []*tee.Tee
}

// SourceFunc adapts a function to Source.
type SourceFunc func() []*tee.Tee

// Tees calls f.
func (f SourceFunc) Tees() []*tee.Tee { return f() }

// ReloadState is the outcome of the last configuration load or reload.
type ReloadState struct {
	Success bool
	Time    time.Time
}

const namespace = "chartee"

// Label values of the direction label.
const (
	directionOut = "out"
	directionIn  = "in"
)

var (
	teeLabels     = []string{"tee"}
	backendLabels = []string{"tee", "backend"}
)

// A spec is one metric family the Collector exports: its descriptor and
// what building its series directly needs (see families.go).
type spec struct {
	name, help string
	typ        dto.MetricType
	// labels are the variable label names in the order values are given.
	labels []string
	desc   *prometheus.Desc
	// perm[j] is the index in labels of the j-th label name in sorted
	// order, the order of a series' label pairs; names are those names.
	perm  []int
	names []*string
	// index is the spec's position in specs (sorted by name).
	index int
	// perTee and perBackend are the series every tee and every backend
	// have in this family, to size a scrape's rows once (see init).
	perTee, perBackend int
}

// specs lists every family, sorted by name once newSpec has run: the
// order a Gather returns them in.
var specs []*spec

func newSpec(name, help string, typ dto.MetricType, labels []string) *spec {
	s := &spec{name: namespace + "_" + name, help: help, typ: typ, labels: labels}
	s.desc = prometheus.NewDesc(s.name, help, labels, nil)
	s.perm = make([]int, len(labels))
	for i := range s.perm {
		s.perm[i] = i
	}
	slices.SortFunc(s.perm, func(a, b int) int { return strings.Compare(labels[a], labels[b]) })
	for _, i := range s.perm {
		s.names = append(s.names, &labels[i])
	}
	specs = append(specs, s)
	slices.SortFunc(specs, func(a, b *spec) int { return strings.Compare(a.name, b.name) })
	for i, s := range specs {
		s.index = i
	}
	return s
}

const (
	counterType   = dto.MetricType_COUNTER
	gaugeType     = dto.MetricType_GAUGE
	histogramType = dto.MetricType_HISTOGRAM
)

var (
	backendBytesDesc = newSpec("backend_bytes_total",
		`Bytes through a backend, summed over every leg it has had. direction="out": stream bytes written to its legs; direction="in": bytes its legs typed that were accepted for the frontend.`,
		counterType, []string{"tee", "backend", "direction"})
	backendDroppedDesc = newSpec("backend_dropped_bytes_total",
		"Output bytes a backend's legs did not get because their queue was full (on_overflow: drop), summed over every leg it has had.",
		counterType, backendLabels)
	backendQueueDesc = newSpec("backend_queue_bytes",
		"Output bytes waiting now in the queues of a backend's legs.",
		gaugeType, backendLabels)
	backendLegsDesc = newSpec("backend_legs",
		"Legs a backend has now: 0 or 1 for a single-stream device, the number of connected clients for a listener.",
		gaugeType, backendLabels)
	inputDiscardedDesc = newSpec("input_discarded_bytes_total",
		"Bytes a backend's legs sent that never reached the frontend: input disabled, another leg holding the exclusive write lock, or the input buffer full.",
		counterType, backendLabels)
	frontendUpDesc = newSpec("frontend_up",
		"Whether the tee's frontend device is open (1) or being reconnected (0).",
		gaugeType, teeLabels)
	frontendBytesDesc = newSpec("frontend_bytes_total",
		`Bytes through the frontend device. direction="out": read from it and fanned out; direction="in": written to it (merged input).`,
		counterType, []string{"tee", "direction"})
	frontendReconnectsDesc = newSpec("frontend_reconnects_total",
		"Times the frontend was reopened after it failed, on the same device or a failover device.",
		counterType, teeLabels)
	frontendFailoversDesc = newSpec("frontend_failovers_total",
		"Frontend reopens that landed on a different device than the one that failed.",
		counterType, teeLabels)
	frontendOpenFailuresDesc = newSpec("frontend_open_failures_total",
		"Attempts to open a frontend device (primary or failover) that failed: a device not plugged in, a socket not there yet. The error itself is logged and in `chartee ctl show`.",
		counterType, teeLabels)
	frontendInputDroppedDesc = newSpec("frontend_input_dropped_bytes_total",
		"Input bytes dropped because the frontend's input buffer was full, e.g. typed during an outage.",
		counterType, teeLabels)
	frontendInputPendingDesc = newSpec("frontend_input_pending_bytes",
		"Input bytes buffered for the frontend and not yet written to it.",
		gaugeType, teeLabels)
	streamOffsetDesc = newSpec("stream_offset_bytes",
		"Stream offset of the tee: output bytes offered to every leg since the tee started.",
		gaugeType, teeLabels)
	swapsDesc = newSpec("swaps_total",
		"Hot swaps by kind (leg, source, frontend, failover) and result (ok, error).",
		counterType, []string{"tee", "kind", "result"})
	swapDurationDesc = newSpec("swap_duration_seconds",
		"Duration of successful hot swaps by kind; for failover, from losing the frontend to the new device being open.",
		histogramType, []string{"tee", "kind"})
	reloadSuccessDesc = newSpec("config_last_reload_success",
		"Whether the last configuration load or reload succeeded (1) or failed and the previous configuration kept running (0).",
		gaugeType, nil)
	reloadTimeDesc = newSpec("config_last_reload_timestamp_seconds",
		"Unix time of the last configuration load or reload attempt.",
		gaugeType, nil)
	sessionsDesc = newSpec("sessions",
		"People attached now through a service (ssh, web), by the backend they joined and their role on the tee (view, operate, admin). No user names: the label set stays bounded.",
		gaugeType, []string{"tee", "backend", "role"})
	buildInfoDesc = newSpec("build_info",
		"Always 1; the version label is the running chartee version.",
		gaugeType, []string{"version"})
)

func init() {
	for _, s := range []*spec{frontendUpDesc, frontendReconnectsDesc, frontendFailoversDesc,
		frontendOpenFailuresDesc, frontendInputDroppedDesc, frontendInputPendingDesc, streamOffsetDesc} {
		s.perTee = 1
	}
	frontendBytesDesc.perTee = 2 // in, out
	swapsDesc.perTee = 8         // 4 kinds by ok, error
	for _, s := range []*spec{backendDroppedDesc, backendQueueDesc, backendLegsDesc, inputDiscardedDesc} {
		s.perBackend = 1
	}
	backendBytesDesc.perBackend = 2 // in, out
}

// sessionRoles are the roles a session can hold; each gets a series, zeros
// included, for every backend that has a session.
var sessionRoles = []string{"view", "operate", "admin"}

// Collector is a prometheus.Collector that reads the engine's live
// counters at scrape time. It holds no series of its own, so tees and
// backends that come and go never leave stale ones behind; see the package
// documentation for what each metric means. It is safe for concurrent
// scrapes and SetReload calls.
type Collector struct {
	src     Source
	version string

	mu        sync.Mutex
	reload    ReloadState
	reloadSet bool
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector for the tees src lists. version labels
// chartee_build_info; empty means the main module's version from the
// build information, or "unknown".
func NewCollector(src Source, version string) *Collector {
	if version == "" {
		version = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			version = bi.Main.Version
		}
	}
	return &Collector{src: src, version: version}
}

// SetReload records the outcome of a configuration load or reload. The
// daemon calls it after the initial load too; until the first call the
// config_last_reload series are not exported.
func (c *Collector) SetReload(r ReloadState) {
	c.mu.Lock()
	c.reload, c.reloadSet = r, true
	c.mu.Unlock()
}

// Reload returns the state last given to SetReload, and whether there was
// one.
func (c *Collector) Reload() (ReloadState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reload, c.reloadSet
}

// Describe sends every descriptor the Collector may emit.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range specs {
		ch <- s.desc
	}
}

// Collect sends the series Gather builds, one const metric each, and a
// collection error for each series Gather could not build. It serves a
// Collector registered in any registry; Registry.Gather (the daemon's
// scrape) skips it and takes the families directly, which is what makes
// a scrape of 1,000 tees cheap.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	b := c.build()
	for _, s := range specs {
		for _, m := range b.family(s).GetMetric() {
			ch <- builtMetric{s.desc, m}
		}
	}
	for _, e := range b.errs {
		ch <- prometheus.NewInvalidMetric(e.spec.desc, e.err)
	}
}

// Gather reads every tee's counters now and returns the Collector's metric
// families, sorted by name and each family's series sorted by label
// values, as a prometheus.Registry would return them. A second tee with a
// name already seen is not exported: it would duplicate series, so it is
// reported in the error (a prometheus.MultiError), as is a name no label
// can carry; the other series are still returned.
func (c *Collector) Gather() ([]*dto.MetricFamily, error) {
	b := c.build()
	out := make([]*dto.MetricFamily, 0, len(specs))
	for _, s := range specs {
		if mf := b.family(s); mf != nil {
			out = append(out, mf)
		}
	}
	var errs prometheus.MultiError
	for _, e := range b.errs {
		errs.Append(e.err)
	}
	return out, errs.MaybeUnwrap()
}

// build reads the reload state and every tee's stats into rows.
func (c *Collector) build() *builder {
	b := &builder{}
	b.add(buildInfoDesc, 1, c.version)
	if r, ok := c.Reload(); ok {
		b.add(reloadSuccessDesc, boolFloat(r.Success))
		b.add(reloadTimeDesc, unixSeconds(r.Time))
	}
	if c.src == nil {
		return b
	}
	seen := map[string]bool{}
	var all []*tee.Stats
	for _, t := range c.src.Tees() {
		if t == nil {
			continue
		}
		st := t.Stats()
		if seen[st.Name] {
			b.fail(frontendUpDesc, fmt.Errorf("metrics: two tees are named %q; only the first is exported", st.Name))
			continue
		}
		seen[st.Name] = true
		all = append(all, &st)
	}
	// In name order, most families' rows come out already sorted.
	slices.SortFunc(all, func(a, b *tee.Stats) int { return strings.Compare(a.Name, b.Name) })
	backends := 0
	for _, st := range all {
		backends += len(st.Backends)
	}
	b.reserve(len(all), backends)
	for _, st := range all {
		collectTee(b, st)
	}
	return b
}

// collectTee adds one tee's series from its stats snapshot.
func collectTee(b *builder, st *tee.Stats) {
	name := st.Name
	if !b.valid(frontendUpDesc, "tee", name) {
		return
	}
	f := &st.Frontend
	b.add(frontendUpDesc, boolFloat(f.Up), name)
	b.add(frontendBytesDesc, float64(f.BytesOut), name, directionOut)
	b.add(frontendBytesDesc, float64(f.BytesIn), name, directionIn)
	b.add(frontendReconnectsDesc, float64(f.Reconnects), name)
	b.add(frontendFailoversDesc, float64(f.Failovers), name)
	b.add(frontendOpenFailuresDesc, float64(f.OpenFailures), name)
	b.add(frontendInputDroppedDesc, float64(f.InputDropped), name)
	b.add(frontendInputPendingDesc, float64(f.InputPending), name)
	b.add(streamOffsetDesc, float64(st.Offset), name)

	for i := range st.Backends {
		bs := &st.Backends[i]
		if !b.valid(backendLegsDesc, "backend", bs.Name) {
			continue
		}
		b.add(backendBytesDesc, float64(bs.BytesOut), name, bs.Name, directionOut)
		b.add(backendBytesDesc, float64(bs.BytesIn), name, bs.Name, directionIn)
		b.add(backendDroppedDesc, float64(bs.Dropped), name, bs.Name)
		b.add(inputDiscardedDesc, float64(bs.Discarded), name, bs.Name)
		b.add(backendQueueDesc, float64(bs.QueueBytes), name, bs.Name)
		b.add(backendLegsDesc, float64(bs.Legs), name, bs.Name)
	}

	collectSessions(b, st)
	for _, s := range st.Swaps {
		b.add(swapsDesc, float64(s.Count), name, s.Kind, s.Result)
	}
	// A histogram is 17 lines; a tee that never swapped (most of them,
	// in a fleet) would carry 68 lines of zeros. Each kind's histogram
	// appears with its first successful swap; chartee_swaps_total is
	// always there for increase() to see that swap.
	for i := range st.SwapDurations {
		if h := &st.SwapDurations[i]; h.Count > 0 {
			b.addHistogram(swapDurationDesc, h, name, h.Kind)
		}
	}
}

// collectSessions counts the legs that carry a person, by backend and role.
func collectSessions(b *builder, st *tee.Stats) {
	var counts map[string]map[string]int
	var backends []string
	for _, l := range st.Legs {
		if l.User == "" {
			continue
		}
		if counts == nil {
			counts = map[string]map[string]int{}
		}
		if counts[l.Backend] == nil {
			// A leg's backend is one of st.Backends: one that no
			// label can carry is already reported there.
			if !utf8.ValidString(l.Backend) {
				continue
			}
			counts[l.Backend] = map[string]int{}
			backends = append(backends, l.Backend)
		}
		counts[l.Backend][l.Role]++
	}
	for _, be := range backends {
		for _, r := range sessionRoles {
			b.add(sessionsDesc, float64(counts[be][r]), st.Name, be, r)
		}
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as fractional Unix seconds; the zero time is 0. Whole
// seconds and the fraction are converted apart: UnixNano is beyond
// float64's 53-bit mantissa, so dividing it would blur the fraction.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
