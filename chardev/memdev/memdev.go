// Package memdev provides an in-memory character device for tests of the
// engine and of anything built on it. A Device collects what is written to
// it, returns to Read what a test feeds it, and can be told to stall, fail
// or slow down, so tests can drive every fault the engine must survive
// without real hardware or timing luck.
package memdev

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"chartee/chardev"
)

// ErrClosed is returned by a closed Device.
var ErrClosed = errors.New("memdev: closed")

// Interface guards: a Device has every capability, so tests can check that
// the engine replays line state. Wrap it with Plain to hide them.
var (
	_ chardev.Chardev         = (*Device)(nil)
	_ chardev.LineController  = (*Device)(nil)
	_ chardev.Breaker         = (*Device)(nil)
	_ chardev.ModemController = (*Device)(nil)
)

// Device is an in-memory Chardev. The zero value is not usable; call New.
type Device struct {
	Name string

	mu       sync.Mutex
	cond     *sync.Cond
	in       []byte // fed, not yet read
	inEOF    bool
	out      bytes.Buffer
	closed   bool
	stalled  bool
	frozen   bool // a process upgrade's freeze: Read returns ErrFrozen
	writeErr error
	readErr  error
	maxWrite int
	latency  time.Duration
	writes   int
	reads    []int // the size of every Read that returned bytes

	line   chardev.LineSettings
	modem  chardev.ModemStatus
	breaks int
}

// New returns an open Device.
func New(name string) *Device {
	d := &Device{Name: name}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// Describe names the device.
func (d *Device) Describe() string { return "memdev " + d.Name }

// Read returns fed bytes, blocking until some are fed, input is ended
// (io.EOF), a read error is injected, or the device is closed.
func (d *Device) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.in) == 0 && !d.inEOF && !d.closed && d.readErr == nil && !d.frozen {
		d.cond.Wait()
	}
	switch {
	case d.closed:
		return 0, ErrClosed
	case d.frozen:
		return 0, chardev.ErrFrozen
	case d.readErr != nil:
		return 0, d.readErr
	case len(d.in) == 0:
		return 0, io.EOF
	}
	n := copy(p, d.in)
	d.in = d.in[n:]
	d.reads = append(d.reads, n)
	if len(d.in) == 0 {
		d.in = nil
	}
	d.cond.Broadcast()
	return n, nil
}

// Write appends to the collected output. It blocks while stalled, returns
// an injected error, writes at most maxWrite bytes per call when set (a
// short write with io.ErrShortWrite, as a sink that accepts part of a
// buffer would), and sleeps for the configured latency.
func (d *Device) Write(p []byte) (int, error) {
	d.mu.Lock()
	lat := d.latency
	d.mu.Unlock()
	if lat > 0 {
		time.Sleep(lat)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.stalled && !d.closed && d.writeErr == nil {
		d.cond.Wait()
	}
	if d.closed {
		return 0, ErrClosed
	}
	if d.writeErr != nil {
		return 0, d.writeErr
	}
	n := len(p)
	var err error
	if d.maxWrite > 0 && n > d.maxWrite {
		n, err = d.maxWrite, io.ErrShortWrite
	}
	d.out.Write(p[:n])
	d.writes++
	d.cond.Broadcast()
	return n, err
}

// Close closes the device; blocked Read and Write calls return ErrClosed.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.cond.Broadcast()
	return nil
}

// Reads returns the size of every Read that returned bytes, in order: the
// boundaries of what a reader took (a tee's chunks, for a frontend).
func (d *Device) Reads() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.reads)
}

// Freeze implements chardev.Freezer: Read returns chardev.ErrFrozen, and
// what is fed waits, until Thaw.
func (d *Device) Freeze() error {
	d.mu.Lock()
	d.frozen = true
	d.cond.Broadcast()
	d.mu.Unlock()
	return nil
}

// Thaw undoes Freeze.
func (d *Device) Thaw() error {
	d.mu.Lock()
	d.frozen = false
	d.cond.Broadcast()
	d.mu.Unlock()
	return nil
}

// Feed queues bytes for Read.
func (d *Device) Feed(p []byte) {
	d.mu.Lock()
	d.in = append(d.in, p...)
	d.cond.Broadcast()
	d.mu.Unlock()
}

// EndInput makes Read return io.EOF once fed bytes are consumed.
func (d *Device) EndInput() {
	d.mu.Lock()
	d.inEOF = true
	d.cond.Broadcast()
	d.mu.Unlock()
}

// WaitFed waits until everything fed has been read, or timeout; it reports
// whether the input drained.
func (d *Device) WaitFed(timeout time.Duration) bool {
	return d.waitUntil(timeout, func() bool { return len(d.in) == 0 })
}

// Written returns a copy of everything written so far.
func (d *Device) Written() []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.out.Bytes())
}

// WrittenLen is how many bytes have been written.
func (d *Device) WrittenLen() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Len()
}

