package tee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// modelDev is one device a backend has had, and the part of the stream it
// is owed: from start on (until the next device's start, for a chain).
type modelDev struct {
	dev   *memdev.Device
	start uint64
	dead  bool // its writes were made to fail: it holds a prefix only
	// overlap is set when the next device came by an overlap swap: this
	// one may run past the next one's start.
	overlap bool
	// fresh: this device came by a swap that found no previous leg (it
	// had died and was already being removed), so nothing was handed
	// over to it and the chain may have a gap before its start.
	fresh bool
	// gapAt..gapEnd is a part of the stream this device is not owed: it
	// took over from a leg that had died before the swap, so it got what
	// that leg still held (from start to gapAt) and then the stream from
	// the cut (gapEnd); what the dead leg lost in between is gone.
	gapAt, gapEnd uint64
}

// owed is the part of the stream d is owed up to offset to.
func (m *model) owed(d *modelDev, to uint64) []byte {
	if d.gapEnd == 0 || to <= d.gapAt {
		return m.stream[d.start:max(to, d.start)]
	}
	return append(slices.Clone(m.stream[d.start:d.gapAt]), m.stream[d.gapEnd:max(to, d.gapEnd)]...)
}

// stoppedAt is the stream offset after the n-th byte d is owed.
func (d *modelDev) stoppedAt(n uint64) uint64 {
	if d.gapEnd == 0 || d.start+n <= d.gapAt {
		return d.start + n
	}
	return d.gapEnd + (n - (d.gapAt - d.start))
}

type modelBackend struct {
	name     string
	opts     LegOptions
	chain    []*modelDev
	stalled  bool
	detached bool
	tokens   int // input tokens typed
}

func (b *modelBackend) cur() *modelDev { return b.chain[len(b.chain)-1] }

type model struct {
	h        *harness
	opener   chardev.Opener
	fronts   []*memdev.Device
	stream   []byte
	backends []*modelBackend
	n        int
}

func (m *model) front() *memdev.Device { return m.fronts[len(m.fronts)-1] }

func (m *model) live() []*modelBackend {
	var out []*modelBackend
	for _, b := range m.backends {
		if !b.detached && !b.cur().dead {
			out = append(out, b)
		}
	}
	return out
}

// emit feeds output and waits until the tee has fanned all of it out, so
// the model's stream length is the tee's offset between actions.
func (m *model) emit(t *rapid.T, p []byte) {
	m.stream = append(m.stream, p...)
	m.front().Feed(p)
	m.waitOffset(t)
}

