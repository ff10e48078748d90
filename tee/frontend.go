package tee

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"chartee/chardev"
)

// frontendState is the frontend side of the tee: the device in use (nil
// while down), the candidates to reopen, and the line state to replay.
// Its lock is the frontend write lock: a swap installs a new device under
// it, and the input writer picks its device under it.
type frontendState struct {
	mu         sync.Mutex
	up         sync.Cond // broadcast when a device is installed or on close
	dev        chardev.Chardev
	desc       string
	gen        uint64
	closed     bool
	stopped    bool
	candidates []chardev.Opener
	current    int // index in candidates of the device in use
	lastErr    string
	line       lineState
	// noTry is the generation of a device whose TryWrite said it cannot
	// after all (ErrUnsupported): input to it goes through the writer.
	noTry uint64

	bytesOut   atomic.Uint64
	bytesIn    atomic.Uint64
	reconnects atomic.Uint64
	failovers  atomic.Uint64
	openFails  atomic.Uint64

	// reported is the open error last emitted as an event, and when:
	// the first failure and every change are reported, no more than one
	// per openErrorGap (see openFailed).
	reported   string
	reportedAt time.Time
}

// openErrorGap is the least time between two open-failure events: a
// device whose error flips at every retry is reported, not repeated.
var openErrorGap = time.Second

// lineState is what legs (RFC 2217 clients, the API) have set on the
// frontend, replayed onto every new frontend device: the seed patch's
// lesson that a backend carries state its frontend set up.
type lineState struct {
	settings    chardev.LineSettings
	hasSettings bool
	dtr, rts    *bool
}

type frontendSwap struct {
	dev    chardev.Chardev
	opener chardev.Opener
	desc   string
	done   chan FrontendSwapReport
	start  time.Time
	// index is the candidate the swap moves to (FailOver), keeping the
	// candidate list as it is; -1 makes the device the new primary.
	index int
	from  string // FailOver: the device moved from
}

func (f *frontendState) init(opts Options) {
	f.up.L = &f.mu
	f.candidates = append([]chardev.Opener{opts.Frontend}, opts.Failover...)
}

// wait returns the device in use and its generation, waiting while the
// frontend is down. nil means the tee is closing.
func (f *frontendState) wait() (chardev.Chardev, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.dev == nil && !f.closed {
		f.up.Wait()
	}
	return f.dev, f.gen
}

func (f *frontendState) close() {
	f.mu.Lock()
	f.closed = true
	f.up.Broadcast()
	f.mu.Unlock()
}

// stopReading makes the frontend loop stop after its current read (for
// Shutdown): the device is closed and not reopened.
func (f *frontendState) stopReading(t *Tee) {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	t.cancel()
}

// installFrontend makes dev the frontend, after replaying the line state onto it.
func (t *Tee) installFrontend(dev chardev.Chardev, idx int, desc string) (lineApplied bool) {
	lineApplied = t.replayLine(dev)
	f := &t.front
	f.mu.Lock()
	f.dev, f.desc, f.current = dev, desc, idx
	f.gen++
	f.lastErr = ""
	f.up.Broadcast()
	f.mu.Unlock()
	return lineApplied
}

// uninstallFrontend marks the frontend down; input waits (bounded) for the next.
func (t *Tee) uninstallFrontend(reason string) {
	f := &t.front
	f.mu.Lock()
	f.dev = nil
	f.gen++
	f.lastErr = reason
	f.mu.Unlock()
}

// replayLine applies the recorded line state to dev. The first device
// ever installed seeds the state from its own settings instead, so a
// failover spare gets the primary's settings even if no one changed them.
func (t *Tee) replayLine(dev chardev.Chardev) bool {
	f := &t.front
	f.mu.Lock()
	ls := f.line
	f.mu.Unlock()
	if !ls.hasSettings {
		if lc, ok := dev.(chardev.LineController); ok {
			if cur, err := lc.LineSettings(); err == nil {
				f.mu.Lock()
				if !f.line.hasSettings {
					f.line.settings, f.line.hasSettings = cur, true
				}
				f.mu.Unlock()
			}
		}
	}
	applied := false
	if ls.hasSettings {
		err := chardev.SetLineSettings(dev, ls.settings)
		switch {
		case err == nil:
			applied = true
		case !chardev.IsUnsupported(err):
			t.emit(Event{Kind: EventError, Reason: "replay line settings: " + err.Error()})
		}
	}
	if ls.dtr != nil || ls.rts != nil {
		if err := chardev.SetModemLines(dev, ls.dtr, ls.rts); err != nil && !chardev.IsUnsupported(err) {
			t.emit(Event{Kind: EventError, Reason: "replay modem lines: " + err.Error()})
		}
	}
	return applied
}