// WaitWritten waits until at least n bytes have been written, or timeout.
func (d *Device) WaitWritten(n int, timeout time.Duration) bool {
	return d.waitUntil(timeout, func() bool { return d.out.Len() >= n })
}

// WaitClosed waits until the device is closed, or timeout.
func (d *Device) WaitClosed(timeout time.Duration) bool {
	return d.waitUntil(timeout, func() bool { return d.closed })
}

func (d *Device) waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() {
		d.mu.Lock()
		d.cond.Broadcast()
		d.mu.Unlock()
	})
	defer t.Stop()
	d.mu.Lock()
	defer d.mu.Unlock()
	for !cond() {
		if !time.Now().Before(deadline) {
			return false
		}
		d.cond.Wait()
	}
	return true
}

// Closed reports whether Close was called.
func (d *Device) Closed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// Stall makes Write block (a peer that stops reading) until Resume.
func (d *Device) Stall() {
	d.mu.Lock()
	d.stalled = true
	d.mu.Unlock()
}

// Resume ends a Stall.
func (d *Device) Resume() {
	d.mu.Lock()
	d.stalled = false
	d.cond.Broadcast()
	d.mu.Unlock()
}

// FailWrites makes every later Write fail with err (a peer reset, a full
// disk); nil heals the device.
func (d *Device) FailWrites(err error) {
	d.mu.Lock()
	d.writeErr = err
	d.cond.Broadcast()
	d.mu.Unlock()
}

// FailReads makes Read fail with err at once, fed bytes or not: a device
// that vanished.
func (d *Device) FailReads(err error) {
	d.mu.Lock()
	d.readErr = err
	d.cond.Broadcast()
	d.mu.Unlock()
}

// SetMaxWrite limits how much one Write accepts (0: no limit).
func (d *Device) SetMaxWrite(n int) {
	d.mu.Lock()
	d.maxWrite = n
	d.mu.Unlock()
}

// SetLatency makes every Write sleep d first.
func (d *Device) SetLatency(lat time.Duration) {
	d.mu.Lock()
	d.latency = lat
	d.mu.Unlock()
}

// SetLineSettings records settings (zero Baud/DataBits keep the current).
func (d *Device) SetLineSettings(l chardev.LineSettings) error {
	if err := l.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if l.Baud == 0 {
		l.Baud = d.line.Baud
	}
	if l.DataBits == 0 {
		l.DataBits = d.line.DataBits
	}
	d.line = l
	return nil
}

// LineSettings returns the recorded settings.
func (d *Device) LineSettings() (chardev.LineSettings, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.line, nil
}

// Break counts a break.
func (d *Device) Break(time.Duration) error {
	d.mu.Lock()
	d.breaks++
	d.mu.Unlock()
	return nil
}

// Breaks is how many breaks were sent.
func (d *Device) Breaks() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.breaks
}

// SetDTR records DTR.
func (d *Device) SetDTR(v bool) error {
	d.mu.Lock()
	d.modem.DTR = v
	d.mu.Unlock()
	return nil
}

// SetRTS records RTS.
func (d *Device) SetRTS(v bool) error {
	d.mu.Lock()
	d.modem.RTS = v
	d.mu.Unlock()
	return nil
}

// SetModemInputs sets what the far end drives (CTS, DSR, DCD, RI).
func (d *Device) SetModemInputs(m chardev.ModemStatus) {
	d.mu.Lock()
	m.DTR, m.RTS = d.modem.DTR, d.modem.RTS
	d.modem = m
	d.mu.Unlock()
}

// ModemStatus returns the modem lines.
func (d *Device) ModemStatus() (chardev.ModemStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.modem, nil
}

// Plain hides a device's capabilities, leaving a bare byte stream (a
// socket-like device with no line settings, break or modem lines).
func Plain(d chardev.Chardev) chardev.Chardev { return plain{d} }

type plain struct{ chardev.Chardev }

// Opener returns an Opener that yields the devices in order, one per Open,
// and then fails with err (or a generic "no more devices" error). Tests use
// it for frontends that reconnect and for swaps.
func Opener(err error, devs ...chardev.Chardev) chardev.Opener {
	if err == nil {
		err = errors.New("memdev: no more devices")
	}
	return &seqOpener{devs: devs, err: err}
}

type seqOpener struct {
	mu   sync.Mutex
	devs []chardev.Chardev
	err  error
}

func (o *seqOpener) Open(ctx context.Context) (chardev.Chardev, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.devs) == 0 {
		return nil, o.err
	}
	d := o.devs[0]
	o.devs = o.devs[1:]
	return d, nil
}

// Add appends devices for later Opens of an Opener made by this package.
func Add(op chardev.Opener, devs ...chardev.Chardev) {
	o := op.(*seqOpener)
	o.mu.Lock()
	o.devs = append(o.devs, devs...)
	o.mu.Unlock()
}
