package tee

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// A held tee opens its frontend only at Start, so a leg attached before
// gets the stream from its very first byte even when the device has output
// waiting the moment it opens (a VM's first boot-log line).
func TestHoldAttachesBeforeTheFirstByte(t *testing.T) {
	front := memdev.New("front")
	first := []byte("[    0.000000] Linux version 6.1.0\r\n")
	front.Feed(first)
	tee, err := New(Options{Name: "held", Frontend: memdev.Opener(nil, front), Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tee.Close()

	// Held: the device is not opened, nothing is read.
	time.Sleep(20 * time.Millisecond)
	if st := tee.Stats(); st.Frontend.Up || st.Offset != 0 {
		t.Fatalf("held tee: frontend up=%v offset=%d, want closed and 0", st.Frontend.Up, st.Offset)
	}
	capture := memdev.New("capture")
	if err := tee.Attach(context.Background(), "capture", LegOptions{Overflow: Block}, memdev.Opener(nil, capture)); err != nil {
		t.Fatal(err)
	}
	tee.Start()
	tee.Start() // a second Start does nothing
	if !capture.WaitWritten(len(first), 5*time.Second) {
		t.Fatalf("capture got %q, want %q", capture.Written(), first)
	}
	if got := capture.Written(); !bytes.Equal(got, first) {
		t.Fatalf("capture got %q, want %q", got, first)
	}
}

// A held tee that is never started closes and shuts down cleanly, without
// ever opening its device.
func TestHoldNeverStarted(t *testing.T) {
	for _, shutdown := range []bool{false, true} {
		front := memdev.New("front")
		var opened atomic.Bool
		open := memdev.Opener(nil, front)
		tee, err := New(Options{Name: "held", Frontend: chardev.OpenFunc(func(ctx context.Context) (chardev.Chardev, error) {
			opened.Store(true)
			return open.Open(ctx)
		}), Hold: true})
		if err != nil {
			t.Fatal(err)
		}
		if shutdown {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := tee.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown of a never-started tee: %v", err)
			}
			cancel()
		} else if err := tee.Close(); err != nil {
			t.Errorf("Close of a never-started tee: %v", err)
		}
		tee.Start() // after Close: nothing
		if opened.Load() {
			t.Errorf("a never-started tee opened its frontend")
		}
	}
}
