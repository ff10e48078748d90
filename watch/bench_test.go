package watch

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/tee"
)

const benchChunk = 32 << 10

// consoleText is a chunk of boot-log-like lines, none of which matches
// the benchmark's watches (a console on a good day).
var consoleText = func() []byte {
	var sb strings.Builder
	for i := 0; sb.Len() < benchChunk; i++ {
		fmt.Fprintf(&sb, "[%5d.%06d] usb 1-1: new high-speed USB device number %d using ehci-pci\r\n", i/1000, i%1000*997, i%128)
	}
	return []byte(sb.String()[:benchChunk])
}()

// benchSource is a frontend that prints total bytes of consoleText as
// fast as it is read, then waits for Close.
type benchSource struct {
	left atomic.Int64
	done chan struct{}
	once sync.Once
	// rate, when not zero, paces the output to that many bytes a second.
	rate  float64
	start time.Time
	sent  int64
}

func (s *benchSource) Read(p []byte) (int, error) {
	if s.left.Load() <= 0 {
		<-s.done
		return 0, io.EOF
	}
	if s.rate > 0 {
		if s.start.IsZero() {
			s.start = time.Now()
		}
		time.Sleep(time.Until(s.start.Add(time.Duration(float64(s.sent) / s.rate * float64(time.Second)))))
	}
	n := copy(p, consoleText)
	s.left.Add(-int64(n))
	s.sent += int64(n)
	return n, nil
}
func (s *benchSource) Write(p []byte) (int, error) { return len(p), nil }
func (s *benchSource) Close() error                { s.once.Do(func() { close(s.done) }); return nil }

// benchSink is a leg (say a capture) that counts what it gets.
type benchSink struct {
	want int64
	got  atomic.Int64
	done chan struct{}
	stop chan struct{}
	once sync.Once
}

func (s *benchSink) Write(p []byte) (int, error) {
	if s.got.Add(int64(len(p))) >= s.want {
		s.once.Do(func() { close(s.done) })
	}
	return len(p), nil
}
func (s *benchSink) Read(p []byte) (int, error) { <-s.stop; return 0, io.EOF }
func (s *benchSink) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	return nil
}

func benchSpecs(b *testing.B, n int) []Spec {
	var specs []Spec
	for i := range n {
		re, err := CompilePattern(fmt.Sprintf(`Kernel panic - not syncing: %d|BUG: soft lockup - CPU#%d|watchdog%d: `, i, i, i))
		if err != nil {
			b.Fatal(err)
		}
		specs = append(specs, Spec{Name: fmt.Sprintf("w%d", i), Re: re, Actions: []Action{{Kind: ActEvent}}})
	}
	return specs
}

// runConsole streams b.N chunks through a tee with one block-policy leg
// and, with watches > 0, the watch leg, and returns how long the leg took
// to get everything and the fraction of the stream the watch leg dropped.
func runConsole(b *testing.B, chunks, watches int, rate float64) (time.Duration, float64) {
	total := int64(chunks) * benchChunk
	src := &benchSource{done: make(chan struct{}), rate: rate}
	src.left.Store(total)
	t, err := tee.New(tee.Options{Name: "bench", Hold: true, ReadSize: benchChunk,
		Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return src, nil })})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	sink := &benchSink{want: total, done: make(chan struct{}), stop: make(chan struct{})}
	ctx := context.Background()
	if err := t.Attach(ctx, "capture", tee.LegOptions{Overflow: tee.Block}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return sink, nil })); err != nil {
		b.Fatal(err)
	}
	if watches > 0 {
		w := New(t, benchSpecs(b, watches), Options{})
		defer w.Close()
		if err := t.Attach(ctx, BackendName, tee.LegOptions{Overflow: tee.Drop, Queue: 4 << 20}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return w.Device(), nil })); err != nil {
			b.Fatal(err)
		}
	}
	start := time.Now()
	t.Start()
	<-sink.done
	took := time.Since(start)
	dropped := 0.0
	for _, bs := range t.Stats().Backends {
		if bs.Name == BackendName && total > 0 {
			dropped = float64(bs.Dropped) / float64(total)
		}
	}
	return took, dropped
}

