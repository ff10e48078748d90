package tee

import (
	"context"
	"errors"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// hangingControl is a frontend whose control calls (line settings, modem
// lines, break) hang for 30 s or until released: an RFC 2217 server that
// stops answering COM-PORT-OPTION requests.
type hangingControl struct {
	*memdev.Device
	entered chan struct{} // one value per control call begun
	release chan struct{}
}

func newHangingControl() *hangingControl {
	return &hangingControl{Device: memdev.New("rfc2217"), entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (d *hangingControl) hang() error {
	d.entered <- struct{}{}
	select {
	case <-d.release:
	case <-time.After(30 * time.Second):
	}
	return nil
}

func (d *hangingControl) SetLineSettings(chardev.LineSettings) error { return d.hang() }
func (d *hangingControl) SetDTR(bool) error                          { return d.hang() }
func (d *hangingControl) SetRTS(bool) error                          { return d.hang() }
func (d *hangingControl) Break(time.Duration) error                  { return d.hang() }

// answerBound is how soon a reader must answer while a control call
// hangs. The device here hangs until the test ends, so any bound far
// below that proves no reader waits on it; 10 s rather than the 100 ms a
// quiet machine shows keeps a loaded -race run (load 15 on 2 cores) from
// failing falsely, and costs nothing when the answer comes at once.
const answerBound = 10 * time.Second

// within fails the test unless fn returns before d (the device under
// test hangs, so a return proves nothing waited on it).
func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: no return within %s while the device hangs", what, d)
	}
}

// TestControlCallThatHangsBlocksNothingElse: while a frontend control
// call waits for a device that does not answer, stats, status text and
// the line state answer at once, typed input reaches the frontend, and
// further control calls fail within the control bound instead of
// queueing for the device.
func TestControlCallThatHangsBlocksNothingElse(t *testing.T) {
	front := newHangingControl()
	defer close(front.release) // before the harness's Close
	const bound = 300 * time.Millisecond
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, front), DrainTimeout: bound})
	typist := h.attach("typist", LegOptions{Input: true})

	first := make(chan error, 1)
	go func() { first <- h.tee.SetLineSettings(chardev.LineSettings{Baud: 9600}) }()
	select {
	case <-front.entered:
	case <-time.After(wait):
		t.Fatal("the line settings never reached the device")
	}

	within(t, answerBound, "Stats", func() { h.tee.Stats() })
	within(t, answerBound, "StatusText", func() { h.tee.StatusText() })
	within(t, answerBound, "LineSettings", func() { h.tee.LineSettings() })

	typist.Feed([]byte("typed while the device hangs"))
	if !front.WaitWritten(len("typed while the device hangs"), wait) {
		t.Fatalf("typed input did not reach the frontend: got %q", front.Written())
	}

	// The caller of the hanging call, and one queued behind it, get an
	// error within the bound (with a generous margin), not 30 s later.
	dtr := true
	for what, call := range map[string]func() error{
		"queued modem lines": func() error { return h.tee.SetModemLines(&dtr, nil) },
		"queued break":       func() error { return h.tee.SendBreak(10 * time.Millisecond) },
		"the hanging call":   func() error { return <-first },
	} {
		var err error
		within(t, bound+5*time.Second, what, func() { err = call() })
		if !errors.Is(err, errControlBusy) {
			t.Fatalf("%s: %v, want %v", what, err, errControlBusy)
		}
	}
}

var _ chardev.Chardev = (*hangingControl)(nil)

// TestControlPathRecordsOnSuccess: the control path still records and
// replays what it set.
func TestControlPathRecordsOnSuccess(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.tee.SetLineSettings(chardev.LineSettings{Baud: 19200, DataBits: 7}); err != nil {
		t.Fatal(err)
	}
	if got := h.tee.LineSettings(); got.Baud != 19200 || got.DataBits != 7 {
		t.Fatalf("recorded %+v", got)
	}
	if got, _ := h.front.LineSettings(); got.Baud != 19200 {
		t.Fatalf("device has %+v", got)
	}
	next := memdev.New("next")
	if _, err := h.tee.SwapFrontend(context.Background(), memdev.Opener(nil, next)); err != nil {
		t.Fatal(err)
	}
	if got, _ := next.LineSettings(); got.Baud != 19200 || got.DataBits != 7 {
		t.Fatalf("replayed %+v onto the new frontend", got)
	}
}

// stuckRecorder is a capture whose input recording never returns (a FIFO
// capture nobody reads, a file system that hangs) until released.
type stuckRecorder struct {
	*memdev.Device
	entered chan struct{}
	release chan struct{}
}

func (d *stuckRecorder) RecordInput([]byte) error {
	select {
	case d.entered <- struct{}{}:
	default:
	}
	<-d.release
	return nil
}

// TestStuckInputRecorderDoesNotStopTyping: a recorder that blocks forever
// gets its own bounded queue; typing reaches the frontend all the same,
// and what the recorder could not take is counted and told.
func TestStuckInputRecorderDoesNotStopTyping(t *testing.T) {
	rec := &stuckRecorder{Device: memdev.New("fifo"), entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(rec.release) // before the harness's Close
	h := newHarness(t, Options{})
	sub := h.tee.Subscribe(256)
	defer sub.Close()
	if err := h.tee.Attach(context.Background(), "fifo", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	typist := h.attach("typist", LegOptions{Input: true})
	total := 0
	for i := range 40 { // 40 x 4 KiB: more than the recorder's queue
		p := pattern(4<<10, i)
		typist.Feed(p)
		total += len(p)
		if !h.front.WaitWritten(total, wait) {
			t.Fatalf("typing stopped after %d of %d bytes behind a stuck input recorder", h.front.WrittenLen(), total)
		}
	}
	select {
	case <-rec.entered:
	case <-time.After(wait):
		t.Fatal("the recorder was never given input")
	}
	expectEvent(t, sub, EventDrop, "fifo", "input capture queue full")
	ls, _ := legStats(h.tee, "fifo")
	if ls.InputRecordDropped == 0 || ls.InputRecordDropped >= uint64(total) {
		t.Fatalf("input not recorded: %d bytes counted of %d typed", ls.InputRecordDropped, total)
	}
}