func (m *model) waitOffset(t *rapid.T) {
	want := uint64(len(m.stream))
	deadline := time.Now().Add(wait)
	for m.h.tee.Offset() != want {
		if time.Now().After(deadline) {
			t.Fatalf("tee offset %d, want %d", m.h.tee.Offset(), want)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

// waitReaderSettled waits until the frontend reader has taken every byte
// fed, or has stopped taking more (it waits for room in a stalled block
// leg).
func (m *model) waitReaderSettled() {
	last, still := internalOffset(m.h.tee), 0
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && still < 10; {
		time.Sleep(200 * time.Microsecond)
		cur := internalOffset(m.h.tee)
		if cur == uint64(len(m.stream)) {
			return
		}
		if cur == last {
			still++
		} else {
			last, still = cur, 0
		}
	}
}

// swap swaps b's device and extends its chain. blocked says the frontend
// reader may be waiting for room in b, so the cut may be short of the
// bytes fed so far.
func (m *model) swap(t *rapid.T, b *modelBackend, mode SwapMode, blocked bool) {
	nd := memdev.New(fmt.Sprintf("%s.%d", b.name, len(b.chain)))
	rep, err := m.h.tee.Swap(context.Background(), b.name, memdev.Opener(nil, nd), SwapOptions{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cut > uint64(len(m.stream)) || (!blocked && rep.Cut != uint64(len(m.stream))) {
		t.Fatalf("cut %d, stream %d (reader blocked: %v)", rep.Cut, len(m.stream), blocked)
	}
	start := rep.NewStart
	if start > rep.Cut || (mode == Overlap && start != rep.Cut) {
		t.Fatalf("%s swap: new leg starts at %d, cut %d", mode, start, rep.Cut)
	}
	if mode == Overlap {
		b.cur().overlap = true
	}
	b.stalled = false
	nd2 := &modelDev{dev: nd, start: start, fresh: rep.OldErr == "no previous leg"}
	if b.cur().dead && !nd2.fresh && mode == Handover && b.opts.Overflow == Block {
		// A block leg's queue is contiguous: what was handed over runs
		// from start. (A drop leg's may have gaps; its checks only ask
		// for a subsequence of the stream from start.)
		nd2.gapAt, nd2.gapEnd = start+rep.Handed, rep.Cut
	}
	b.chain = append(b.chain, nd2)
}

func TestPropertyStreamInvariants(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := newHarness(t, Options{
			ReadSize: 512, DrainTimeout: 20 * time.Millisecond,
			Reconnect: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		})
		defer h.tee.Close()
		m := &model{h: h, opener: h.open, fronts: []*memdev.Device{h.front}}

		rt.Repeat(map[string]func(*rapid.T){
			"": func(t *rapid.T) {},
			"emit": func(t *rapid.T) {
				n := rapid.IntRange(1, 1500).Draw(t, "n")
				m.emit(t, streamPattern(len(m.stream), n))
			},
			"attach": func(t *rapid.T) {
				if len(m.live()) >= 6 {
					t.Skip("enough legs")
				}
				m.n++
				b := &modelBackend{name: fmt.Sprintf("b%d", m.n), opts: LegOptions{
					Overflow: rapid.SampledFrom([]Overflow{Drop, Block}).Draw(t, "policy"),
					Queue:    rapid.SampledFrom([]int{700, 4096, 1 << 20}).Draw(t, "queue"),
					Input:    rapid.Bool().Draw(t, "input"),
				}}
				d := memdev.New(b.name)
				if err := h.tee.Attach(context.Background(), b.name, b.opts, memdev.Opener(nil, d)); err != nil {
					t.Fatal(err)
				}
				b.chain = []*modelDev{{dev: d, start: uint64(len(m.stream))}}
				m.backends = append(m.backends, b)
			},
			"detach": func(t *rapid.T) {
				live := m.live()
				if len(live) == 0 {
					t.Skip("no legs")
				}
				b := rapid.SampledFrom(live).Draw(t, "leg")
				if err := h.tee.Detach(b.name); err != nil {
					t.Fatal(err)
				}
				b.detached = true
			},
			"stall": func(t *rapid.T) {
				var drops []*modelBackend
				for _, b := range m.live() {
					if b.opts.Overflow == Drop {
						drops = append(drops, b)
					}
				}
				if len(drops) == 0 {
					t.Skip("no drop legs")
				}
				b := rapid.SampledFrom(drops).Draw(t, "leg")
				b.cur().dev.Stall()
				b.stalled = true
			},
			"resume": func(t *rapid.T) {
				for _, b := range m.live() {
					if b.stalled {
						b.cur().dev.Resume()
						b.stalled = false
					}
				}
			},
			"kill": func(t *rapid.T) {
				live := m.live()
				if len(live) == 0 {
					t.Skip("no legs")
				}
				b := rapid.SampledFrom(live).Draw(t, "leg")
				b.cur().dev.FailWrites(errors.New("peer reset"))
				b.cur().dead = true
			},
			"swap": func(t *rapid.T) {
				live := m.live()
				if len(live) == 0 {
					t.Skip("no legs")
				}
				b := rapid.SampledFrom(live).Draw(t, "leg")
				mode := rapid.SampledFrom([]SwapMode{Handover, Overlap}).Draw(t, "mode")
				if b.stalled && rapid.Bool().Draw(t, "old dies") {
					// The stalled old leg never drains: a dead disk.
				} else if b.stalled {
					b.cur().dev.Resume()
					b.stalled = false
				}
				m.swap(t, b, mode, false)
			},
			// A dead leg is replaced: a handover takes what it still
			// owed, unless it was already gone.
			"swap-dead": func(t *rapid.T) {
				var dead []*modelBackend
				for _, b := range m.backends {
					if !b.detached && b.cur().dead {
						dead = append(dead, b)
					}
				}
				if len(dead) == 0 {
					t.Skip("no dead legs")
				}
				b := rapid.SampledFrom(dead).Draw(t, "leg")
				m.swap(t, b, Handover, false)
			},
			// A block leg stops taking output while more comes: the
			// frontend reader waits for room in it. Then the leg resumes,
			// is swapped, detached or dies while the reader waits.
			"blocked": func(t *rapid.T) {
				var blocks []*modelBackend
				for _, b := range m.live() {
					if b.opts.Overflow == Block && b.opts.Queue <= 4096 {
						blocks = append(blocks, b)
					}
				}
				if len(blocks) == 0 {
					t.Skip("no small block legs")
				}
				b := rapid.SampledFrom(blocks).Draw(t, "leg")
				b.cur().dev.Stall()
				n := rapid.IntRange(b.opts.Queue+1, b.opts.Queue+3000).Draw(t, "n")
				p := streamPattern(len(m.stream), n)
				m.stream = append(m.stream, p...)
				m.front().Feed(p)
				m.waitReaderSettled()
				switch rapid.SampledFrom([]string{"resume", "handover", "overlap", "detach", "die"}).Draw(t, "then") {
				case "resume":
					b.cur().dev.Resume()
				case "handover":
					m.swap(t, b, Handover, true) // the stalled old leg times out
				case "overlap":
					m.swap(t, b, Overlap, true)
				case "detach":
					if err := h.tee.Detach(b.name); err != nil {
						t.Fatal(err)
					}
					b.detached = true
				case "die":
					b.cur().dev.FailWrites(errors.New("disk gone"))
					b.cur().dead = true
				}
				m.waitOffset(t)
			},
			"type": func(t *rapid.T) {
				live := m.live()
				if len(live) == 0 {
					t.Skip("no legs")
				}
				b := rapid.SampledFrom(live).Draw(t, "leg")
				tok := fmt.Sprintf("<%s:%d>", b.cur().dev.Name, b.tokens)
				if !b.opts.Input {
					tok = "XXXXXXXX" // must never reach the frontend
				}
				b.tokens++
				b.cur().dev.Feed([]byte(tok))
			},
			"frontend-swap": func(t *rapid.T) {
				nf := memdev.New(fmt.Sprintf("front%d", len(m.fronts)))
				op := memdev.Opener(nil, nf)
				if _, err := h.tee.SwapFrontend(context.Background(), op); err != nil {
					t.Fatal(err)
				}
				m.fronts = append(m.fronts, nf)
				// The swapped-in device's opener is now the primary:
				// later reconnects come from it.
				m.opener = op
			},
			"frontend-fail": func(t *rapid.T) {
				before := h.tee.Stats().Frontend.Reconnects
				nf := memdev.New(fmt.Sprintf("front%d", len(m.fronts)))
				memdev.Add(m.opener, nf)
				m.front().FailReads(errors.New("vanished"))
				m.fronts = append(m.fronts, nf)
				deadline := time.Now().Add(wait)
				for st := h.tee.Stats(); st.Frontend.Reconnects == before || !st.Frontend.Up; st = h.tee.Stats() {
					if time.Now().After(deadline) {
						t.Fatal("frontend did not reconnect")
					}
					time.Sleep(100 * time.Microsecond)
				}
			},
		})

		m.check(rt)
	})
}

// check quiesces the tee and verifies every invariant.
func (m *model) check(t *rapid.T) {
	for _, b := range m.live() {
		if b.stalled {
			b.cur().dev.Resume()
		}
	}
	end := uint64(len(m.stream))
	deadline := time.Now().Add(wait)
	for {
		settled := true
		st := m.h.tee.Stats()
		for _, l := range st.Legs {
			if l.QueueBytes != 0 {
				settled = false
			}
		}
		if settled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("legs did not settle: %+v", st.Legs)
		}
		time.Sleep(100 * time.Microsecond)
	}
	m.checkChains(t, end)
	bounds := m.chunkBounds(t, end)
	backendStats := map[string]BackendStats{}
	for _, bs := range m.h.tee.Stats().Backends {
		backendStats[bs.Name] = bs
	}
	for _, b := range m.backends {
		var written uint64
		for i, d := range b.chain {
			got := d.dev.Written()
			written += uint64(len(got))
			owedEnd := end
			if i+1 < len(b.chain) {
				owedEnd = b.chain[i+1].start
			}
			if b.detached || d.dead || d.overlap {
				owedEnd = max(owedEnd, d.stoppedAt(uint64(len(got))))
			}
			owed := m.owed(d, min(owedEnd, end))
			switch {
			case b.opts.Overflow == Block && !d.dead && !b.detached && !d.overlap:
				// Lossless, and a handover chain joins without gap or
				// repeat: each device has exactly its part.
				if !bytes.Equal(got, owed) {
					t.Fatalf("%s: block leg %s got %d bytes, owed %d (start %d)", b.name, d.dev.Name, len(got), len(owed), d.start)
				}
			case b.opts.Overflow == Block:
				// Died, detached or overlapped: a prefix of what it was owed.
				if !bytes.HasPrefix(owed, got) {
					t.Fatalf("%s: %s is not a prefix of its stream", b.name, d.dev.Name)
				}
			default:
				// A drop leg loses whole chunks (frontend reads): what
				// it got is its owed part with some chunks removed, in
				// order, none twice; only its last chunk may be cut
				// short, by its death or detach. Where one that died,
				// was detached or overlapped stopped is not known
				// (stoppedAt counts as if nothing was dropped), so its
				// chunks are sought up to the stream's end.
				to, stopped := min(owedEnd, end), b.detached || d.dead || d.overlap
				if stopped {
					to = end
				}
				if at, err := wholeChunks(got, m.owedChunks(d, to, bounds), stopped); err != nil {
					t.Fatalf("%s: drop leg %s (owed %d bytes from %d) at its byte %d: %v", b.name, d.dev.Name, len(owed), d.start, at, err)
				}
			}
		}
		// Drops account for every missing byte of a live drop chain.
		// A device that died loses what it was owed without counting it
		// as dropped, so only chains without one are accounted.
		// With one dead, the counts still agree with what was written,
		// and written plus dropped never exceeds the stream.
		if !b.detached && b.opts.Overflow == Drop && !anyOverlap(b) {
			bs := backendStats[b.name]
			total := end - b.chain[0].start
			switch {
			case bs.BytesOut != written:
				t.Fatalf("%s: written %d, stats say %d", b.name, written, bs.BytesOut)
			case !anyDead(b) && written+bs.Dropped != total:
				t.Fatalf("%s: written %d + dropped %d != %d", b.name, written, bs.Dropped, total)
			case written+bs.Dropped > total:
				t.Fatalf("%s: with a dead device, written %d + dropped %d > %d", b.name, written, bs.Dropped, total)
			}
		}
	}
	m.checkInput(t)
}

// checkChains checks each backend's devices together: what they got, in
// chain order, is an in-order subsequence of the stream from the first
// one's start (no byte twice, none out of order) unless an overlap swap
// allowed repeats; a block leg swapped by handover while it was alive
// passed the stream on without a gap (old end == new start); and a dead
// one's successor starts no earlier than where it stopped.
func (m *model) checkChains(t *rapid.T, end uint64) {
	for _, b := range m.backends {
		var all []byte
		for i, d := range b.chain {
			got := d.dev.Written()
			all = append(all, got...)
			if i+1 == len(b.chain) || d.overlap {
				continue
			}
			next := b.chain[i+1]
			stopped := d.stoppedAt(uint64(len(got)))
			switch {
			case next.fresh:
			case b.opts.Overflow == Block && !d.dead && next.start != stopped:
				t.Fatalf("%s: handover from %s (wrote %d..%d) to %s (starts at %d): gap or repeat", b.name, d.dev.Name, d.start, stopped, next.dev.Name, next.start)
			case b.opts.Overflow == Block && next.start < stopped:
				t.Fatalf("%s: %s wrote to %d but its successor starts at %d", b.name, d.dev.Name, stopped, next.start)
			}
		}
		if !anyOverlap(b) && !isSubsequence(all, m.stream[b.chain[0].start:end]) {
			t.Fatalf("%s: the chain's bytes are not an in-order subsequence of the stream", b.name)
		}
	}
}

func anyDead(b *modelBackend) bool {
	for _, d := range b.chain {
		if d.dead {
			return true
		}
	}
	return false
}

func anyOverlap(b *modelBackend) bool {
	for _, d := range b.chain {
		if d.overlap {
			return true
		}
	}
	return false
}

// checkInput: no byte from an input-disabled leg reached a frontend, every
// token arrived whole, and each leg's tokens kept their order.
func (m *model) checkInput(t *rapid.T) {
	var all []byte
	for _, f := range m.fronts {
		all = append(all, f.Written()...)
	}
	s := string(all)
	if strings.Contains(s, "X") {
		t.Fatalf("input from a read-only leg reached the frontend: %q", s)
	}
	last := map[string]int{}
	for len(s) > 0 {
		if s[0] != '<' {
			t.Fatalf("split input token at %q", s)
		}
		end := strings.IndexByte(s, '>')
		if end < 0 {
			t.Fatalf("split input token at %q", s)
		}
		var name string
		var n int
		if _, err := fmt.Sscanf(strings.ReplaceAll(s[1:end], ":", " "), "%s %d", &name, &n); err != nil {
			t.Fatalf("bad token %q", s[:end+1])
		}
		if prev, ok := last[name]; ok && n <= prev {
			t.Fatalf("input from %s out of order: %d after %d", name, n, prev)
		}
		last[name] = n
		s = s[end+1:]
	}
}

// streamPattern is the stream's bytes [off, off+n): a hash of each byte's
// offset, so equal runs of the stream are rare and a byte out of place,
// repeated or reversed does not match by accident (a pattern repeating
// every 256 bytes holds any short sequence as a subsequence).
func streamPattern(off, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		x := uint64(off+i) * 0x9e3779b97f4a7c15
		x ^= x >> 29
		x *= 0xbf58476d1ce4e5b9
		b[i] = byte(x >> 56)
	}
	return b
}

// chunkBounds is every chunk boundary of the stream up to end: the
// frontends' reads, in order, are the tee's chunks.
func (m *model) chunkBounds(t *rapid.T, end uint64) map[uint64]bool {
	bounds := map[uint64]bool{0: true}
	var off uint64
	for _, f := range m.fronts {
		for _, n := range f.Reads() {
			off += uint64(n)
			bounds[off] = true
		}
	}
	if off != end {
		t.Fatalf("the frontends' reads add up to %d bytes, the stream has %d", off, end)
	}
	return bounds
}

// owedChunks is what owed(d, to) returns, cut into the stream's chunks (a
// device's start is where it joined, a chunk boundary or not).
func (m *model) owedChunks(d *modelDev, to uint64, bounds map[uint64]bool) [][]byte {
	var chunks [][]byte
	cut := func(from, to uint64) {
		for i := from; i < to; {
			j := i + 1
			for j < to && !bounds[j] {
				j++
			}
			chunks = append(chunks, m.stream[i:j])
			i = j
		}
	}
	if d.gapEnd == 0 || to <= d.gapAt {
		cut(d.start, max(to, d.start))
	} else {
		cut(d.start, d.gapAt)
		cut(d.gapEnd, max(to, d.gapEnd))
	}
	return chunks
}

// wholeChunks checks that got is chunks with some removed: chunks taken
// whole, in order, none twice. With cutShort the last one taken may be a
// prefix. On failure it returns how far into got the best decomposition
// reached. Every decomposition is followed (a set of positions in got,
// chunk by chunk): taking a chunk as soon as it fits is not enough, as a
// one-byte chunk may equal the first byte of the next.
func wholeChunks(got []byte, chunks [][]byte, cutShort bool) (int, error) {
	at := map[int]bool{0: true}
	for _, c := range chunks {
		// The positions before c: each chunk is taken at most once.
		for _, p := range slices.Collect(maps.Keys(at)) {
			rest := got[p:]
			switch {
			case bytes.HasPrefix(rest, c):
				at[p+len(c)] = true
			case cutShort && len(rest) < len(c) && bytes.HasPrefix(c, rest):
				at[len(got)] = true
			}
		}
	}
	if at[len(got)] {
		return len(got), nil
	}
	best := 0
	for p := range at {
		best = max(best, p)
	}
	return best, fmt.Errorf("%d bytes left that are no owed chunk in order (next: %v)", len(got)-best, got[best:min(best+8, len(got))])
}

// TestWholeChunks checks the drop-leg checker itself: it accepts a stream
// with chunks removed (also when a one-byte chunk equals the next chunk's
// first byte) and rejects a chunk repeated, reordered or cut inside, extra
// bytes, and a cut-short last chunk unless allowed.
func TestWholeChunks(t *testing.T) {
	chunks := [][]byte{[]byte("ab"), []byte("c"), []byte("cde"), []byte("fg"), []byte("hij")}
	cat := func(ps ...string) []byte { return []byte(strings.Join(ps, "")) }
	for _, got := range [][]byte{nil, cat("ab"), cat("ab", "c", "cde", "fg", "hij"), cat("cde", "hij"), cat("c", "fg")} {
		if at, err := wholeChunks(got, chunks, false); err != nil {
			t.Errorf("%q rejected at %d: %v", got, at, err)
		}
	}
	if _, err := wholeChunks(cat("ab", "cde", "h"), chunks, true); err != nil {
		t.Errorf("a cut-short last chunk rejected with cutShort: %v", err)
	}
	for _, got := range [][]byte{cat("ab", "ab"), cat("cde", "ab"), cat("ab", "de"), cat("ab", "x"), cat("ab", "c", "c"), cat("ab", "h"), cat("hij", "hij")} {
		if _, err := wholeChunks(got, chunks, false); err == nil {
			t.Errorf("%q accepted", got)
		}
	}
	if _, err := wholeChunks(cat("ab", "hi", "fg"), chunks, true); err == nil {
		t.Error("a chunk cut short in the middle accepted")
	}
}

func isSubsequence(got, all []byte) bool {
	i := 0
	for _, c := range all {
		if i < len(got) && got[i] == c {
			i++
		}
	}
	return i == len(got)
}
