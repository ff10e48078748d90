package metrics

import (
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

func newDesc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

var (
	backendBytesDesc = newDesc("backend_bytes_total",
		`Bytes through a backend, summed over every leg it has had. direction="out": stream bytes written to its legs; direction="in": bytes its legs typed that were accepted for the frontend.`,
		[]string{"tee", "backend", "direction"})
	backendDroppedDesc = newDesc("backend_dropped_bytes_total",
		"Output bytes a backend's legs did not get because their queue was full (on_overflow: drop), summed over every leg it has had.",
		backendLabels)
	backendQueueDesc = newDesc("backend_queue_bytes",
		"Output bytes waiting now in the queues of a backend's legs.",
		backendLabels)
	backendLegsDesc = newDesc("backend_legs",
		"Legs a backend has now: 0 or 1 for a single-stream device, the number of connected clients for a listener.",
		backendLabels)
	inputDiscardedDesc = newDesc("input_discarded_bytes_total",
		"Bytes a backend's legs sent that never reached the frontend: input disabled, another leg holding the exclusive write lock, or the input buffer full.",
		backendLabels)
	frontendUpDesc = newDesc("frontend_up",
		"Whether the tee's frontend device is open (1) or being reconnected (0).",
		teeLabels)
	frontendBytesDesc = newDesc("frontend_bytes_total",
		`Bytes through the frontend device. direction="out": read from it and fanned out; direction="in": written to it (merged input).`,
		[]string{"tee", "direction"})
	frontendReconnectsDesc = newDesc("frontend_reconnects_total",
		"Times the frontend was reopened after it failed, on the same device or a failover device.",
		teeLabels)
	frontendFailoversDesc = newDesc("frontend_failovers_total",
		"Frontend reopens that landed on a different device than the one that failed.",
		teeLabels)
	frontendOpenFailuresDesc = newDesc("frontend_open_failures_total",
		"Attempts to open a frontend device (primary or failover) that failed: a device not plugged in, a socket not there yet. The error itself is logged and in `chartee ctl show`.",
		teeLabels)
	frontendInputDroppedDesc = newDesc("frontend_input_dropped_bytes_total",
		"Input bytes dropped because the frontend's input buffer was full, e.g. typed during an outage.",
		teeLabels)
	frontendInputPendingDesc = newDesc("frontend_input_pending_bytes",
		"Input bytes buffered for the frontend and not yet written to it.",
		teeLabels)
	streamOffsetDesc = newDesc("stream_offset_bytes",
		"Stream offset of the tee: output bytes offered to every leg since the tee started.",
		teeLabels)
	swapsDesc = newDesc("swaps_total",
		"Hot swaps by kind (leg, source, frontend, failover) and result (ok, error).",
		[]string{"tee", "kind", "result"})
	swapDurationDesc = newDesc("swap_duration_seconds",
		"Duration of successful hot swaps by kind; for failover, from losing the frontend to the new device being open.",
		[]string{"tee", "kind"})
	reloadSuccessDesc = newDesc("config_last_reload_success",
		"Whether the last configuration load or reload succeeded (1) or failed and the previous configuration kept running (0).",
		nil)
	reloadTimeDesc = newDesc("config_last_reload_timestamp_seconds",
		"Unix time of the last configuration load or reload attempt.",
		nil)
	sessionsDesc = newDesc("sessions",
		"People attached now through a service (ssh, web), by the backend they joined and their role on the tee (view, operate, admin). No user names: the label set stays bounded.",
		[]string{"tee", "backend", "role"})
	buildInfoDesc = newDesc("build_info",
		"Always 1; the version label is the running chartee version.",
		[]string{"version"})
)

var allDescs = []*prometheus.Desc{
	backendBytesDesc, backendDroppedDesc, backendQueueDesc, backendLegsDesc, inputDiscardedDesc,
	frontendUpDesc, frontendBytesDesc, frontendReconnectsDesc, frontendFailoversDesc, frontendOpenFailuresDesc,
	frontendInputDroppedDesc, frontendInputPendingDesc, streamOffsetDesc,
	swapsDesc, swapDurationDesc, reloadSuccessDesc, reloadTimeDesc, buildInfoDesc, sessionsDesc,
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
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads every tee's counters now. A second tee with a name already
// seen is not exported: it would duplicate series, so it is reported as a
// collection error (the rest of the scrape is still served).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	e := emitter{ch: ch}
	e.gauge(buildInfoDesc, 1, c.version)
	if r, ok := c.Reload(); ok {
		e.gauge(reloadSuccessDesc, boolFloat(r.Success))
		e.gauge(reloadTimeDesc, unixSeconds(r.Time))
	}
	if c.src == nil {
		return
	}
	seen := map[string]bool{}
	for _, t := range c.src.Tees() {
		if t == nil {
			continue
		}
		st := t.Stats()
		if seen[st.Name] {
			ch <- prometheus.NewInvalidMetric(frontendUpDesc,
				fmt.Errorf("metrics: two tees are named %q; only the first is exported", st.Name))
			continue
		}
		seen[st.Name] = true
		collectTee(e, &st)
	}
}

// collectTee emits one tee's series from its stats snapshot.
func collectTee(e emitter, st *tee.Stats) {
	name := st.Name
	f := &st.Frontend
	e.gauge(frontendUpDesc, boolFloat(f.Up), name)
	e.counter(frontendBytesDesc, f.BytesOut, name, directionOut)
	e.counter(frontendBytesDesc, f.BytesIn, name, directionIn)
	e.counter(frontendReconnectsDesc, f.Reconnects, name)
	e.counter(frontendFailoversDesc, f.Failovers, name)
	e.counter(frontendOpenFailuresDesc, f.OpenFailures, name)
	e.counter(frontendInputDroppedDesc, f.InputDropped, name)
	e.gauge(frontendInputPendingDesc, float64(f.InputPending), name)
	e.gauge(streamOffsetDesc, float64(st.Offset), name)

	for i := range st.Backends {
		b := &st.Backends[i]
		e.counter(backendBytesDesc, b.BytesOut, name, b.Name, directionOut)
		e.counter(backendBytesDesc, b.BytesIn, name, b.Name, directionIn)
		e.counter(backendDroppedDesc, b.Dropped, name, b.Name)
		e.counter(inputDiscardedDesc, b.Discarded, name, b.Name)
		e.gauge(backendQueueDesc, float64(b.QueueBytes), name, b.Name)
		e.gauge(backendLegsDesc, float64(b.Legs), name, b.Name)
	}

	collectSessions(e, st)
	for _, s := range st.Swaps {
		e.counter(swapsDesc, s.Count, name, s.Kind, s.Result)
	}
	// A histogram is 17 lines; a tee that never swapped (most of them,
	// in a fleet) would carry 68 lines of zeros. Each kind's histogram
	// appears with its first successful swap; chartee_swaps_total is
	// always there for increase() to see that swap.
	for _, h := range st.SwapDurations {
		if h.Count > 0 {
			e.histogram(swapDurationDesc, h, name, h.Kind)
		}
	}
}

// collectSessions counts the legs that carry a person, by backend and role.
func collectSessions(e emitter, st *tee.Stats) {
	counts := map[string]map[string]int{}
	var backends []string
	for _, l := range st.Legs {
		if l.User == "" {
			continue
		}
		if counts[l.Backend] == nil {
			counts[l.Backend] = map[string]int{}
			backends = append(backends, l.Backend)
		}
		counts[l.Backend][l.Role]++
	}
	for _, b := range backends {
		for _, r := range sessionRoles {
			e.gauge(sessionsDesc, float64(counts[b][r]), st.Name, b, r)
		}
	}
}

// emitter builds const metrics and sends them. A label value Prometheus
// cannot carry (a backend name that is not valid UTF-8) becomes a
// collection error for that one series instead of a panic in the daemon.
type emitter struct {
	ch chan<- prometheus.Metric
}

func (e emitter) send(m prometheus.Metric, err error, desc *prometheus.Desc) {
	if err != nil {
		m = prometheus.NewInvalidMetric(desc, err)
	}
	e.ch <- m
}

func (e emitter) counter(desc *prometheus.Desc, v uint64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	e.send(m, err, desc)
}

func (e emitter) gauge(desc *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	e.send(m, err, desc)
}

func (e emitter) histogram(desc *prometheus.Desc, h tee.Histogram, labels ...string) {
	m, err := prometheus.NewConstHistogram(desc, h.Count, h.SumSeconds, h.Buckets, labels...)
	e.send(m, err, desc)
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