// frontendLoop owns the frontend: it opens it, runs its reader, and on
// failure reconnects with backoff or fails over; swaps come to it through
// swapCh, so a swap never runs inside the read path.
func (t *Tee) frontendLoop() {
	defer t.wg.Done()
	defer close(t.frontDone)
	defer t.front.close()
	var (
		dev  chardev.Chardev
		idx  int
		desc string
		req  *frontendSwap
	)
	dev, idx, req = t.reconnect(0, false)
	for dev != nil || req != nil {
		if req != nil {
			dev, idx, desc = req.dev, max(req.index, 0), req.desc
		} else {
			// Under the frontend lock: SetFailover replaces the list.
			t.front.mu.Lock()
			if idx < len(t.front.candidates) {
				desc = chardev.Describe(t.front.candidates[idx])
			}
			t.front.mu.Unlock()
		}
		applied := t.installFrontend(dev, idx, desc)
		if req != nil {
			t.finishFrontendSwap(req, applied)
			req = nil
		}
		readErr := make(chan error, 1)
		t.wg.Add(1)
		go func(dev chardev.Chardev) {
			defer t.wg.Done()
			readErr <- t.frontendReadLoop(dev)
		}(dev)

		select {
		case err := <-readErr:
			if t.ctx.Err() != nil {
				t.uninstallFrontend("closed")
				dev.Close()
				return
			}
			reason := "EOF"
			if err != nil {
				reason = err.Error()
			}
			t.uninstallFrontend(reason)
			dev.Close()
			t.emit(Event{Kind: EventFrontendLost, Reason: desc + ": " + reason, Offset: t.Offset()})
			t.noticeFrontend("lost %s (%s); reconnecting", desc, reason)
			dev, idx, req = t.reconnect(idx, true)
		case r := <-t.swapCh:
			t.uninstallFrontend("swapping")
			// The new device is open already: only the reader must
			// stop; a Close that hangs after that is not waited for.
			t.closeAsync(dev)
			<-readErr
			dev, req = nil, r
		case <-t.ctx.Done():
			t.uninstallFrontend("closed")
			t.closeAsync(dev)
			<-readErr
			return
		}
	}
}

// frontendReadLoop reads the frontend and fans each chunk out until the
// device fails or is closed.
func (t *Tee) frontendReadLoop(dev chardev.Chardev) error {
	for {
		c := t.chunks.get()
		n, err := dev.Read(c.buf)
		if n > 0 {
			c.b = c.buf[:n]
			t.front.bytesOut.Add(uint64(n))
			t.fanout(t.rightSize(c))
		} else {
			t.chunks.release(c)
		}
		if errors.Is(err, chardev.ErrFrozen) && t.park() {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			// A device returning 0, nil forever would spin; treat it as
			// the end of the stream.
			return errors.New("read returned no data")
		}
	}
}

// rightSize returns c, or for a read that fills less than half of it a
// copy in the smallest sized chunk that holds it (c goes back to its
// pool): every queue and the scrollback then keep alive at most twice the
// bytes they hold, not a whole read buffer per small read.
func (t *Tee) rightSize(c *chunk) *chunk {
	if len(c.b) >= cap(c.buf)/2 {
		return c
	}
	s := t.sized.fit(len(c.b))
	if s == nil {
		return c
	}
	s.b = append(s.buf[:0], c.b...)
	c.release()
	return s
}