// BenchmarkConsoleWatches: a console with a capture leg, without watches
// and with 1 and 100, at two speeds: "firehose" (a frontend that never
// waits: memory speed, far beyond any console) and "10MBps" (paced to
// 10 MB/s, a fast console: 115200 baud is 11.5 KB/s). The capture's
// throughput is the console's speed; the watch leg drops rather than slow
// it down. "ratio-to-no-watches" is the capture's time with no watch,
// measured in the same run just before, divided by its time with the
// watches (1.0: not slowed at all); "watch-dropped" is the share of the
// stream the watch leg had to drop to keep up (matches in it are missed;
// its drops are in chartee_backend_dropped_bytes_total{backend="@watch"}).
// On the firehose the watch leg's matching competes for the CPU with the
// capture (a 2-core machine); the console itself never waits for it.
func BenchmarkConsoleWatches(b *testing.B) {
	for _, speed := range []struct {
		name string
		rate float64
	}{{"firehose", 0}, {"10MBps", 10e6}} {
		for _, n := range []int{0, 1, 100} {
			b.Run(fmt.Sprintf("%s/watches=%d", speed.name, n), func(b *testing.B) {
				b.SetBytes(benchChunk)
				base, _ := runConsole(b, b.N, 0, speed.rate)
				b.ResetTimer()
				took, dropped := runConsole(b, b.N, n, speed.rate)
				b.StopTimer()
				b.ReportMetric(float64(base)/float64(took), "ratio-to-no-watches")
				b.ReportMetric(dropped, "watch-dropped")
			})
		}
	}
}

// BenchmarkMatcher100 is the matcher alone: 100 watches over console text.
func BenchmarkMatcher100(b *testing.B) {
	specs := benchSpecs(b, 100)
	var pats []Pattern
	for _, s := range specs {
		pats = append(pats, Pattern{Name: s.Name, Re: s.Re})
	}
	m := NewMatcher(pats)
	b.SetBytes(benchChunk)
	var off uint64
	for b.Loop() {
		m.Feed(consoleText, off, func(Match) { b.Fatal("unexpected match") })
		off += benchChunk
	}
}

// slowDev is a leg device that takes 200µs per write and uses no CPU.
type slowDev struct{ stop chan struct{} }

func (s *slowDev) Write(p []byte) (int, error) {
	time.Sleep(200 * time.Microsecond)
	return len(p), nil
}
func (s *slowDev) Read(p []byte) (int, error) { <-s.stop; return 0, io.EOF }
func (s *slowDev) Close() error               { close(s.stop); return nil }

// BenchmarkFirehoseSlowDropLeg separates the engine from the matcher: on
// the firehose, a drop-policy leg whose device is merely slow (it sleeps,
// no CPU) next to the capture. "ratio-to-no-slow-leg" is the capture's
// time without it divided by its time with it: what any slow drop leg —
// the watch leg among them — costs the others on a memory-speed stream.
func BenchmarkFirehoseSlowDropLeg(b *testing.B) {
	b.SetBytes(benchChunk)
	run := func(slow bool) time.Duration {
		total := int64(b.N) * benchChunk
		src := &benchSource{done: make(chan struct{})}
		src.left.Store(total)
		t, err := tee.New(tee.Options{Name: "bench", Hold: true, ReadSize: benchChunk,
			Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return src, nil })})
		if err != nil {
			b.Fatal(err)
		}
		defer t.Close()
		sink := &benchSink{want: total, done: make(chan struct{}), stop: make(chan struct{})}
		ctx := context.Background()
		if err := t.Attach(ctx, "capture", tee.LegOptions{Overflow: tee.Block}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return sink, nil })); err != nil {
			b.Fatal(err)
		}
		if slow {
			if err := t.Attach(ctx, "slow", tee.LegOptions{Overflow: tee.Drop, Queue: 4 << 20}, chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
				return &slowDev{stop: make(chan struct{})}, nil
			})); err != nil {
				b.Fatal(err)
			}
		}
		start := time.Now()
		t.Start()
		<-sink.done
		return time.Since(start)
	}
	base := run(false)
	b.ResetTimer()
	took := run(true)
	b.StopTimer()
	b.ReportMetric(float64(base)/float64(took), "ratio-to-no-slow-leg")
}
