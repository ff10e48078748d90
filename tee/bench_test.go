package tee

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
)

// benchSource produces limit bytes from a fixed pattern as fast as it is
// read, after start is closed; then it returns EOF (for io.Copy) or blocks
// until Close (as a frontend, so the tee does not reconnect).
type benchSource struct {
	data    []byte
	limit   int64
	read    int64
	start   chan struct{}
	closed  chan struct{}
	once    sync.Once
	eofDone bool
}

func newBenchSource(limit int64, eof bool) *benchSource {
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i)
	}
	return &benchSource{data: data, limit: limit, start: make(chan struct{}), closed: make(chan struct{}), eofDone: eof}
}

func (s *benchSource) Read(p []byte) (int, error) {
	<-s.start
	if s.read >= s.limit {
		if s.eofDone {
			return 0, io.EOF
		}
		<-s.closed
		return 0, errors.New("closed")
	}
	n := copy(p, s.data[:min(int64(len(p)), s.limit-s.read)])
	s.read += int64(n)
	return n, nil
}
func (s *benchSource) Write(p []byte) (int, error) { return len(p), nil }
func (s *benchSource) Close() error                { s.once.Do(func() { close(s.closed) }); return nil }

// benchSink counts what it is given and signals when it has want bytes.
type benchSink struct {
	n    atomic.Int64
	want int64
	done chan struct{}
	once sync.Once
	stop chan struct{}
	sOnc sync.Once
}

func newBenchSink(want int64) *benchSink {
	return &benchSink{want: want, done: make(chan struct{}), stop: make(chan struct{})}
}

func (s *benchSink) Write(p []byte) (int, error) {
	if s.n.Add(int64(len(p))) >= s.want {
		s.once.Do(func() { close(s.done) })
	}
	return len(p), nil
}
func (s *benchSink) Read(p []byte) (int, error) { <-s.stop; return 0, io.EOF }
func (s *benchSink) Close() error               { s.sOnc.Do(func() { close(s.stop) }); return nil }

const benchChunk = 32 << 10

// BenchmarkCopyBaseline is plain io.Copy between the same in-memory
// devices the fan-out benchmarks use: the ceiling for one leg.
func BenchmarkCopyBaseline(b *testing.B) {
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	total := int64(b.N) * benchChunk
	src := newBenchSource(total, true)
	dst := newBenchSink(total)
	close(src.start)
	b.ResetTimer()
	// Hide ReaderFrom/WriterTo so io.Copy does plain 32 KiB reads, as
	// the tee does.
	if _, err := io.Copy(struct{ io.Writer }{dst}, struct{ io.Reader }{src}); err != nil {
		b.Fatal(err)
	}
	<-dst.done
}

// BenchmarkFanout measures output fan-out from one frontend to N legs.
// One op is one 32 KiB frontend read delivered to every leg; allocs/op
// is measured after setup, at steady state.
func BenchmarkFanout(b *testing.B) {
	for _, legs := range []int{1, 8, 64, 512} {
		for _, pol := range []Overflow{Block, Drop} {
			if pol == Drop && legs != 1 && legs != 512 {
				continue
			}
			b.Run(fmt.Sprintf("legs=%d/%s", legs, pol), func(b *testing.B) {
				benchFanout(b, legs, pol)
			})
		}
	}
}

func benchFanout(b *testing.B, legs int, pol Overflow) {
	total := int64(b.N) * benchChunk
	src := newBenchSource(total, false)
	tee, err := New(Options{Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return src, nil }), ReadSize: benchChunk})
	if err != nil {
		b.Fatal(err)
	}
	defer tee.Close()
	sinks := make([]*benchSink, legs)
	for i := range sinks {
		s := newBenchSink(total)
		sinks[i] = s
		if err := tee.Attach(context.Background(), fmt.Sprintf("l%d", i), LegOptions{Overflow: pol, Queue: 1 << 20},
			chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return s, nil })); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	close(src.start)
	if pol == Block {
		for _, s := range sinks {
			<-s.done
		}
	} else {
		// Drop legs may lose chunks: wait until everything was read and
		// every queue is empty.
		pollUntil(func() bool {
			if tee.Offset() < uint64(total) {
				return false
			}
			for _, l := range tee.Stats().Legs {
				if l.QueueBytes > 0 {
					return false
				}
			}
			return true
		})
	}
	b.StopTimer()
	if pol == Drop {
		var delivered int64
		for _, s := range sinks {
			delivered += s.n.Load()
		}
		b.ReportMetric(float64(delivered)/float64(total*int64(legs)), "delivered-fraction")
	}
}

func pollUntil(cond func() bool) {
	for !cond() {
		time.Sleep(50 * time.Microsecond)
	}
}

// BenchmarkInput measures the input merge: N legs typing into one
// frontend. One op is one 64-byte input chunk written to the frontend.
func BenchmarkInput(b *testing.B) {
	for _, legs := range []int{1, 8} {
		b.Run(fmt.Sprintf("legs=%d", legs), func(b *testing.B) {
			const chunk = 64
			per := int64(b.N) * chunk / int64(legs)
			total := per * int64(legs)
			front := newBenchSink(total)
			tee, err := New(Options{
				Frontend:    chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return front, nil }),
				InputBuffer: 1 << 20,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer tee.Close()
			var typers []*benchSource
			for i := range legs {
				s := newBenchSource(per, false)
				s.data = s.data[:chunk]
				typers = append(typers, s)
				if err := tee.Attach(context.Background(), fmt.Sprintf("t%d", i), LegOptions{Input: true},
					chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return &pacedReader{s}, nil })); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(chunk)
			b.ReportAllocs()
			b.ResetTimer()
			for _, s := range typers {
				close(s.start)
			}
			// Input beyond the buffer is dropped and counted, never
			// blocked on: wait until every byte is written or counted.
			pollUntil(func() bool {
				return front.n.Load()+int64(tee.Stats().Frontend.InputDropped) >= total
			})
			b.StopTimer()
			b.ReportMetric(float64(front.n.Load())/float64(max(total, 1)), "delivered-fraction")
		})
	}
}

// pacedReader reads at most 64 bytes per call: keystroke-sized chunks.
type pacedReader struct{ *benchSource }

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(b) > 64 {
		b = b[:64]
	}
	return p.benchSource.Read(b)
}