// reconnect opens a frontend device. After the loss of candidate lost it
// tries the other candidates in order at once (failover), then rounds over
// all of them with growing delays. A swap request ends the wait.
func (t *Tee) reconnect(lost int, afterLoss bool) (chardev.Chardev, int, *frontendSwap) {
	f := &t.front
	t.mu.Lock()
	bo := chardev.Backoff{Initial: t.opts.Reconnect.Initial, Max: t.opts.Reconnect.Max}
	t.mu.Unlock()
	first := true
	lostAt := time.Now()
	for {
		f.mu.Lock()
		cands := f.candidates
		stopped := f.stopped
		f.mu.Unlock()
		if stopped {
			return nil, 0, nil
		}
		// Try the others first after a loss; the lost one comes last.
		for k := 1; k <= len(cands); k++ {
			i := (lost + k) % len(cands)
			if !afterLoss {
				i = (lost + k - 1) % len(cands)
			}
			if afterLoss && first && i == lost && len(cands) > 1 {
				continue // it just failed; try it again only next round
			}
			if afterLoss && first && len(cands) == 1 {
				break // give a vanished device a moment before reopening
			}
			ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
			dev, err := cands[i].Open(ctx)
			cancel()
			if err == nil {
				if afterLoss {
					f.reconnects.Add(1)
					kind := "reconnected"
					if i != lost {
						f.failovers.Add(1)
						t.swapsDone[swapFailover].Add(1)
						t.swapTimes[swapFailover].observe(time.Since(lostAt))
						kind = "failed over"
					}
					t.emit(Event{Kind: EventFrontendRestored, Offset: t.Offset(),
						Reason: kind + " to " + chardev.Describe(cands[i])})
					how := "reconnected"
					if i != lost {
						how = "failover"
					}
					t.noticeFrontend("now on %s (%s)", chardev.Describe(cands[i]), how)
				} else {
					t.emit(Event{Kind: EventFrontendRestored, Offset: t.Offset(),
						Reason: "opened " + chardev.Describe(cands[i])})
				}
				return dev, i, nil
			}
			if t.ctx.Err() != nil {
				return nil, 0, nil
			}
			t.openFailed(cands[i], err)
		}
		first = false
		timer := time.NewTimer(bo.Next())
		select {
		case <-timer.C:
		case r := <-t.swapCh:
			timer.Stop()
			return nil, 0, r
		case <-t.ctx.Done():
			timer.Stop()
			return nil, 0, nil
		}
	}
}

// openFailed records a frontend open error, and emits it as an event the
// first time and whenever it changes (rate-limited): a device that is not
// there is said once, not at every retry, and never silently.
func (t *Tee) openFailed(cand chardev.Opener, err error) {
	f := &t.front
	f.openFails.Add(1)
	desc := chardev.Describe(cand)
	msg := desc + ": " + err.Error()
	now := time.Now()
	f.mu.Lock()
	f.lastErr = err.Error()
	if f.dev == nil {
		f.desc = desc // what is being tried, for status
	}
	report := msg != f.reported && now.Sub(f.reportedAt) >= openErrorGap
	if report {
		f.reported, f.reportedAt = msg, now
	}
	f.mu.Unlock()
	if report {
		t.emit(Event{Kind: EventFrontendOpenFailed, Offset: t.Offset(), Reason: msg + "; retrying"})
	}
}

// SwapFrontend replaces the frontend with the device open gives: the new
// device is opened first (an error changes nothing), the tee's line state
// is replayed onto it, it is installed under the frontend write lock, and
// the old device is closed. Legs stay attached; input not yet written to
// the old device goes to the new one. The new device becomes the primary
// for later reconnects; the failover list is kept.
func (t *Tee) SwapFrontend(ctx context.Context, open chardev.Opener) (FrontendSwapReport, error) {
	return t.swapFrontend(ctx, open, -1, "")
}

// FailOver moves the frontend to the next device of its list (the primary,
// then the failover devices, round robin) on demand, with the swap's
// guarantees: the device is opened first (an error changes nothing), line
// state is replayed, no input is lost. The list is kept as it is. An
// admin uses it to move a console off a flaky adapter.
func (t *Tee) FailOver(ctx context.Context) (FrontendSwapReport, error) {
	f := &t.front
	f.mu.Lock()
	cands, cur := f.candidates, f.current
	f.mu.Unlock()
	if len(cands) < 2 {
		return FrontendSwapReport{}, fmt.Errorf("tee %s: fail over: no failover device configured", t.opts.Name)
	}
	next := (cur + 1) % len(cands)
	return t.swapFrontend(ctx, cands[next], next, chardev.Describe(cands[cur]))
}

