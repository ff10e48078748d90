package tee

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
)

// TestStuckInputHookDoesNotStopTyping: an input hook (the audit log) that
// blocks forever gets its own bounded queue; typing reaches the frontend
// all the same, and what the hook could not take is counted and told.
// Once it is unstuck it gets the rest of what was queued, in order.
func TestStuckInputHookDoesNotStopTyping(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var hooked []byte
	h := newHarness(t, Options{})
	defer once.Do(func() { close(release) }) // before the harness's Close
	sub := h.tee.Subscribe(256)
	defer sub.Close()
	first := true
	h.tee.SetInputHook(func(who chardev.InputAuthor, p []byte) {
		if first {
			first = false
			close(entered)
			<-release
		}
		mu.Lock()
		hooked = append(hooked, p...)
		mu.Unlock()
	})
	typist := h.attach("typist", LegOptions{Input: true})
	var typed []byte
	for i := range 40 { // 40 x 4 KiB: more than the hook's queue
		p := pattern(4<<10, i)
		typist.Feed(p)
		typed = append(typed, p...)
		if !h.front.WaitWritten(len(typed), wait) {
			t.Fatalf("typing stopped after %d of %d bytes behind a stuck input hook", h.front.WrittenLen(), len(typed))
		}
	}
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the hook was never given input")
	}
	expectEvent(t, sub, EventDrop, "typist", "input hook queue full")
	dropped := h.tee.Stats().Frontend.InputHookDropped
	if dropped == 0 || dropped >= uint64(len(typed)) {
		t.Fatalf("input not given to the hook: %d bytes counted of %d typed", dropped, len(typed))
	}
	once.Do(func() { close(release) })
	eventually(t, "the queued input given to the hook", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return uint64(len(hooked))+dropped == uint64(len(typed))
	})
	mu.Lock()
	defer mu.Unlock()
	// What the hook got is the typing's start, the queue's worth, in
	// order (the rest was dropped, not reordered).
	if !bytes.HasPrefix(typed, hooked) || len(hooked) > maxHookBacklog+4<<10 {
		t.Fatalf("hook got %d bytes, not the first %d typed in order", len(hooked), len(hooked))
	}
}

// TestInputHookGetsInputQueuedBeforeClose: what was typed before Close is
// still handed to the hook, even when the hook is behind as Close begins.
func TestInputHookGetsInputQueuedBeforeClose(t *testing.T) {
	h := newHarness(t, Options{})
	var mu sync.Mutex
	var hooked []byte
	entered, release := make(chan struct{}, 1), make(chan struct{})
	h.tee.SetInputHook(func(who chardev.InputAuthor, p []byte) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		mu.Lock()
		hooked = append(hooked, p...)
		mu.Unlock()
	})
	typist := h.attach("typist", LegOptions{Input: true})
	typist.Feed([]byte("sync\n"))
	<-entered // the hook is busy with the first line
	typist.Feed([]byte("reboot\n"))
	if !h.front.WaitWritten(len("sync\nreboot\n"), wait) {
		t.Fatal("input did not arrive")
	}
	closed := make(chan struct{})
	go func() {
		h.tee.Close()
		close(closed)
	}()
	// Close has reached the frontend (the hook's queue is closed next)
	// while the hook still holds the first line.
	if !h.front.WaitClosed(wait) {
		t.Fatal("Close did not close the frontend")
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if string(hooked) != "sync\nreboot\n" {
		t.Fatalf("hook got %q by the time Close returned", hooked)
	}
}
