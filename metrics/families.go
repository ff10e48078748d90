package metrics

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"chartee/tee"
)

// The Collector builds its metric families directly instead of going
// through prometheus.NewConstMetric and a Registry: with 1,000 tees a
// scrape is about 28,000 series, and the registry's per-series label
// pairs, consistency hashing and sort by label values were most of a
// scrape's cost. Here a scrape allocates a handful of slices per family,
// label pairs share their names, and rows come out of tees sorted by name
// mostly in order already. The result is what a Registry would have
// returned for the same series (TestGatherMatchesRegistry checks it).

// maxLabels is the most variable labels a spec has.
const maxLabels = 3

// row is one series before it is built: label values in the spec's sorted
// label order, and its value (h for a histogram).
type row struct {
	vals [maxLabels]string
	v    float64
	h    *tee.Histogram
}

// buildErr is a series that could not be built, and its family.
type buildErr struct {
	spec *spec
	err  error
}

// builder collects one scrape's rows by family.
type builder struct {
	rows [][]row
	errs []buildErr
}

func (b *builder) fail(s *spec, err error) {
	b.errs = append(b.errs, buildErr{s, err})
}

// valid reports whether v can be a label value (Prometheus label values
// are UTF-8), recording a collection error for label if not.
func (b *builder) valid(s *spec, label, v string) bool {
	if utf8.ValidString(v) {
		return true
	}
	b.fail(s, fmt.Errorf("metrics: %s %q is not valid UTF-8: its series are not exported", label, v))
	return false
}

// add adds a counter or gauge series; vals are in s.labels order and
// already valid.
func (b *builder) add(s *spec, v float64, vals ...string) {
	b.addRow(s, row{v: v}, vals)
}

// addHistogram adds a histogram series.
func (b *builder) addHistogram(s *spec, h *tee.Histogram, vals ...string) {
	b.addRow(s, row{h: h}, vals)
}

// reserve sizes the row lists of the per-tee and per-backend families for
// tees and backends, so they are allocated once.
func (b *builder) reserve(tees, backends int) {
	b.init()
	for _, s := range specs {
		n := s.perTee*tees + s.perBackend*backends
		if n > 0 {
			b.rows[s.index] = slices.Grow(b.rows[s.index], n)
		}
	}
}

func (b *builder) init() {
	if b.rows == nil {
		b.rows = make([][]row, len(specs))
	}
}

func (b *builder) addRow(s *spec, r row, vals []string) {
	if len(vals) != len(s.labels) {
		panic(fmt.Sprintf("metrics: %s: %d label values for %d labels", s.name, len(vals), len(s.labels)))
	}
	for j, i := range s.perm {
		r.vals[j] = vals[i]
	}
	b.init()
	b.rows[s.index] = append(b.rows[s.index], r)
}

// compareRows orders series by label values in label name order, as
// prometheus sorts a family's metrics.
func compareRows(a, b row) int {
	for j := range a.vals {
		if c := strings.Compare(a.vals[j], b.vals[j]); c != 0 {
			return c
		}
	}
	return 0
}

// family builds s's family from its rows, nil if it has none. Its
// protobuf messages are carved from a few slices, one each per family.
func (b *builder) family(s *spec) *dto.MetricFamily {
	if b.rows == nil || len(b.rows[s.index]) == 0 {
		return nil
	}
	rows := b.rows[s.index]
	if !slices.IsSortedFunc(rows, compareRows) {
		slices.SortFunc(rows, compareRows) // rows are unique: no ties
	}
	n, k := len(rows), len(s.labels)
	ms := make([]dto.Metric, n)
	out := make([]*dto.Metric, n)
	pairs := make([]dto.LabelPair, n*k)
	labels := make([]*dto.LabelPair, n*k)
	values := make([]float64, n)
	var counters []dto.Counter
	var gauges []dto.Gauge
	switch s.typ {
	case counterType:
		counters = make([]dto.Counter, n)
	case gaugeType:
		gauges = make([]dto.Gauge, n)
	}
	for i := range rows {
		r, m := &rows[i], &ms[i]
		if k > 0 {
			m.Label = labels[i*k : (i+1)*k : (i+1)*k]
			for j := range k {
				p := &pairs[i*k+j]
				p.Name, p.Value = s.names[j], &r.vals[j]
				m.Label[j] = p
			}
		}
		values[i] = r.v
		switch s.typ {
		case counterType:
			counters[i].Value = &values[i]
			m.Counter = &counters[i]
		case gaugeType:
			gauges[i].Value = &values[i]
			m.Gauge = &gauges[i]
		case histogramType:
			m.Histogram = histogram(r.h)
		}
		out[i] = m
	}
	return &dto.MetricFamily{Name: &s.name, Help: &s.help, Type: s.typ.Enum(), Metric: out}
}

// histogram is h as prometheus.NewConstHistogram writes it: buckets by
// upper bound, the +Inf bucket implicit in the count.
func histogram(h *tee.Histogram) *dto.Histogram {
	bounds := make([]float64, 0, len(h.Buckets))
	for ub := range h.Buckets {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	counts := make([]uint64, len(bounds))
	buckets := make([]dto.Bucket, len(bounds))
	ptrs := make([]*dto.Bucket, len(bounds))
	for i, ub := range bounds {
		counts[i] = h.Buckets[ub]
		buckets[i].UpperBound, buckets[i].CumulativeCount = &bounds[i], &counts[i]
		ptrs[i] = &buckets[i]
	}
	count, sum := h.Count, h.SumSeconds
	return &dto.Histogram{SampleCount: &count, SampleSum: &sum, Bucket: ptrs}
}

// builtMetric is a built series as a prometheus.Metric, for Collect.
type builtMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

func (b builtMetric) Desc() *prometheus.Desc { return b.desc }

func (b builtMetric) Write(out *dto.Metric) error {
	out.Label, out.Counter, out.Gauge, out.Histogram = b.m.Label, b.m.Counter, b.m.Gauge, b.m.Histogram
	return nil
}