func (t *Tee) swapFrontend(ctx context.Context, open chardev.Opener, index int, from string) (FrontendSwapReport, error) {
	start := time.Now()
	dev, err := open.Open(ctx)
	if err != nil {
		t.swapsFailed[swapFrontend].Add(1)
		return FrontendSwapReport{}, fmt.Errorf("tee %s: swap frontend: open: %w", t.opts.Name, err)
	}
	req := &frontendSwap{dev: dev, opener: open, desc: chardev.Describe(open), done: make(chan FrontendSwapReport, 1), start: start, index: index, from: from}
	select {
	case t.swapCh <- req:
	case <-ctx.Done():
		dev.Close()
		t.swapsFailed[swapFrontend].Add(1)
		return FrontendSwapReport{}, fmt.Errorf("tee %s: swap frontend: %w", t.opts.Name, ctx.Err())
	case <-t.ctx.Done():
		dev.Close()
		return FrontendSwapReport{}, ErrClosed
	}
	// The frontend loop has taken the request; it always answers, once
	// the old device's reader has stopped.
	select {
	case rep := <-req.done:
		return rep, nil
	case <-ctx.Done():
		return FrontendSwapReport{}, fmt.Errorf("tee %s: swap frontend: the old frontend's reader has not stopped: %w", t.opts.Name, ctx.Err())
	}
}

func (t *Tee) finishFrontendSwap(req *frontendSwap, applied bool) {
	f := &t.front
	f.mu.Lock()
	from := "(down)"
	if len(f.candidates) > 0 {
		from = chardev.Describe(f.candidates[0])
	}
	if req.index >= 0 && req.index < len(f.candidates) {
		from = req.from
		f.current = req.index
	} else {
		f.candidates = append([]chardev.Opener{req.opener}, f.candidates[1:]...)
		f.current = 0
	}
	f.mu.Unlock()
	rep := FrontendSwapReport{
		From: from, To: req.desc, Offset: t.Offset(), LineApplied: applied,
		InputCarry: t.input.pendingBytes(), Elapsed: time.Since(req.start),
	}
	t.swapsDone[swapFrontend].Add(1)
	t.swapTimes[swapFrontend].observe(rep.Elapsed)
	t.emit(Event{Kind: EventFrontendSwap, Offset: rep.Offset, Reason: from + " -> " + req.desc, FrontendSwap: &rep})
	t.noticeFrontend("now on %s (frontend swap)", req.desc)
	req.done <- rep
}

// SetFailover replaces the failover list (tried in order when the
// frontend fails).
func (t *Tee) SetFailover(list []chardev.Opener) {
	f := &t.front
	f.mu.Lock()
	f.candidates = append([]chardev.Opener{f.candidates[0]}, list...)
	if f.current >= len(f.candidates) {
		f.current = 0
	}
	f.mu.Unlock()
}

// errControlBusy is returned when a frontend control call could not run
// or finish within the control bound.
var errControlBusy = errors.New("the frontend's control path is busy: a previous control call is still waiting for the device")

// control runs fn, a control call on the frontend device (line settings,
// modem lines, break), on the tee's control path: one call at a time, and
// never under the frontend lock, so Stats, status text and the input
// writer never wait for a device's round trip. The caller waits at most
// the control bound (the drain timeout, plus extra) for its turn and its
// call; a call still running then goes on in the background, keeping the
// path, and the caller gets an error. Close does not wait for it.
func (t *Tee) control(what string, extra time.Duration, fn func() error) error {
	timer := time.NewTimer(t.controlBound() + extra)
	defer timer.Stop()
	select {
	case t.ctlTok <- struct{}{}:
	case <-timer.C:
		return fmt.Errorf("tee %s: %s: %w", t.opts.Name, what, errControlBusy)
	case <-t.ctx.Done():
		return ErrClosed
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-t.ctlTok }()
		done <- fn()
	}()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		t.emit(Event{Kind: EventError, Reason: what + ": the frontend device has not answered; the call goes on in the background"})
		return fmt.Errorf("tee %s: %s: %w", t.opts.Name, what, errControlBusy)
	}
}

