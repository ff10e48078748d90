package tee

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const wait = 10 * time.Second

// harness is a tee on an in-memory frontend.
type harness struct {
	t     testing.TB
	tee   *Tee
	front *memdev.Device
	open  chardev.Opener
}

func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, front: memdev.New("front")}
	if opts.Frontend == nil {
		h.open = memdev.Opener(nil, h.front)
		opts.Frontend = h.open
	}
	if opts.Name == "" {
		opts.Name = "t0"
	}
	tee, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.tee = tee
	t.Cleanup(func() { tee.Close() })
	h.waitFrontendUp()
	return h
}

func (h *harness) waitFrontendUp() {
	h.t.Helper()
	eventually(h.t, "frontend up", func() bool { return h.tee.Stats().Frontend.Up })
}

func (h *harness) attach(name string, opts LegOptions) *memdev.Device {
	h.t.Helper()
	d := memdev.New(name)
	if err := h.tee.Attach(context.Background(), name, opts, memdev.Opener(nil, d)); err != nil {
		h.t.Fatal(err)
	}
	return d
}

// emit feeds output and waits until the tee has read it and given it its
// stream offsets, so a swap or attach that follows cuts after it. (It does
// not wait for block legs to take it: a stalled one may hold the reader.)
func (h *harness) emit(p []byte) {
	h.t.Helper()
	before := internalOffset(h.tee)
	h.front.Feed(p)
	if !h.front.WaitFed(wait) {
		h.t.Fatalf("frontend output not consumed")
	}
	eventually(h.t, "output given its offsets", func() bool { return internalOffset(h.tee) >= before+uint64(len(p)) })
}

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

func waitBytes(t testing.TB, d *memdev.Device, want []byte) {
	t.Helper()
	if !d.WaitWritten(len(want), wait) {
		t.Fatalf("%s: got %d bytes, want %d", d.Name, d.WrittenLen(), len(want))
	}
	if got := d.Written(); !bytes.Equal(got, want) {
		t.Fatalf("%s: stream differs:\n got %q\nwant %q", d.Name, trunc(got), trunc(want))
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "..."...)
	}
	return b
}

func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + seed)
	}
	return b
}

func legStats(tee *Tee, name string) (LegStats, bool) {
	for _, l := range tee.Stats().Legs {
		if l.Name == name {
			return l, true
		}
	}
	return LegStats{}, false
}

func TestFanoutEveryLegGetsTheStream(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.attach("a", LegOptions{})
	b := h.attach("b", LegOptions{Overflow: Block})
	c := h.attach("c", LegOptions{Queue: 1 << 20})
	var all []byte
	for i := range 50 {
		p := pattern(1000+i, i)
		all = append(all, p...)
		h.emit(p)
	}
	for _, d := range []*memdev.Device{a, b, c} {
		waitBytes(t, d, all)
	}
	st := h.tee.Stats()
	if st.Offset != uint64(len(all)) || st.Frontend.BytesOut != uint64(len(all)) {
		t.Fatalf("offset %d, frontend out %d, want %d", st.Offset, st.Frontend.BytesOut, len(all))
	}
	for _, bs := range st.Backends {
		if bs.BytesOut != uint64(len(all)) || bs.Legs != 1 {
			t.Fatalf("backend %s: %+v", bs.Name, bs)
		}
	}
}

func TestDropPolicyCountsEveryMissingByte(t *testing.T) {
	h := newHarness(t, Options{})
	fast := h.attach("fast", LegOptions{})
	slow := h.attach("slow", LegOptions{Queue: 4096})
	slow.Stall()
	var all []byte
	for i := range 40 {
		p := pattern(1024, i)
		all = append(all, p...)
		h.emit(p)
	}
	waitBytes(t, fast, all) // the stalled leg never slowed the fast one
	slow.Resume()
	eventually(t, "slow leg idle", func() bool {
		ls, _ := legStats(h.tee, "slow")
		return ls.QueueBytes == 0
	})
	ls, _ := legStats(h.tee, "slow")
	got := slow.Written()
	if ls.Dropped == 0 {
		t.Fatal("expected drops on a stalled leg with a 4 KiB queue")
	}
	if uint64(len(got))+ls.Dropped != uint64(len(all)) {
		t.Fatalf("written %d + dropped %d != emitted %d", len(got), ls.Dropped, len(all))
	}
	if !isSubsequenceOfChunks(got, all, 1024) {
		t.Fatal("slow leg's bytes are not an in-order subsequence of whole chunks")
	}
}

