package metrics

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"chartee/chardev"
	"chartee/chardev/memdev"
	"chartee/tee"
)

// wait bounds every condition a test waits for; generous for a loaded
// machine under -race.
const wait = 10 * time.Second

// teeSet is the tests' Source: the daemon's list of running tees.
type teeSet struct {
	mu   sync.Mutex
	tees []*tee.Tee
}

func (s *teeSet) Tees() []*tee.Tee {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tees)
}

func (s *teeSet) set(tees ...*tee.Tee) {
	s.mu.Lock()
	s.tees = tees
	s.mu.Unlock()
}

// rig is a tee on an in-memory frontend.
type rig struct {
	t     testing.TB
	tee   *tee.Tee
	front *memdev.Device
	// open is the frontend's opener: memdev.Add gives it the device a
	// reconnect will get.
	open chardev.Opener
}

func newRig(t testing.TB, name string) *rig {
	t.Helper()
	return newRigOpts(t, tee.Options{Name: name})
}

// newRigOpts is newRig with tee options; a nil Frontend gets a memdev.
func newRigOpts(t testing.TB, opts tee.Options) *rig {
	t.Helper()
	r := &rig{t: t}
	if opts.Frontend == nil {
		r.front = memdev.New(opts.Name + "-front")
		r.open = memdev.Opener(nil, r.front)
		opts.Frontend = r.open
	}
	tt, err := tee.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r.tee = tt
	t.Cleanup(func() { tt.Close() })
	eventually(t, "frontend up", func() bool { return tt.Stats().Frontend.Up })
	return r
}

// attach attaches a single-stream memdev backend.
func (r *rig) attach(name string, opts tee.LegOptions) *memdev.Device {
	r.t.Helper()
	d := memdev.New(name)
	if err := r.tee.Attach(context.Background(), name, opts, memdev.Opener(nil, d)); err != nil {
		r.t.Fatal(err)
	}
	return d
}

// attachSource attaches an in-memory listener backend.
func (r *rig) attachSource(name string, opts tee.LegOptions) *memSource {
	r.t.Helper()
	src := newMemSource("mem:" + name)
	if err := r.tee.AttachSource(name, opts, src); err != nil {
		r.t.Fatal(err)
	}
	return src
}

// connect makes a client of src and waits until the tee has its leg.
func (r *rig) connect(src *memSource, name string) *memdev.Device {
	r.t.Helper()
	// Client legs are named "backend#N" and names never repeat: wait for
	// a new one (counting legs would be fooled by a client still leaving).
	before := map[string]bool{}
	for _, l := range r.tee.Stats().Legs {
		before[l.Name] = true
	}
	d := memdev.New(name)
	src.connect(d)
	eventually(r.t, "client leg "+name, func() bool {
		for _, l := range r.tee.Stats().Legs {
			if strings.Contains(l.Name, "#") && !before[l.Name] {
				return true
			}
		}
		return false
	})
	return d
}

// emit feeds frontend output and waits until the tee has read it.
func (r *rig) emit(p []byte) {
	r.t.Helper()
	r.front.Feed(p)
	if !r.front.WaitFed(wait) {
		r.t.Fatal("frontend output not consumed")
	}
}

// memSource is an in-memory chardev.Source: connect hands Accept a client.
type memSource struct {
	addr   string
	ch     chan chardev.Chardev
	closed chan struct{}
	once   sync.Once
}

func newMemSource(addr string) *memSource {
	return &memSource{addr: addr, ch: make(chan chardev.Chardev), closed: make(chan struct{})}
}

func (s *memSource) Accept() (chardev.Chardev, error) {
	select {
	case d := <-s.ch:
		return d, nil
	case <-s.closed:
		return nil, fmt.Errorf("accept %s: %w", s.addr, net.ErrClosed)
	}
}

func (s *memSource) Close() error              { s.once.Do(func() { close(s.closed) }); return nil }
func (s *memSource) Addr() string              { return s.addr }
func (s *memSource) connect(d chardev.Chardev) { s.ch <- d }

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func waitWritten(t testing.TB, d *memdev.Device, n int) {
	t.Helper()
	if !d.WaitWritten(n, wait) {
		t.Fatalf("%s: got %d bytes, want %d", d.Name, d.WrittenLen(), n)
	}
}

// series is one gathered sample: its family, labels and value.
type series struct {
	name   string
	labels map[string]string
	metric *dto.Metric
}

func (s series) value() float64 {
	switch {
	case s.metric.Counter != nil:
		return s.metric.Counter.GetValue()
	case s.metric.Gauge != nil:
		return s.metric.Gauge.GetValue()
	case s.metric.Untyped != nil:
		return s.metric.Untyped.GetValue()
	}
	return float64(s.metric.Histogram.GetSampleCount())
}

// key is the series' identity, name{k="v",...} with sorted labels.
func (s series) key() string {
	keys := make([]string, 0, len(s.labels))
	for k, v := range s.labels {
		keys = append(keys, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(keys)
	return s.name + "{" + strings.Join(keys, ",") + "}"
}

// gatherSeries gathers g and flattens it, failing on a gather error.
func gatherSeries(t testing.TB, g prometheus.Gatherer) []series {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	return flatten(mfs)
}

func flatten(mfs []*dto.MetricFamily) []series {
	var out []series
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			labels := map[string]string{}
			for _, lp := range m.Label {
				labels[lp.GetName()] = lp.GetValue()
			}
			out = append(out, series{name: mf.GetName(), labels: labels, metric: m})
		}
	}
	return out
}

// find returns the series named name whose labels are exactly kv (pairs).
func find(all []series, name string, kv ...string) (series, bool) {
	for _, s := range all {
		if s.name != name || len(s.labels) != len(kv)/2 {
			continue
		}
		match := true
		for i := 0; i < len(kv); i += 2 {
			if v, ok := s.labels[kv[i]]; !ok || v != kv[i+1] {
				match = false
				break
			}
		}
		if match {
			return s, true
		}
	}
	return series{}, false
}

// value gathers g and returns one series' value, failing if it is absent.
func value(t testing.TB, g prometheus.Gatherer, name string, kv ...string) float64 {
	t.Helper()
	s, ok := find(gatherSeries(t, g), name, kv...)
	if !ok {
		t.Fatalf("no series %s%v", name, kv)
	}
	return s.value()
}

// waitValue waits until a series has value want.
func waitValue(t testing.TB, g prometheus.Gatherer, want float64, name string, kv ...string) {
	t.Helper()
	var got float64
	var found bool
	deadline := time.Now().Add(wait)
	for {
		var s series
		s, found = find(gatherSeries(t, g), name, kv...)
		if found {
			got = s.value()
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v: got %v (present %v), want %v", name, kv, got, found, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// assertUnique fails if two gathered series have the same name and labels.
func assertUnique(t testing.TB, all []series) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range all {
		k := s.key()
		if seen[k] {
			t.Fatalf("duplicate series %s", k)
		}
		seen[k] = true
	}
}
