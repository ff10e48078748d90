package tee

import "sync/atomic"

// signal is a one-shot event, like a channel that is closed once, whose
// channel is made only when someone waits before it fires: a leg has four
// (its writer and reader returned, its device closed, the leg gone), and
// a thousand idle legs should not keep four thousand channels (96 bytes
// each) that nobody waits on. The zero value is an event not yet fired.
type signal struct {
	ch atomic.Pointer[chan struct{}]
}

// firedChan is the channel of every signal fired before anyone waited.
var firedChan = func() *chan struct{} {
	c := make(chan struct{})
	close(c)
	return &c
}()

// fire closes the signal's channel. It must be called once.
func (s *signal) fire() {
	if s.ch.CompareAndSwap(nil, firedChan) {
		return
	}
	close(*s.ch.Load())
}

// done returns a channel closed when the signal fires.
func (s *signal) done() <-chan struct{} {
	if p := s.ch.Load(); p != nil {
		return *p
	}
	c := make(chan struct{})
	if s.ch.CompareAndSwap(nil, &c) {
		return c
	}
	return *s.ch.Load()
}