// isSubsequenceOfChunks checks got is all's chunks (of size n) with some
// chunks removed, order kept.
func isSubsequenceOfChunks(got, all []byte, n int) bool {
	for len(all) > 0 {
		if len(got) >= n && bytes.Equal(got[:n], all[:n]) {
			got = got[n:]
		}
		all = all[n:]
	}
	return len(got) == 0
}

func TestBlockPolicyHoldsTheFrontendAndLosesNothing(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 1024})
	blk := h.attach("blk", LegOptions{Overflow: Block, Queue: 2048})
	blk.Stall()
	all := pattern(64<<10, 3)
	h.front.Feed(all)
	// With a 2 KiB queue and a stalled writer, the frontend cannot have
	// been read much further than the queue plus one in-flight write.
	eventually(t, "queue fills", func() bool {
		ls, _ := legStats(h.tee, "blk")
		return ls.QueueBytes >= 1024
	})
	if h.front.WaitFed(50 * time.Millisecond) {
		t.Fatal("frontend fully read although a block leg is stalled")
	}
	blk.Resume()
	waitBytes(t, blk, all)
}

func TestDisconnectPolicyRemovesTheSlowLeg(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 1024})
	sub := h.tee.Subscribe(256)
	defer sub.Close()
	ok := h.attach("ok", LegOptions{})
	slow := h.attach("slow", LegOptions{Overflow: Disconnect, Queue: 2048})
	slow.Stall()
	all := pattern(16<<10, 1)
	for i := 0; i < len(all); i += 1024 {
		h.emit(all[i : i+1024])
	}
	waitBytes(t, ok, all)
	eventually(t, "slow leg removed", func() bool { _, ok := legStats(h.tee, "slow"); return !ok })
	if !slow.Closed() {
		t.Fatal("removed leg's device not closed")
	}
	expectEvent(t, sub, EventDetach, "slow", "overflow")
}

func expectEvent(t *testing.T, sub *Subscription, kind EventKind, backend, reason string) Event {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-sub.C:
			if e.Kind == kind && e.Backend == backend && strings.Contains(e.Reason, reason) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event for %s with %q", kind, backend, reason)
		}
	}
}

func TestLegWriteErrorRemovesOnlyThatLeg(t *testing.T) {
	h := newHarness(t, Options{})
	sub := h.tee.Subscribe(256)
	defer sub.Close()
	good := h.attach("good", LegOptions{})
	bad := h.attach("bad", LegOptions{})
	bad.FailWrites(errors.New("connection reset by peer"))
	all := pattern(5000, 9)
	h.emit(all)
	waitBytes(t, good, all)
	e := expectEvent(t, sub, EventDetach, "bad", "connection reset by peer")
	if e.Leg != "bad" {
		t.Fatalf("event leg %q", e.Leg)
	}
	more := pattern(100, 1)
	h.emit(more)
	waitBytes(t, good, append(all, more...))
}

func TestInputMergeWholeChunksAndReadOnlyLegs(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.attach("a", LegOptions{Input: true})
	b := h.attach("b", LegOptions{Input: true})
	spy := h.attach("spy", LegOptions{Input: false})
	spy.Feed([]byte("rm -rf /\r"))
	var wg sync.WaitGroup
	for _, d := range []*memdev.Device{a, b} {
		wg.Add(1)
		go func(d *memdev.Device) {
			defer wg.Done()
			for i := range 50 {
				d.Feed([]byte(fmt.Sprintf("<%s%02d>", d.Name, i)))
				d.WaitFed(wait)
			}
		}(d)
	}
	wg.Wait()
	eventually(t, "all input written", func() bool { return h.front.WrittenLen() == 2*50*5 })
	got := string(h.front.Written())
	if strings.Contains(got, "rm -rf") {
		t.Fatal("a read-only leg typed into the frontend")
	}
	// Every token arrives whole and in per-leg order.
	for _, name := range []string{"a", "b"} {
		last := -1
		for i := 0; i < len(got); i += 5 {
			tok := got[i : i+5]
			if tok[0] != '<' || tok[4] != '>' {
				t.Fatalf("split chunk at %d: %q", i, got)
			}
			if tok[1:2] == name {
				var n int
				fmt.Sscanf(tok[2:4], "%d", &n)
				if n != last+1 {
					t.Fatalf("leg %s out of order: %d after %d", name, n, last)
				}
				last = n
			}
		}
	}
	eventually(t, "spy discards counted", func() bool {
		ls, _ := legStats(h.tee, "spy")
		return ls.Discarded == uint64(len("rm -rf /\r"))
	})
}

