package tee

// Engine benchmarks; results and how to read them are in docs/ENGINE.md.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./tee/
//
// Every benchmark reports bytes/s (b.SetBytes) and allocations
// (b.ReportAllocs). The fan-out benchmarks and the io.Copy baseline use
// the same in-memory devices in the same run, so their ratio is
// meaningful even on a noisy machine.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"chartee/chardev"
)

// benchSource produces limit bytes from a fixed pattern as fast as it is
// read, after start is closed. At pauseAt (if set) it waits for resume,
// so a benchmark can warm the pipeline up before its timer starts. At the
// end it returns EOF (for io.Copy) or blocks until Close (as a frontend,
// so the tee does not reconnect).
type benchSource struct {
	data    []byte
	limit   int64
	read    int64
	pauseAt int64
	start   chan struct{}
	resume  chan struct{}
	closed  chan struct{}
	once    sync.Once
	eofDone bool
	// credits, when set, paces the source: one token per read, as a
	// flow-controlled client would be (see BenchmarkInput).
	credits chan struct{}
}

func newBenchSource(limit int64, eof bool) *benchSource {
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i)
	}
	return &benchSource{
		data: data, limit: limit, eofDone: eof,
		start: make(chan struct{}), resume: make(chan struct{}), closed: make(chan struct{}),
	}
}

func (s *benchSource) Read(p []byte) (int, error) {
	<-s.start
	if s.pauseAt > 0 && s.read == s.pauseAt {
		<-s.resume
	}
	if s.read >= s.limit {
		if s.eofDone {
			return 0, io.EOF
		}
		<-s.closed
		return 0, errors.New("closed")
	}
	if s.credits != nil {
		select {
		case <-s.credits:
		case <-s.closed:
			return 0, errors.New("closed")
		}
	}
	n := int64(len(p))
	if s.pauseAt > s.read {
		n = min(n, s.pauseAt-s.read)
	}
	n = int64(copy(p, s.data[:min(n, s.limit-s.read)]))
	s.read += n
	return int(n), nil
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
	// credits, when set, gets a token back per creditSize bytes written.
	credits    chan struct{}
	creditSize int
}

func newBenchSink(want int64) *benchSink {
	return &benchSink{want: want, done: make(chan struct{}), stop: make(chan struct{})}
}

func (s *benchSink) Write(p []byte) (int, error) {
	if s.n.Add(int64(len(p))) >= s.want {
		s.once.Do(func() { close(s.done) })
	}
	if s.credits != nil {
		for range len(p) / s.creditSize {
			s.credits <- struct{}{}
		}
	}
	return len(p), nil
}
func (s *benchSink) Read(p []byte) (int, error) { <-s.stop; return 0, io.EOF }
func (s *benchSink) Close() error               { s.sOnc.Do(func() { close(s.stop) }); return nil }

const (
	benchChunk = 32 << 10
	// benchQueue is the fan-out legs' queue: 32 chunks.
	benchQueue = 1 << 20
	// benchWarm is output pushed through before the timer starts: enough
	// to fill every queue and the scrollback, so the pools and rings are
	// at their steady-state size and allocs/op shows the steady state.
	benchWarm = 2*benchQueue + 4*benchChunk
)

// BenchmarkCopyBaseline is plain io.Copy between the same in-memory
// devices the fan-out benchmarks use, in 32 KiB reads: the ceiling for
// one leg.
func BenchmarkCopyBaseline(b *testing.B) {
	b.SetBytes(benchChunk)
	b.ReportAllocs()
	total := int64(b.N) * benchChunk
	src := newBenchSource(total, true)
	dst := newBenchSink(total)
	close(src.start)
	buf := make([]byte, benchChunk)
	b.ResetTimer()
	// Hide ReaderFrom/WriterTo so io.Copy does plain 32 KiB reads, as
	// the tee does.
	if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf); err != nil {
		b.Fatal(err)
	}
	<-dst.done
}

// BenchmarkFanout measures output fan-out from one frontend to N legs.
// One op is one 32 KiB frontend read delivered to every leg (block) or
// offered to every leg (drop). Setup and a warm-up that fills every queue
// are outside the timer, so allocs/op is the steady state.
func BenchmarkFanout(b *testing.B) {
	for _, legs := range []int{1, 8, 64, 512} {
		for _, pol := range []Overflow{Block, Drop} {
			if pol == Drop && legs != 1 && legs != 512 {
				continue
			}
			b.Run(fmt.Sprintf("legs=%d/%s", legs, pol), func(b *testing.B) {
				benchFanout(b, legs, pol, benchQueue)
			})
		}
	}
	// The default 256 KiB queue keeps fewer buffers in flight, so they
	// stay in cache: see docs/ENGINE.md.
	b.Run("legs=1/block/queue=256KiB", func(b *testing.B) { benchFanout(b, 1, Block, 0) })
}

