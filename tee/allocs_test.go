//go:build !race

// The race detector makes sync.Pool drop a quarter of what is put back, so
// the pooled output path allocates under -race by design: these tests are
// built without it, and `make test` runs them in a step of their own
// (`make allocs`).

package tee

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"

	"chartee/chardev"
)

// TestAllocsOutputPath holds the engine to "0 allocs/op" on the steady
// state output path (docs/ENGINE.md): one frontend read fanned out to 1 and
// to 8 block legs, both a full 32 KiB read and a small one (copied into a
// sized pool buffer). Any allocation at all fails: besides AllocsPerRun's
// per-op figure (which rounds down), the process's exact malloc count over
// the whole measurement must not move.
//
// Both kinds of leg device are covered: one the engine hands to the leg's
// writer goroutine, and one that can take a write at once
// (chardev.NonBlockingWriter, as raw TCP clients), which the frontend
// reader writes to itself when the leg is idle.
func TestAllocsOutputPath(t *testing.T) {
	for _, legs := range []int{1, 8} {
		for _, read := range []int{benchChunk, 100} {
			for _, tryWrite := range []bool{false, true} {
				t.Run(fmt.Sprintf("legs=%d/read=%d/trywrite=%v", legs, read, tryWrite), func(t *testing.T) {
					testAllocsOutput(t, legs, read, tryWrite)
				})
			}
		}
	}
}

func testAllocsOutput(t *testing.T, legs, read int, tryWrite bool) {
	// The measurement runs as AllocsPerRun runs it, on one P, and with no
	// collection: a GOMAXPROCS change or a GC empties every sync.Pool
	// (and the runtime's own caches), and the steady state is a warm
	// pool. So both are set before the warm-up, not after.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	src := &allocSource{data: make([]byte, read), credits: make(chan struct{}), closed: make(chan struct{})}
	tt, err := New(Options{Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return src, nil }), ReadSize: benchChunk})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	defer src.Close()
	sinks := make([]*allocSink, legs)
	for i := range sinks {
		s := &allocSink{got: make(chan struct{}, 1), stop: make(chan struct{})}
		sinks[i] = s
		var dev chardev.Chardev = s
		if tryWrite {
			dev = &allocTrySink{s}
		}
		if err := tt.Attach(context.Background(), fmt.Sprintf("l%d", i), LegOptions{Overflow: Block},
			chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return dev, nil })); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
	}
	// One op: the frontend reads once, and every leg writes what it read.
	var want int64
	op := func() {
		want += int64(read)
		for _, s := range sinks {
			s.want.Store(want)
		}
		src.credits <- struct{}{}
		for _, s := range sinks {
			for s.n.Load() < want {
				<-s.got
			}
		}
	}
	// burst is k reads before waiting: the legs then write batches of up
	// to k queued chunks at once.
	burst := func(k int) {
		want += int64(k * read)
		for _, s := range sinks {
			s.want.Store(want)
		}
		for range k {
			src.credits <- struct{}{}
		}
		for _, s := range sinks {
			for s.n.Load() < want {
				<-s.got
			}
		}
	}
	// Warm up past the queues and the scrollback, and through bursts
	// up to the largest write batch, so every pool, ring and batch
	// buffer has its steady size; the steady state is then one read at
	// a time, each written before the next. The runtime's per-call-site
	// type assertion caches (an assertion that fails, as net.Buffers'
	// check for writev does, allocates its cache entry on about one miss
	// in 1024) need thousands of ops to fill: 20,000 make a missed entry
	// less likely than e^-19.
	for range max(2*benchQueue/read+64, 20000) {
		op()
	}
	for k := 1; k <= 2*maxBatch; k++ {
		burst(k)
	}
	// A leg's writer goroutine starts on each burst and ends when the
	// queue is empty; the runtime reuses ended goroutines, and allocates
	// one only when more are alive at once than ever before (a writer
	// still finishing as the next starts, rarely). Having had 128 alive
	// at once, it has enough to reuse.
	var spare sync.WaitGroup
	release := make(chan struct{})
	for range 128 {
		spare.Add(1)
		go func() { defer spare.Done(); <-release }()
	}
	close(release)
	spare.Wait()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	perOp := testing.AllocsPerRun(500, op)
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; perOp != 0 || n != 0 {
		t.Fatalf("%v allocs/op; %d allocations in 501 ops of %d bytes to %d legs: the output path must not allocate", perOp, n, read, legs)
	}
}

// allocSource is a frontend that returns one read of data per credit.
type allocSource struct {
	data    []byte
	credits chan struct{}
	closed  chan struct{}
	once    atomic.Bool
}

var errAllocClosed = errors.New("closed")

func (s *allocSource) Read(p []byte) (int, error) {
	select {
	case <-s.credits:
		return copy(p, s.data), nil
	case <-s.closed:
		return 0, errAllocClosed
	}
}
func (s *allocSource) Write(p []byte) (int, error) { return len(p), nil }
func (s *allocSource) Close() error {
	if s.once.CompareAndSwap(false, true) {
		close(s.closed)
	}
	return nil
}

// allocSink counts what it is given and signals got once it has want.
type allocSink struct {
	n, want atomic.Int64
	got     chan struct{}
	stop    chan struct{}
	once    atomic.Bool
}

func (s *allocSink) Write(p []byte) (int, error) {
	if s.n.Add(int64(len(p))) >= s.want.Load() {
		select {
		case s.got <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}
func (s *allocSink) Read([]byte) (int, error) { <-s.stop; return 0, errAllocClosed }
func (s *allocSink) Close() error {
	if s.once.CompareAndSwap(false, true) {
		close(s.stop)
	}
	return nil
}

// allocTrySink is an allocSink that takes every write at once.
type allocTrySink struct{ *allocSink }

var _ chardev.NonBlockingWriter = (*allocTrySink)(nil)

func (s *allocTrySink) TryWrite(p []byte) (int, error) { return s.Write(p) }