func TestExclusiveInput(t *testing.T) {
	h := newHarness(t, Options{Input: Exclusive, ExclusiveIdle: time.Hour})
	a := h.attach("a", LegOptions{Input: true})
	b := h.attach("b", LegOptions{Input: true})
	a.Feed([]byte("A1"))
	a.WaitFed(wait)
	eventually(t, "a's input", func() bool { return h.front.WrittenLen() == 2 })
	b.Feed([]byte("B1"))
	b.WaitFed(wait)
	eventually(t, "b discarded", func() bool { ls, _ := legStats(h.tee, "b"); return ls.Discarded == 2 })
	if st := h.tee.Stats(); st.WriteLock != "a" {
		t.Fatalf("write lock holder %q, want a", st.WriteLock)
	}
	// The holder leaves: the lock is free for the next typist.
	if err := h.tee.Detach("a"); err != nil {
		t.Fatal(err)
	}
	b.Feed([]byte("B2"))
	eventually(t, "b's input", func() bool { return string(h.front.Written()) == "A1B2" })
}

func TestExclusiveInputIdleRelease(t *testing.T) {
	h := newHarness(t, Options{Input: Exclusive, ExclusiveIdle: 20 * time.Millisecond})
	a := h.attach("a", LegOptions{Input: true})
	b := h.attach("b", LegOptions{Input: true})
	a.Feed([]byte("A"))
	eventually(t, "a typed", func() bool { return h.front.WrittenLen() == 1 })
	// a holds the lock until it has been idle for 20ms: the lock is
	// released then, by the clock, not by any event a test could wait on;
	// the state shows when.
	eventually(t, "a's lock to expire", func() bool { return h.tee.Stats().WriteLock == "" })
	b.Feed([]byte("B"))
	eventually(t, "b typed after a went idle", func() bool { return string(h.front.Written()) == "AB" })
}

func TestReplayForLateJoiner(t *testing.T) {
	h := newHarness(t, Options{Scrollback: 1000})
	h.emit([]byte("old boot log\r\n"))
	h.emit(pattern(2000, 1))
	late := h.attach("late", LegOptions{Replay: 100})
	h.emit([]byte("live"))
	want := append(pattern(2000, 1)[1900:], "live"...)
	waitBytes(t, late, want)
	ls, _ := legStats(h.tee, "late")
	if ls.FirstOffset != uint64(14+2000-100) {
		t.Fatalf("first offset %d", ls.FirstOffset)
	}
}

func TestAttachErrors(t *testing.T) {
	h := newHarness(t, Options{})
	h.attach("x", LegOptions{})
	if err := h.tee.Attach(context.Background(), "x", LegOptions{}, memdev.Opener(nil, memdev.New("x2"))); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	openErr := errors.New("no such device")
	if err := h.tee.Attach(context.Background(), "y", LegOptions{}, memdev.Opener(openErr)); !errors.Is(err, openErr) {
		t.Fatalf("open error: %v", err)
	}
	if _, ok := legStats(h.tee, "y"); ok {
		t.Fatal("failed attach left a leg")
	}
	// The name is free again after a failed open.
	h.attach("y", LegOptions{})
	if err := h.tee.Detach("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("detach unknown: %v", err)
	}
	if err := h.tee.Attach(context.Background(), "bad/name", LegOptions{}, memdev.Opener(nil)); err == nil {
		t.Fatal("name with / accepted")
	}
}