func (t *Tee) controlBound() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.opts.DrainTimeout
}

// SetLineSettings changes the frontend's line settings and records them as
// the tee's line state, replayed on every reconnect, failover and swap.
// While the frontend is down the settings are only recorded. Every leg that
// observes line changes is told. It runs on the control path (see
// control): it returns within the drain timeout whatever the device does.
func (t *Tee) SetLineSettings(ls chardev.LineSettings) error {
	if err := ls.Validate(); err != nil {
		return err
	}
	err := t.control("line settings", 0, func() error {
		f := &t.front
		f.mu.Lock()
		cur := f.line.settings
		if ls.Baud == 0 {
			ls.Baud = cur.Baud
		}
		if ls.DataBits == 0 {
			ls.DataBits = cur.DataBits
		}
		dev, gen := f.dev, f.gen
		f.mu.Unlock()
		for {
			var err error
			if dev != nil {
				err = chardev.SetLineSettings(dev, ls)
			}
			if err != nil && !chardev.IsUnsupported(err) {
				return fmt.Errorf("tee %s: line settings: %w", t.opts.Name, err)
			}
			f.mu.Lock()
			f.line.settings, f.line.hasSettings = ls, true
			ndev, ngen := f.dev, f.gen
			f.mu.Unlock()
			// A device installed meanwhile may have been given the
			// line state from before this change: give it this one.
			if ngen == gen || ndev == nil {
				return nil
			}
			dev, gen = ndev, ngen
		}
	})
	if err != nil {
		return err
	}
	t.emit(Event{Kind: EventLine, Reason: ls.String()})
	for _, l := range t.view.Load().legs {
		if l.observer != nil {
			l.observer.LineChanged(ls)
		}
	}
	return nil
}

// LineSettings is the tee's recorded line state.
func (t *Tee) LineSettings() chardev.LineSettings {
	t.front.mu.Lock()
	defer t.front.mu.Unlock()
	return t.front.line.settings
}

// SetModemLines drives the frontend's DTR/RTS and records them for replay.
// It runs on the control path (see control).
func (t *Tee) SetModemLines(dtr, rts *bool) error {
	return t.control("modem lines", 0, func() error {
		f := &t.front
		f.mu.Lock()
		if dtr != nil {
			v := *dtr
			f.line.dtr = &v
		}
		if rts != nil {
			v := *rts
			f.line.rts = &v
		}
		dev := f.dev
		f.mu.Unlock()
		if dev == nil {
			return nil
		}
		if err := chardev.SetModemLines(dev, dtr, rts); err != nil && !chardev.IsUnsupported(err) {
			return fmt.Errorf("tee %s: modem lines: %w", t.opts.Name, err)
		}
		return nil
	})
}

// ModemStatus reads the frontend's modem lines, on the control path.
func (t *Tee) ModemStatus() (chardev.ModemStatus, error) {
	var ms chardev.ModemStatus
	err := t.control("modem status", 0, func() error {
		dev := t.frontDev()
		if dev == nil {
			return fmt.Errorf("tee %s: frontend is down", t.opts.Name)
		}
		var err error
		ms, err = chardev.GetModemStatus(dev)
		return err
	})
	return ms, err
}

func (t *Tee) frontDev() chardev.Chardev {
	f := &t.front
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dev
}

// SendBreak sends a break to the frontend, on the control path.
func (t *Tee) SendBreak(d time.Duration) error {
	return t.control("break", d, func() error {
		dev := t.frontDev()
		if dev == nil {
			return fmt.Errorf("tee %s: frontend is down", t.opts.Name)
		}
		if err := chardev.SendBreak(dev, d); err != nil {
			return fmt.Errorf("tee %s: break: %w", t.opts.Name, err)
		}
		return nil
	})
}