// BenchmarkOneLegVsCopy measures one-leg fan-out (block, as
// BenchmarkFanout/legs=1/block) and then io.Copy of the same number of
// bytes between the same devices, back to back in one benchmark, and
// reports copy time / fan-out time as "ratio-to-io.Copy" (the target is
// at least 0.5). Pairing them keeps the ratio meaningful on a machine
// whose load changes between one benchmark and the next.
func BenchmarkOneLegVsCopy(b *testing.B) {
	benchFanout(b, 1, Block, benchQueue)
	teeTime := b.Elapsed()
	total := int64(b.N) * benchChunk
	src := newBenchSource(total, true)
	dst := newBenchSink(total)
	close(src.start)
	buf := make([]byte, benchChunk)
	start := time.Now()
	if _, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf); err != nil {
		b.Fatal(err)
	}
	<-dst.done
	copyTime := time.Since(start)
	b.ReportMetric(float64(copyTime)/float64(teeTime), "ratio-to-io.Copy")
}

func benchFanout(b *testing.B, legs int, pol Overflow, queue int) {
	total := int64(b.N) * benchChunk
	src := newBenchSource(benchWarm+total, false)
	src.pauseAt = benchWarm
	tee, err := New(Options{Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return src, nil }), ReadSize: benchChunk})
	if err != nil {
		b.Fatal(err)
	}
	defer tee.Close()
	sinks := make([]*benchSink, legs)
	for i := range sinks {
		s := newBenchSink(benchWarm + total)
		sinks[i] = s
		if err := tee.Attach(context.Background(), fmt.Sprintf("l%d", i), LegOptions{Overflow: pol, Queue: queue},
			chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return s, nil })); err != nil {
			b.Fatal(err)
		}
	}
	// Drop legs may lose chunks: wait until everything was read and every
	// queue is empty. (The leg counters are read directly: Stats would
	// allocate inside the timed region.)
	drained := func(upTo int64) func() bool {
		return func() bool {
			if tee.Offset() < uint64(upTo) {
				return false
			}
			for _, l := range tee.view.Load().legs {
				if l.c.queued.Load() > 0 {
					return false
				}
			}
			return true
		}
	}
	close(src.start)
	pollUntil(drained(benchWarm))
	for _, s := range sinks {
		s.n.Store(0)
		s.want = total
	}

	b.SetBytes(benchChunk)
	b.ReportAllocs()
	b.ResetTimer()
	close(src.resume)
	if pol == Block {
		for _, s := range sinks {
			<-s.done
		}
	} else {
		pollUntil(drained(benchWarm + total))
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

// inputChunk is the size of one keystroke-sized input read.
const inputChunk = 64

// BenchmarkInput measures the input path: N legs typing into one frontend
// through the merge queue and the single frontend writer. One op is one
// 64-byte input chunk written to the frontend. The typers are paced by
// credits the frontend returns (at most inputWindow chunks in flight, far
// below the input buffer), like flow-controlled clients, so nothing is
// dropped and every op is a delivered chunk.
func BenchmarkInput(b *testing.B) {
	for _, legs := range []int{1, 8} {
		b.Run(fmt.Sprintf("legs=%d", legs), func(b *testing.B) { benchInput(b, legs, true) })
	}
}

// BenchmarkInputFlood is BenchmarkInput with unpaced typers: they type
// faster than the frontend writer takes input, so the input buffer
// overflows and the excess is dropped and counted (never blocking the
// legs). delivered-fraction is the part that reached the frontend.
func BenchmarkInputFlood(b *testing.B) {
	for _, legs := range []int{1, 8} {
		b.Run(fmt.Sprintf("legs=%d", legs), func(b *testing.B) { benchInput(b, legs, false) })
	}
}

const inputWindow = 256

func benchInput(b *testing.B, legs int, paced bool) {
	per := int64(max(b.N/legs, 1)) * inputChunk
	total := per * int64(legs)
	front := newBenchSink(total)
	var credits chan struct{}
	if paced {
		credits = make(chan struct{}, inputWindow)
		for range inputWindow {
			credits <- struct{}{}
		}
		front.credits, front.creditSize = credits, inputChunk
	}
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
		s.data = s.data[:inputChunk]
		s.credits = credits
		typers = append(typers, s)
		if err := tee.Attach(context.Background(), fmt.Sprintf("t%d", i), LegOptions{Input: true},
			chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return &pacedReader{s}, nil })); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(inputChunk)
	b.ReportAllocs()
	b.ResetTimer()
	for _, s := range typers {
		close(s.start)
	}
	// Input beyond the buffer is dropped and counted, never blocked on:
	// wait until every byte is written or counted.
	pollUntil(func() bool {
		return front.n.Load()+int64(tee.Stats().Frontend.InputDropped) >= total
	})
	b.StopTimer()
	delivered := float64(front.n.Load()) / float64(total)
	if paced && delivered != 1 {
		b.Fatalf("paced input lost bytes: delivered %v of %d", delivered, total)
	}
	if !paced {
		b.ReportMetric(delivered, "delivered-fraction")
	}
}