func TestHandoverSwapIsByteExact(t *testing.T) {
	h := newHarness(t, Options{ReadSize: 512})
	old := h.attach("cap", LegOptions{Overflow: Block})
	stop := make(chan struct{})
	var all []byte
	var mu sync.Mutex
	done := make(chan struct{})
	go func() { // continuous output during the swap
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := pattern(333, i)
			mu.Lock()
			all = append(all, p...)
			mu.Unlock()
			h.front.Feed(p)
			h.front.WaitFed(wait)
		}
	}()
	eventually(t, "some output", func() bool { return old.WrittenLen() > 5000 })
	nd := memdev.New("cap2")
	rep, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, nd), SwapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "more output after swap", func() bool { return nd.WrittenLen() > 5000 })
	close(stop)
	<-done
	mu.Lock()
	want := all
	mu.Unlock()
	eventually(t, "everything written", func() bool { return old.WrittenLen()+nd.WrittenLen() == len(want) })
	got := append(old.Written(), nd.Written()...)
	if !bytes.Equal(got, want) {
		t.Fatalf("old+new != stream (%d+%d vs %d)", old.WrittenLen(), nd.WrittenLen(), len(want))
	}
	if uint64(old.WrittenLen()) != rep.Cut || rep.Handed != 0 || !old.Closed() {
		t.Fatalf("report %+v, old wrote %d, closed %v", rep, old.WrittenLen(), old.Closed())
	}
}

func TestHandoverSwapHandsOverWhatADeadLegOwed(t *testing.T) {
	h := newHarness(t, Options{DrainTimeout: 200 * time.Millisecond})
	old := h.attach("cap", LegOptions{Overflow: Block, Queue: 1 << 20})
	first := pattern(3000, 1)
	h.emit(first)
	waitBytes(t, old, first)
	old.Stall() // a dead disk: it will never take these
	owed := pattern(5000, 2)
	h.emit(owed)
	eventually(t, "owed bytes queued", func() bool {
		ls, _ := legStats(h.tee, "cap")
		return ls.QueueBytes+int64(ls.BytesOut) >= int64(len(first)+len(owed))
	})
	nd := memdev.New("cap2")
	rep, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, nd), SwapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := pattern(700, 3)
	h.emit(after)
	stream := append(append(append([]byte{}, first...), owed...), after...)
	gotOld := old.Written()
	waitBytes(t, nd, stream[len(gotOld):])
	if rep.Handed != uint64(len(stream)-len(after)-len(gotOld)) || !strings.Contains(rep.OldErr, "drain timed out") {
		t.Fatalf("report %+v (old wrote %d)", rep, len(gotOld))
	}
}

func TestHandoverSwapWhenOldFailsMidDrain(t *testing.T) {
	h := newHarness(t, Options{})
	old := h.attach("cap", LegOptions{Overflow: Block, Queue: 1 << 20})
	old.SetMaxWrite(100) // accepts 100 bytes, then a short-write error
	p := pattern(1000, 5)
	old.Stall()
	h.emit(p)
	nd := memdev.New("cap2")
	var rep SwapReport
	var err error
	done := make(chan struct{})
	go func() {
		rep, err = h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, nd), SwapOptions{})
		close(done)
	}()
	// The old leg must fail mid-drain: resume it only once the swap has
	// cut it and waits for its drain (the new leg is there, held).
	eventually(t, "the swap to wait for the old leg's drain", func() bool {
		n := 0
		for _, l := range h.tee.Stats().Legs {
			if l.Backend == "cap" {
				n++
			}
		}
		return n == 2
	})
	old.Resume()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	got := append(old.Written(), nd.Written()...)
	eventually(t, "new leg has the rest", func() bool { return old.WrittenLen()+nd.WrittenLen() == len(p) })
	got = append(old.Written(), nd.Written()...)
	if !bytes.Equal(got, p) || old.WrittenLen() != 100 || rep.Handed != 900 {
		t.Fatalf("old %d new %d report %+v", old.WrittenLen(), nd.WrittenLen(), rep)
	}
}

