package tee

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev/memdev"
)

// slowCloseDev is a device whose Close finishes well after it has stopped
// the device, like a pty removing its link or a capture flushing: the
// engine's goroutines are released at once, the Close returns later.
type slowCloseDev struct {
	*memdev.Device
	delay    time.Duration
	release  chan struct{} // when set, Close waits for it instead of delay
	finished atomic.Bool
}

func (d *slowCloseDev) Close() error {
	d.Device.Close()
	if d.release != nil {
		<-d.release
	} else {
		time.Sleep(d.delay)
	}
	d.finished.Store(true)
	return nil
}

// TestDetachWaitsForTheDeviceClose: when Detach returns, the device's
// Close has returned too.
func TestDetachWaitsForTheDeviceClose(t *testing.T) {
	h := newHarness(t, Options{})
	d := &slowCloseDev{Device: memdev.New("pty"), delay: 200 * time.Millisecond}
	if err := h.tee.Attach(context.Background(), "pty", LegOptions{}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	h.emit([]byte("x"))
	waitBytes(t, d.Device, []byte("x"))
	if err := h.tee.Detach("pty"); err != nil {
		t.Fatal(err)
	}
	if !d.finished.Load() {
		t.Fatal("Detach returned before the device's Close finished")
	}
}

// TestSwapWaitsForTheOldDeviceClose: likewise for the old leg of a swap.
func TestSwapWaitsForTheOldDeviceClose(t *testing.T) {
	for _, mode := range []SwapMode{Handover, Overlap} {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHarness(t, Options{})
			old := &slowCloseDev{Device: memdev.New("old"), delay: 200 * time.Millisecond}
			if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, old)); err != nil {
				t.Fatal(err)
			}
			h.emit([]byte("x"))
			waitBytes(t, old.Device, []byte("x"))
			if _, err := h.tee.Swap(context.Background(), "cap", memdev.Opener(nil, memdev.New("new")), SwapOptions{Mode: mode}); err != nil {
				t.Fatal(err)
			}
			if !old.finished.Load() {
				t.Fatal("Swap returned before the old device's Close finished")
			}
		})
	}
}

// TestDetachOfADeviceWhoseCloseHangsIsBounded: a Close that never returns
// holds Detach for the drain timeout only, and says so in an event.
func TestDetachOfADeviceWhoseCloseHangsIsBounded(t *testing.T) {
	h := newHarness(t, Options{DrainTimeout: 100 * time.Millisecond})
	d := &slowCloseDev{Device: memdev.New("stuck"), release: make(chan struct{})}
	defer close(d.release) // before the harness's Close, which waits for it
	if err := h.tee.Attach(context.Background(), "stuck", LegOptions{}, memdev.Opener(nil, d)); err != nil {
		t.Fatal(err)
	}
	sub := h.tee.Subscribe(64)
	defer sub.Close()
	done := make(chan error, 1)
	go func() { done <- h.tee.Detach("stuck") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Detach hung on a device whose Close hangs")
	}
	expectEvent(t, sub, EventError, "stuck", "device close still running")
	if d.finished.Load() {
		t.Fatal("the hanging Close finished on its own")
	}
	if _, ok := legStats(h.tee, "stuck"); ok {
		t.Fatal("the leg is still attached")
	}
}
