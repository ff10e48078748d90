package tee

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
)

// waitable is a freezable connection that waits for input without a
// goroutine (chardev.ReadWaiter), the way a network client does: while
// frozen it does not wait (the reader reads and gets ErrFrozen), and a
// freeze or a close wakes a pending wait. The test says when input came
// by calling wake.
type waitable struct {
	freezable
	mu     sync.Mutex
	frozen bool
	ready  func()
	waits  int // waits begun
}

var _ chardev.ReadWaiter = (*waitable)(nil)

func (w *waitable) WaitReadable(ready func()) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.frozen {
		return false
	}
	w.ready = ready
	w.waits++
	return true
}

func (w *waitable) waited() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.waits
}

// wake ends a pending wait, as the poller does when input comes.
func (w *waitable) wake() {
	w.mu.Lock()
	ready := w.ready
	w.ready = nil
	w.mu.Unlock()
	if ready != nil {
		ready()
	}
}

func (w *waitable) Freeze() error {
	w.mu.Lock()
	w.frozen = true
	w.mu.Unlock()
	err := w.freezable.Freeze()
	w.wake()
	return err
}

func (w *waitable) Thaw() error {
	w.mu.Lock()
	w.frozen = false
	w.mu.Unlock()
	return w.freezable.Thaw()
}

func (w *waitable) Close() error {
	w.wake()
	return w.freezable.Close()
}

// idleTee is a tee with n idle clients whose readers wait without a
// goroutine, resumed (adopted legs) or not; it returns the clients' ends,
// their devices, and the guest's end of the frontend.
func idleTee(t *testing.T, n int, resume *Resume) (*Tee, []net.Conn, []*waitable, net.Conn) {
	t.Helper()
	guest, frontEnd := loopPair(t)
	tt, err := New(Options{Name: "t", Resume: resume,
		Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) { return freezable{frontEnd}, nil })})
	if err != nil {
		t.Fatal(err)
	}
	if resume != nil {
		if err := tt.AttachSource("raw", LegOptions{Input: true}, idleSource{make(chan struct{})}); err != nil {
			t.Fatal(err)
		}
	}
	clients := make([]net.Conn, n)
	devs := make([]*waitable, n)
	for i := range devs {
		client, legEnd := loopPair(t)
		clients[i], devs[i] = client, &waitable{freezable: freezable{legEnd}}
		if resume != nil {
			err = tt.Adopt("raw", fmt.Sprintf("raw#%d", i), 0, devs[i], Counters{})
		} else {
			_, err = tt.attachLeg(mustReserve(t, tt, fmt.Sprintf("c%d", i)), devs[i], LegOptions{Input: true}, false)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return tt, clients, devs, guest
}

func waitedAll(devs []*waitable, n int) bool {
	for _, d := range devs {
		if d.waited() < n {
			return false
		}
	}
	return true
}

const typedWhileFrozen = "typed while frozen\n"

// TestFreezeIdleLegsParkWithoutGoroutines: legs waiting for input
// without a goroutine count as parked when the tee freezes, without a
// goroutine each (a thousand of them were a good part of an upgrade's
// pause); input typed during the freeze stays in the kernel and arrives
// once after Thaw, which makes them wait again.
func TestFreezeIdleLegsParkWithoutGoroutines(t *testing.T) {
	const n = 60
	tt, clients, devs, guest := idleTee(t, n, nil)
	defer tt.Close()
	eventually(t, "every idle leg to wait", func() bool { return waitedAll(devs, 1) })
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := tt.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	if grew := runtime.NumGoroutine() - before; grew >= n/2 {
		t.Fatalf("freezing %d idle legs started %d goroutines", n, grew)
	}
	clients[7].Write([]byte(typedWhileFrozen))
	tt.Thaw()
	eventually(t, "every idle leg to wait again after Thaw", func() bool { return waitedAll(devs, 2) })
	typedArrivesOnce(t, devs[7], guest)
}

// TestResumeIdleLegsWaitForThaw: a resumed tee's adopted idle legs start
// no reader before Thaw (no goroutine each; nothing is read before the
// old process commits)
// and wait for input from Thaw on; what a client typed meanwhile arrives
// once.
func TestResumeIdleLegsWaitForThaw(t *testing.T) {
	const n = 60
	before := runtime.NumGoroutine()
	tt, clients, devs, guest := idleTee(t, n, &Resume{Offset: 100})
	defer tt.Close()
	if grew := runtime.NumGoroutine() - before; grew >= n/2 {
		t.Fatalf("adopting %d idle legs started %d goroutines before Thaw", n, grew)
	}
	clients[3].Write([]byte(typedWhileFrozen))
	if w := devs[3].waited(); w != 0 {
		t.Fatalf("an adopted leg waited %d times before Thaw", w)
	}
	tt.Thaw()
	tt.Start()
	eventually(t, "every adopted leg to wait after Thaw", func() bool { return waitedAll(devs, 1) })
	typedArrivesOnce(t, devs[3], guest)
}

// typedArrivesOnce gives dev the poller's word that input is there, and
// checks that the frontend gets what was typed while frozen, once.
func typedArrivesOnce(t *testing.T, dev *waitable, guest net.Conn) {
	t.Helper()
	dev.wake()
	if got := readN(t, guest, len(typedWhileFrozen)); got != typedWhileFrozen {
		t.Fatalf("the frontend got %q", got)
	}
	guest.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := guest.Read(make([]byte, 64)); n != 0 {
		t.Fatalf("the frontend got %d more bytes", n)
	}
}

// TestCloseFrozenIdleLegs: a tee closed while frozen, or before a
// resumed tee's Thaw, closes its idle legs and returns (their readers,
// not running, are started to end).
func TestCloseFrozenIdleLegs(t *testing.T) {
	for _, resume := range []*Resume{nil, {Offset: 100}} {
		tt, _, devs, _ := idleTee(t, 20, resume)
		if resume == nil {
			eventually(t, "every idle leg to wait", func() bool { return waitedAll(devs, 1) })
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			if _, err := tt.Freeze(ctx); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
		done := make(chan error, 1)
		go func() { done <- tt.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("resumed %v: close: %v", resume != nil, err)
			}
		case <-time.After(wait):
			t.Fatalf("resumed %v: a frozen tee with idle legs did not close within %v", resume != nil, wait)
		}
		if st := tt.Stats(); len(st.Legs) != 0 {
			t.Fatalf("resumed %v: %d legs left after close", resume != nil, len(st.Legs))
		}
	}
}