func TestSwapOpenErrorChangesNothing(t *testing.T) {
	h := newHarness(t, Options{})
	old := h.attach("cap", LegOptions{})
	_, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(errors.New("permission denied")), SwapOptions{})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("err %v", err)
	}
	h.emit([]byte("still here"))
	waitBytes(t, old, []byte("still here"))
	if _, err := h.tee.Swap(context.Background(), "nope", memdev.Opener(nil), SwapOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown backend: %v", err)
	}
}

func TestOverlapSwap(t *testing.T) {
	h := newHarness(t, Options{DrainTimeout: 5 * time.Second})
	old := h.attach("ops", LegOptions{Input: true})
	h.emit([]byte("before "))
	waitBytes(t, old, []byte("before "))
	old.SetLatency(30 * time.Millisecond) // the old client is slow to take "during "
	h.emit([]byte("during "))
	nd := memdev.New("ops2")
	swapped := make(chan SwapReport)
	go func() {
		rep, err := h.tee.Swap(context.Background(), "ops", memdev.Opener(nil, nd), SwapOptions{Mode: Overlap})
		if err != nil {
			t.Error(err)
		}
		swapped <- rep
	}()
	// The new leg starts at once, while the old one is still writing.
	eventually(t, "new leg attached", func() bool { return len(h.tee.Stats().Legs) == 2 })
	h.emit([]byte("after"))
	waitBytes(t, nd, []byte("after"))
	rep := <-swapped
	all := "before during after"
	oldGot := string(old.Written())
	if !strings.HasPrefix(all, oldGot) || len(oldGot) < len("before during ") {
		t.Fatalf("old got %q", oldGot)
	}
	if rep.Cut != uint64(len("before during ")) {
		t.Fatalf("cut %d", rep.Cut)
	}
	// Together they cover the stream, overlapping by exactly rep.Overlapped.
	if uint64(len(oldGot))-rep.Cut != rep.Overlapped {
		t.Fatalf("overlap: old %q new %q report %+v", oldGot, nd.Written(), rep)
	}
}

func TestFrontendSwapReplaysLineStateAndCarriesInput(t *testing.T) {
	h := newHarness(t, Options{})
	leg := h.attach("ops", LegOptions{Input: true, Control: true})
	if err := h.tee.SetLineSettings(chardev.LineSettings{Baud: 9600, DataBits: 7, Parity: chardev.ParityEven, StopBits: chardev.StopBits2}); err != nil {
		t.Fatal(err)
	}
	dtr := true
	if err := h.tee.SetModemLines(&dtr, nil); err != nil {
		t.Fatal(err)
	}
	h.emit([]byte("one "))
	h.front.Stall() // input is stuck on the old frontend
	leg.Feed([]byte("typed"))
	leg.WaitFed(wait)
	nf := memdev.New("front2")
	rep, err := h.tee.SwapFrontend(context.Background(), memdev.Opener(nil, nf))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.LineApplied {
		t.Fatalf("line state not applied: %+v", rep)
	}
	ls, _ := nf.LineSettings()
	if ls.Baud != 9600 || ls.DataBits != 7 || ls.Parity != chardev.ParityEven || ls.StopBits != chardev.StopBits2 {
		t.Fatalf("new frontend line settings %v", ls)
	}
	if ms, _ := nf.ModemStatus(); !ms.DTR {
		t.Fatal("DTR not replayed")
	}
	eventually(t, "input carried to new frontend", func() bool { return string(nf.Written()) == "typed" })
	nf.Feed([]byte("two"))
	waitBytes(t, leg, []byte("one two"))
	if !h.front.Closed() {
		t.Fatal("old frontend not closed")
	}
}

func TestFrontendFailureKeepsLegsAndReconnects(t *testing.T) {
	h := newHarness(t, Options{Reconnect: Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}, InputBuffer: 10})
	sub := h.tee.Subscribe(256)
	defer sub.Close()
	leg := h.attach("ops", LegOptions{Input: true})
	h.emit([]byte("a"))
	h.front.FailReads(errors.New("input/output error"))
	expectEvent(t, sub, EventFrontendLost, "", "input/output error")
	// Typed during the outage: kept up to the bound, then dropped.
	leg.Feed([]byte("12345"))
	leg.WaitFed(wait)
	leg.Feed([]byte("6789012345"))
	leg.WaitFed(wait)
	eventually(t, "overflow counted", func() bool { return h.tee.Stats().Frontend.InputDropped == 10 })
	f2 := memdev.New("front-again")
	memdev.Add(h.open, f2)
	expectEvent(t, sub, EventFrontendRestored, "", "reconnected")
	eventually(t, "kept input delivered", func() bool { return string(f2.Written()) == "12345" })
	f2.Feed([]byte("b"))
	waitBytes(t, leg, []byte("ab"))
	if st := h.tee.Stats(); st.Frontend.Reconnects != 1 || len(st.Legs) != 1 {
		t.Fatalf("stats %+v", st.Frontend)
	}
}

