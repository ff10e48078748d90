package tee

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// wedged is a device that hangs in everything — Read, Write and Close —
// until released: a USB serial adapter wedged in the kernel, an NFS
// capture file.
type wedged struct{ release chan struct{} }

func (d *wedged) Read([]byte) (int, error)    { <-d.release; return 0, memdev.ErrClosed }
func (d *wedged) Write(p []byte) (int, error) { <-d.release; return 0, memdev.ErrClosed }
func (d *wedged) Close() error                { <-d.release; return nil }

// wedgedSource is a listener whose Close hangs until released.
type wedgedSource struct {
	wedged
	accept chan struct{}
}

func (s *wedgedSource) Accept() (chardev.Chardev, error) { <-s.accept; return nil, net.ErrClosed }
func (s *wedgedSource) Addr() string                     { return "wedged" }
func (s *wedgedSource) Close() error                     { close(s.accept); <-s.release; return nil }

// TestWaitsOnAWedgedDeviceAreBounded: Detach, SwapSource and Close
// return within their documented bounds (a few drain timeouts; checked
// with a generous margin) when a device hangs in Read, Write and Close.
func TestWaitsOnAWedgedDeviceAreBounded(t *testing.T) {
	const drain = 100 * time.Millisecond
	const margin = 5 * time.Second
	release := make(chan struct{})
	defer close(release) // lets the stuck goroutines go before goleak looks

	h := newHarness(t, Options{DrainTimeout: drain})
	sub := h.tee.Subscribe(256)
	defer sub.Close()
	for _, name := range []string{"a", "b"} {
		if err := h.tee.Attach(context.Background(), name, LegOptions{}, memdev.Opener(nil, &wedged{release})); err != nil {
			t.Fatal(err)
		}
	}
	h.emit([]byte("output the wedged legs never take"))

	within(t, 2*drain+margin, "Detach", func() {
		if err := h.tee.Detach("a"); err != nil {
			t.Error(err)
		}
	})
	expectEvent(t, sub, EventError, "a", "still running")

	src := &wedgedSource{wedged: wedged{release}, accept: make(chan struct{})}
	if err := h.tee.AttachSource("ln", LegOptions{}, src); err != nil {
		t.Fatal(err)
	}
	next := &wedgedSource{wedged: wedged{release}, accept: make(chan struct{})}
	within(t, drain+margin, "SwapSource", func() {
		if err := h.tee.SwapSource("ln", next, nil); err != nil {
			t.Error(err)
		}
	})

	within(t, 3*drain+margin, "Close", func() { h.tee.Close() })
}

// TestSwapFrontendTakesItsContext: a frontend swap whose old device's
// reader never stops returns when its context ends.
func TestSwapFrontendTakesItsContext(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, &wedged{release}), DrainTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var err error
	within(t, 5*time.Second, "SwapFrontend", func() {
		_, err = h.tee.SwapFrontend(ctx, memdev.Opener(nil, memdev.New("next")))
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("swap with a wedged old frontend: %v", err)
	}
}
