package tee

import (
	"sync"
	"sync/atomic"
)

// A chunk is one frontend read: immutable once fanned out, shared by every
// leg's queue (no per-leg copy), and returned to a pool when the last leg
// has written it. off is the stream offset of its first byte.
type chunk struct {
	off  uint64
	b    []byte
	buf  []byte
	refs atomic.Int32
	pool *chunkPool // where it goes back to; nil: to the garbage collector
	// legOwned: a leg's compact buffer, which only that leg's queue
	// references, so the leg may append to it (see leg.pushLocked).
	legOwned bool
	// from is the leg an input chunk was typed on (nil for output
	// chunks): captures and the audit log name its person.
	from *leg
}

// chunkOverhead is what a queued chunk costs beyond its buffer: the chunk
// itself and its slots in queue rings. A span is charged cap(buf) plus
// this, so a leg's queue limit bounds the memory it keeps alive.
const chunkOverhead = 128

// charge is the memory a chunk keeps alive while queued.
func (c *chunk) charge() int { return cap(c.buf) + chunkOverhead }

// release drops one reference; the last one returns the chunk to its pool.
func (c *chunk) release() {
	if c.refs.Add(-1) != 0 {
		return
	}
	if c.pool != nil {
		c.b = nil
		c.legOwned = false
		c.from = nil
		c.pool.pool.Put(c)
	}
}

// chunkPool recycles read buffers of one size so the output path does not
// allocate at steady state.
type chunkPool struct {
	size int
	pool sync.Pool
}

func newChunkPool(size int) *chunkPool {
	p := &chunkPool{size: size}
	p.pool.New = func() any { return &chunk{buf: make([]byte, size), pool: p} }
	return p
}

// get returns a chunk holding one reference, its buffer ready to read into.
func (p *chunkPool) get() *chunk {
	c := p.pool.Get().(*chunk)
	c.b = c.buf[:0]
	c.refs.Store(1)
	return c
}

// release drops one reference to c, which goes back to the pool it came
// from (not necessarily p) when it was the last. Chunks made outside a
// pool (replay) go to the garbage collector.
func (p *chunkPool) release(c *chunk) { c.release() }

// sizedPools are chunk pools in powers of two from minSized up to half a
// read buffer: a small read is copied into the smallest that fits before
// it is shared, so a 1-byte read does not keep a 32 KiB buffer alive in
// every queue it waits in. Pools shrink on their own (sync.Pool empties at
// garbage collection), so a burst's buffers are returned.
type sizedPools []*chunkPool

const minSized = 64

func newSizedPools(readSize int) sizedPools {
	var ps sizedPools
	for size := minSized; size <= readSize/2; size *= 2 {
		ps = append(ps, newChunkPool(size))
	}
	return ps
}

// fit returns a chunk from the smallest pool holding n bytes, or nil if n
// is too large for any.
func (ps sizedPools) fit(n int) *chunk {
	for _, p := range ps {
		if n <= p.size {
			return p.get()
		}
	}
	return nil
}

// newChunk makes a one-off chunk holding a copy of b.
func newChunk(off uint64, b []byte) *chunk {
	c := &chunk{off: off, buf: append([]byte(nil), b...)}
	c.b = c.buf
	c.refs.Store(1)
	return c
}

// span is a queued piece of a chunk: bytes c.b[skip:] are still owed.
type span struct {
	c    *chunk
	skip int
}

func (s span) bytes() []byte { return s.c.b[s.skip:] }

// spanQueue is a FIFO of spans in a ring that grows as needed and is
// dropped when it empties after growing large.
type spanQueue struct {
	ring []span
	head int
	n    int
}

func (q *spanQueue) len() int { return q.n }

func (q *spanQueue) at(i int) span { return q.ring[(q.head+i)%len(q.ring)] }

func (q *spanQueue) grow() {
	size := 2 * len(q.ring)
	if size == 0 {
		size = 4 // an idle leg's queue: grows as a burst needs
	}
	ring := make([]span, size)
	for i := 0; i < q.n; i++ {
		ring[i] = q.at(i)
	}
	q.ring, q.head = ring, 0
}

func (q *spanQueue) push(s span) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = s
	q.n++
}