func TestFailoverReplaysPrimaryLineSettings(t *testing.T) {
	primary := memdev.New("primary")
	primary.SetLineSettings(chardev.LineSettings{Baud: 57600, DataBits: 8, Parity: chardev.ParityOdd})
	spare := memdev.New("spare")
	spare.SetLineSettings(chardev.LineSettings{Baud: 115200, DataBits: 8})
	h := newHarness(t, Options{
		Frontend:  memdev.Opener(nil, primary),
		Failover:  []chardev.Opener{memdev.Opener(nil, spare)},
		Reconnect: Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
	})
	leg := h.attach("ops", LegOptions{Input: true})
	primary.Feed([]byte("p"))
	waitBytes(t, leg, []byte("p"))
	primary.FailReads(errors.New("device vanished"))
	eventually(t, "failed over", func() bool { return h.tee.Stats().Frontend.Failovers == 1 })
	ls, _ := spare.LineSettings()
	if ls.Baud != 57600 || ls.Parity != chardev.ParityOdd {
		t.Fatalf("spare settings %v, want the primary's", ls)
	}
	spare.Feed([]byte("s"))
	waitBytes(t, leg, []byte("ps"))
	leg.Feed([]byte("hi"))
	eventually(t, "input at the spare", func() bool { return string(spare.Written()) == "hi" })
}

func TestControlPermissions(t *testing.T) {
	h := newHarness(t, Options{})
	ctlDev := &controlSpy{Device: memdev.New("ctl")}
	roDev := &controlSpy{Device: memdev.New("ro")}
	if err := h.tee.Attach(context.Background(), "ctl", LegOptions{Input: true, Control: true}, memdev.Opener(nil, ctlDev)); err != nil {
		t.Fatal(err)
	}
	if err := h.tee.Attach(context.Background(), "ro", LegOptions{}, memdev.Opener(nil, roDev)); err != nil {
		t.Fatal(err)
	}
	if err := roDev.ctl.SetLineSettings(chardev.LineSettings{Baud: 300}); !errors.Is(err, chardev.ErrNotPermitted) {
		t.Fatalf("read-only leg set line settings: %v", err)
	}
	if err := roDev.ctl.Break(time.Millisecond); !errors.Is(err, chardev.ErrNotPermitted) {
		t.Fatalf("read-only leg sent a break: %v", err)
	}
	if err := ctlDev.ctl.SetLineSettings(chardev.LineSettings{Baud: 19200}); err != nil {
		t.Fatal(err)
	}
	if ls, _ := h.front.LineSettings(); ls.Baud != 19200 {
		t.Fatalf("frontend baud %d", ls.Baud)
	}
	if err := ctlDev.ctl.Break(time.Millisecond); err != nil || h.front.Breaks() != 1 {
		t.Fatalf("break: %v, %d", err, h.front.Breaks())
	}
	eventually(t, "observers told", func() bool { return roDev.lastBaud() == 19200 && ctlDev.lastBaud() == 19200 })
	if s := ctlDev.ctl.Status(); !strings.Contains(s, "ctl") || !strings.Contains(s, "19200") {
		t.Fatalf("status %q", s)
	}
}

// controlSpy is a memdev that keeps the engine's Control and observes line
// changes.
type controlSpy struct {
	*memdev.Device
	ctl  chardev.Control
	mu   sync.Mutex
	baud int
}

func (c *controlSpy) SetControl(ctl chardev.Control) { c.ctl = ctl }
func (c *controlSpy) LineChanged(ls chardev.LineSettings) {
	c.mu.Lock()
	c.baud = ls.Baud
	c.mu.Unlock()
}
func (c *controlSpy) lastBaud() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.baud
}