// pacedReader reads at most 64 bytes per call: keystroke-sized chunks.
type pacedReader struct{ *benchSource }

func (p *pacedReader) Read(b []byte) (int, error) {
	if len(b) > inputChunk {
		b = b[:inputChunk]
	}
	return p.benchSource.Read(b)
}

// BenchmarkKeystrokeRoundTrip measures one key typed by a client through
// the tee to the frontend and echoed back to the client, over real
// loopback TCP sockets (so the runtime's network poller and thread
// wakeups are in the path, as in the daemon): client → leg reader →
// frontend, the frontend's peer echoes, frontend reader → leg writer →
// client. One op is one key's round trip; it is the engine's share of
// the system benchmark's round trip (e2e/bench).
// BenchmarkKeystrokeRoundTrip: the leg's device is a plain net.Conn
// (queued to the leg's writer goroutine) or, "nonblocking", one that can
// also try a write without waiting (chardev.NonBlockingWriter, as a raw
// tcp-listen client), so the echo is written inline by the frontend
// reader. Both in one binary, for a paired comparison.
func BenchmarkKeystrokeRoundTrip(b *testing.B) {
	b.Run("writer", func(b *testing.B) { benchKeystroke(b, false) })
	b.Run("nonblocking", func(b *testing.B) { benchKeystroke(b, true) })
}

// tryConn is a net.Conn that can try a write without waiting, without
// allocating (like the tcp-listen client's).
type tryConn struct {
	net.Conn
	raw syscall.RawConn
	p   []byte
	n   int
	err error
	fn  func(uintptr) bool
}

func (c *tryConn) tryFd(fd uintptr) bool {
	c.n, c.err = syscall.Write(int(fd), c.p)
	return true
}

func (c *tryConn) TryWrite(p []byte) (int, error) {
	c.p = p
	err := c.raw.Write(c.fn)
	n, werr := max(c.n, 0), c.err
	c.p, c.err = nil, nil
	if werr == syscall.EAGAIN {
		werr = nil
	}
	if err == nil {
		err = werr
	}
	return n, err
}

func benchKeystroke(b *testing.B, nonblocking bool) {
	frontEnd, devEnd := tcpPair(b)
	var legEnd net.Conn
	legConn, client := tcpPair(b)
	legEnd = legConn
	if nonblocking {
		raw, err := legConn.(*net.TCPConn).SyscallConn()
		if err != nil {
			b.Fatal(err)
		}
		tc := &tryConn{Conn: legConn, raw: raw}
		tc.fn = tc.tryFd
		legEnd = tc
	}
	go func() { // the device: echo every byte
		buf := make([]byte, 4<<10)
		for {
			n, err := devEnd.Read(buf)
			if err != nil {
				return
			}
			if _, err := devEnd.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	defer devEnd.Close()
	defer client.Close()
	tee, err := New(Options{Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return frontEnd, nil })})
	if err != nil {
		b.Fatal(err)
	}
	defer tee.Close()
	if err := tee.Attach(context.Background(), "client", LegOptions{Input: true, Overflow: Block},
		chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return legEnd, nil })); err != nil {
		b.Fatal(err)
	}
	key := []byte{'k'}
	echo := make([]byte, 1)
	roundTrip := func() {
		if _, err := client.Write(key); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, echo); err != nil {
			b.Fatal(err)
		}
	}
	// The frontend is opened in the background: the first key may be
	// typed before it is up, and waits for it.
	for range 20 {
		roundTrip()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(b *testing.B) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	dial, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		b.Fatal(r.err)
	}
	return dial, r.c
}