// pushFront puts spans ahead of the queue's contents, in order.
func (q *spanQueue) pushFront(spans []span) {
	for q.n+len(spans) > len(q.ring) {
		q.grow()
	}
	for i := len(spans) - 1; i >= 0; i-- {
		q.head = (q.head - 1 + len(q.ring)) % len(q.ring)
		q.ring[q.head] = spans[i]
		q.n++
	}
}

// front returns the head span for in-place update of its skip.
func (q *spanQueue) front() *span { return &q.ring[q.head] }

func (q *spanQueue) pop() span {
	s := q.ring[q.head]
	q.ring[q.head] = span{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	if q.n == 0 && len(q.ring) > maxIdleRing {
		// A burst grew the ring; an empty queue does not keep it.
		q.ring, q.head = nil, 0
	}
	return s
}

// maxIdleRing is the largest ring an empty queue keeps, so a leg's steady
// state does not allocate while a burst's ring is given back.
const maxIdleRing = 256

// drain removes and returns every span, oldest first.
func (q *spanQueue) drain() []span {
	out := make([]span, 0, q.n)
	for q.n > 0 {
		out = append(out, q.pop())
	}
	return out
}

// scrollback keeps at least the last size bytes of output for replay to
// late joiners. Large chunks at least half full are kept by reference (no
// copy on the output path); small ones — interactive output, a few bytes each — are copied
// into scratch buffers so a thousand one-byte chunks do not pin a thousand
// read buffers. Scratch buffers are recycled, so steady state allocates
// nothing.
type scrollback struct {
	size  int
	pool  *chunkPool
	spans spanQueue
	bytes int
	free  []*chunk // recycled scratch chunks
}

const scratchSize = 4 << 10

func newScrollback(size int, pool *chunkPool) scrollback {
	return scrollback{size: size, pool: pool}
}

func (s *scrollback) write(c *chunk) {
	if s.size <= 0 || len(c.b) == 0 {
		return
	}
	if len(c.b) >= scratchSize/4 && len(c.b) >= cap(c.buf)/2 {
		c.refs.Add(1)
		s.spans.push(span{c: c})
		s.bytes += len(c.b)
	} else {
		p := c.b
		for len(p) > 0 {
			var tail *chunk
			if n := s.spans.len(); n > 0 {
				if t := s.spans.at(n - 1).c; t.off == scratchMark && len(t.b) < cap(t.buf) {
					tail = t
				}
			}
			if tail == nil {
				tail = s.scratch()
				s.spans.push(span{c: tail})
			}
			k := copy(tail.buf[len(tail.b):cap(tail.buf)], p)
			tail.b = tail.buf[:len(tail.b)+k]
			s.bytes += k
			p = p[k:]
		}
	}
	for s.spans.len() > 1 && s.bytes-len(s.spans.at(0).c.b) >= s.size {
		old := s.spans.pop().c
		s.bytes -= len(old.b)
		if old.off == scratchMark {
			s.free = append(s.free, old)
		} else {
			s.pool.release(old)
		}
	}
}

// scratchMark tags scrollback-owned scratch chunks (their offset is not
// used: replay only needs bytes).
const scratchMark = ^uint64(0)

func (s *scrollback) scratch() *chunk {
	if n := len(s.free); n > 0 {
		c := s.free[n-1]
		s.free = s.free[:n-1]
		c.b = c.buf[:0]
		return c
	}
	c := &chunk{off: scratchMark, buf: make([]byte, scratchSize)}
	c.b = c.buf[:0]
	return c
}

// last returns a copy of the last k bytes kept (fewer if not that many).
func (s *scrollback) last(k int) []byte {
	k = min(k, s.bytes, s.size)
	out := make([]byte, k)
	rest := k
	for i := s.spans.len() - 1; i >= 0 && rest > 0; i-- {
		b := s.spans.at(i).c.b
		n := min(len(b), rest)
		copy(out[rest-n:], b[len(b)-n:])
		rest -= n
	}
	return out
}

// reset releases every chunk held.
func (s *scrollback) reset() {
	for s.spans.len() > 0 {
		c := s.spans.pop().c
		if c.off != scratchMark {
			s.pool.release(c)
		}
	}
	s.bytes, s.free = 0, nil
}