// memSource is an in-memory leg source.
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
	// Closed first, as a real listener: a select with both cases ready
	// picks one at random, and a closed source must not accept.
	select {
	case <-s.closed:
		return nil, fmt.Errorf("accept %s: %w", s.addr, net.ErrClosed)
	default:
	}
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

func TestSourceLegsAndListenerSwap(t *testing.T) {
	h := newHarness(t, Options{})
	src := newMemSource("mem:1")
	if err := h.tee.AttachSource("ops", LegOptions{Input: true, Replay: 5}, src); err != nil {
		t.Fatal(err)
	}
	h.emit([]byte("hello"))
	c1 := memdev.New("c1")
	src.connect(c1)
	waitBytes(t, c1, []byte("hello")) // replay
	src2 := newMemSource("mem:2")
	if err := h.tee.SwapSource("ops", src2, nil); err != nil {
		t.Fatal(err)
	}
	c2 := memdev.New("c2")
	src2.connect(c2)
	eventually(t, "two client legs", func() bool { return len(h.tee.Stats().Legs) == 2 })
	h.emit([]byte(" world"))
	waitBytes(t, c1, []byte("hello world")) // the old listener's client stayed
	waitBytes(t, c2, []byte("hello world"))
	if _, ok := legStats(h.tee, "ops#2"); !ok {
		t.Fatalf("legs %+v", h.tee.Stats().Legs)
	}
	c1.EndInput() // client hangs up
	eventually(t, "client leg gone", func() bool { return len(h.tee.Stats().Legs) == 1 })
	st := h.tee.Stats()
	if st.Backends[0].BytesOut != 22 || st.Backends[0].Source != "mem:2" {
		t.Fatalf("backend stats %+v", st.Backends[0])
	}
	if err := h.tee.Detach("ops"); err != nil {
		t.Fatal(err)
	}
	if !c2.Closed() || len(h.tee.Stats().Legs) != 0 {
		t.Fatal("detach left a client")
	}
}

func TestShutdownDrainsBlockLegs(t *testing.T) {
	h := newHarness(t, Options{})
	slow := h.attach("cap", LegOptions{Overflow: Block, Queue: 1 << 20})
	slow.SetLatency(time.Millisecond)
	var all []byte
	for i := range 20 {
		p := pattern(100, i)
		all = append(all, p...)
		h.emit(p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := h.tee.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := slow.Written(); !bytes.Equal(got, all) {
		t.Fatalf("shutdown lost bytes: %d of %d", len(got), len(all))
	}
}

func TestCloseStopsEverything(t *testing.T) {
	h := newHarness(t, Options{})
	d := h.attach("a", LegOptions{Input: true})
	d.Stall()
	h.front.Feed(pattern(100, 1))
	src := newMemSource("mem")
	if err := h.tee.AttachSource("s", LegOptions{}, src); err != nil {
		t.Fatal(err)
	}
	sub := h.tee.Subscribe(1)
	h.tee.Close()
	if !d.Closed() || !h.front.Closed() {
		t.Fatal("devices left open")
	}
	for range sub.C {
	}
	if err := h.tee.Attach(context.Background(), "late", LegOptions{}, memdev.Opener(nil, memdev.New("x"))); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
	// goleak in TestMain checks no goroutine survived.
}

func TestSwapDurationsAndCounts(t *testing.T) {
	h := newHarness(t, Options{})
	h.attach("cap", LegOptions{})
	for i := range 3 {
		if _, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, memdev.New(fmt.Sprint(i))), SwapOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.tee.Swap(context.Background(), "cap", memdev.Opener(errors.New("nope")), SwapOptions{})
	st := h.tee.Stats()
	counts := map[string]uint64{}
	for _, c := range st.Swaps {
		counts[c.Kind+"/"+c.Result] = c.Count
	}
	if counts["leg/ok"] != 3 || counts["leg/error"] != 1 {
		t.Fatalf("swap counts %v", counts)
	}
	for _, hg := range st.SwapDurations {
		if hg.Kind == "leg" && (hg.Count != 3 || hg.Buckets[durationBuckets[len(durationBuckets)-1]] != 3) {
			t.Fatalf("leg histogram %+v", hg)
		}
	}
}

func TestLiveReconfiguration(t *testing.T) {
	h := newHarness(t, Options{})
	d := h.attach("cap", LegOptions{Queue: 1024})
	d.Stall()
	h.emit(pattern(1000, 1))
	h.emit(pattern(1000, 2)) // dropped: the queue is full
	eventually(t, "drop counted", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.Dropped == 1000 })
	if err := h.tee.SetLegOptions("cap", LegOptions{Queue: 1 << 20, Input: true}); err != nil {
		t.Fatal(err)
	}
	h.emit(pattern(1000, 3)) // fits now
	d.Resume()
	waitBytes(t, d, append(pattern(1000, 1), pattern(1000, 3)...))
	d.Feed([]byte("x")) // input was granted
	eventually(t, "input after options change", func() bool { return string(h.front.Written()) == "x" })
	if err := h.tee.SetLegOptions("nope", LegOptions{}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}

	h.tee.Configure(Options{Input: Exclusive, ExclusiveIdle: time.Hour})
	if st := h.tee.Stats(); st.InputMode != "exclusive" {
		t.Fatalf("input mode %s", st.InputMode)
	}
}

func TestRebindSourceKeepsClients(t *testing.T) {
	h := newHarness(t, Options{})
	src := newMemSource("mem:1")
	if err := h.tee.AttachSource("ops", LegOptions{}, src); err != nil {
		t.Fatal(err)
	}
	c1 := memdev.New("c1")
	src.connect(c1)
	eventually(t, "client", func() bool { return len(h.tee.Stats().Legs) == 1 })
	src2 := newMemSource("mem:1")
	if err := h.tee.RebindSource("ops", func() (chardev.Source, error) {
		select {
		case <-src.closed: // the old one must be closed first
		default:
			return nil, errors.New("old source still open")
		}
		return src2, nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	c2 := memdev.New("c2")
	src2.connect(c2)
	// c2 is a leg only once the accept loop has attached it; output
	// before that is not for it.
	eventually(t, "second client", func() bool { return len(h.tee.Stats().Legs) == 2 })
	h.emit([]byte("hi"))
	waitBytes(t, c1, []byte("hi"))
	waitBytes(t, c2, []byte("hi"))
	if err := h.tee.RebindSource("ops", func() (chardev.Source, error) { return nil, errors.New("address in use") }, nil); err == nil {
		t.Fatal("rebind error not returned")
	}
	h.emit([]byte("!"))
	waitBytes(t, c1, []byte("hi!")) // clients survive a failed rebind
}

func TestShutdownIsBoundedByItsContext(t *testing.T) {
	h := newHarness(t, Options{})
	stuck := h.attach("cap", LegOptions{Overflow: Block, Queue: 1024})
	stuck.Stall() // never drains: the frontend reader blocks behind it
	h.front.Feed(pattern(8192, 1))
	eventually(t, "queue full", func() bool { ls, _ := legStats(h.tee, "cap"); return ls.QueueBytes >= 1024 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.tee.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("shutdown: %v", err)
	}
	if !stuck.Closed() {
		t.Fatal("stuck leg not closed")
	}
}

// TestAttachDetachedWhileOpeningSaysSo detaches a backend while its device
// is still opening: Attach answers that the backend is gone (ErrNotFound),
// not that the tee is closed, and closes the device it opened.
func TestAttachDetachedWhileOpeningSaysSo(t *testing.T) {
	h := newHarness(t, Options{})
	opening, release := make(chan struct{}), make(chan struct{})
	dev := memdev.New("slow")
	open := chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
		close(opening)
		<-release
		return dev, nil
	})
	errc := make(chan error, 1)
	go func() { errc <- h.tee.Attach(context.Background(), "slow", LegOptions{}, open) }()
	<-opening
	if err := h.tee.Detach("slow"); err != nil {
		t.Fatal(err)
	}
	close(release)
	err := <-errc
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) || !strings.Contains(err.Error(), "detached") {
		t.Fatalf("Attach of a backend detached while opening: %v; want ErrNotFound saying detached", err)
	}
	if !dev.Closed() {
		t.Fatal("the device opened for a detached backend was left open")
	}
}
