package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"chartee/tee"
)

const (
	writeChunk  = 64 << 10
	stallLimit  = 15 * time.Second // no progress for this long: the server is stuck
	syncTimeout = 15 * time.Second
	drainLimit  = 30 * time.Second // after the writer stops, for the last client to catch up
)

// client is one connection reading and verifying the stream.
type client struct {
	c    conn
	v    verifier
	got  atomic.Uint64 // bytes received after the sync bytes
	last atomic.Int64  // unix nanos of the last byte
	dead atomic.Bool
	err  error
}

// session is a started server, its device pumps and its clients.
type session struct {
	t       *target
	clients []*client
	synced  atomic.Int64
	devIn   atomic.Uint64 // bytes the server wrote to the device (discarded)
	wg      sync.WaitGroup
}

// dialAll connects n clients one after another. Not in parallel: ser2net
// resets connections that arrive while it is still opening the device for
// an earlier one, so every system gets its clients the same, serial way.
// Connection time is not part of any measurement.
func dialAll(ctx context.Context, t *target, n int) ([]conn, error) {
	cs := make([]conn, 0, n)
	for range n {
		c, err := t.dial(ctx)
		if err != nil {
			for _, c := range cs {
				c.Close()
			}
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// newSession dials n clients and starts their readers and a goroutine
// discarding whatever the server writes to the device.
func newSession(ctx context.Context, t *target, n int) (*session, error) {
	cs, err := dialAll(ctx, t, n)
	if err != nil {
		return nil, err
	}
	s := &session{t: t}
	for _, c := range cs {
		cl := &client{c: c}
		s.clients = append(s.clients, cl)
		s.wg.Add(1)
		go s.read(cl)
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := t.dev.Read(buf)
			s.devIn.Add(uint64(n))
			if err != nil {
				return
			}
		}
	}()
	return s, nil
}

func (s *session) read(cl *client) {
	defer s.wg.Done()
	buf := make([]byte, 64<<10)
	for {
		cl.c.SetReadDeadline(time.Now().Add(stallLimit + drainLimit))
		n, err := cl.c.Read(buf)
		if n > 0 {
			cl.last.Store(time.Now().UnixNano())
			if cl.v.feed(buf[:n]) {
				s.synced.Add(1)
			}
			cl.got.Store(cl.v.off + cl.v.extra)
		}
		if err != nil {
			cl.err = err
			cl.dead.Store(true)
			return
		}
	}
}

// close closes the clients and waits for their readers.
func (s *session) close() {
	for _, cl := range s.clients {
		cl.c.Close()
	}
	s.wg.Wait()
}

// sync writes sync bytes until every client has seen one: from then on
// every client is attached and receives every byte the device sends.
func (s *session) sync() error {
	deadline := time.Now().Add(syncTimeout)
	one := []byte{syncByte}
	for s.synced.Load() < int64(len(s.clients)) {
		if time.Now().After(deadline) {
			dead, why := 0, ""
			for _, cl := range s.clients {
				if cl.dead.Load() {
					dead++
					if why == "" {
						why = fmt.Sprintf(" (first: %v)", cl.err)
					}
				}
			}
			return fmt.Errorf("bench: only %d of %d clients received the sync byte within %v; %d closed by the server%s",
				s.synced.Load(), len(s.clients), syncTimeout, dead, why)
		}
		s.t.dev.SetWriteDeadline(time.Now().Add(stallLimit))
		if _, err := s.t.dev.Write(one); err != nil {
			return fmt.Errorf("bench: device write (sync): %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// stream writes the pattern to the device as fast as the server takes it
// for dur, then waits until every client has received all of it.
func (s *session) stream(dur time.Duration) (written uint64, t0 time.Time, err error) {
	t0 = time.Now()
	for time.Since(t0) < dur {
		s.t.dev.SetWriteDeadline(time.Now().Add(stallLimit))
		n, werr := s.t.dev.Write(patternAt(written, writeChunk))
		written += uint64(n)
		if werr != nil {
			return written, t0, fmt.Errorf("bench: device write stalled after %d bytes: %w", written, werr)
		}
	}
	deadline := time.Now().Add(drainLimit)
	for {
		pending := 0
		for _, cl := range s.clients {
			if cl.got.Load() < written && !cl.dead.Load() {
				pending++
			}
		}
		if pending == 0 {
			return written, t0, nil
		}
		if time.Now().After(deadline) {
			return written, t0, fmt.Errorf("bench: %d of %d clients still short of %d bytes %v after the writer stopped",
				pending, len(s.clients), written, drainLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// tputResult is one throughput run: one peer, N clients.
type tputResult struct {
	Peer     string
	N        int
	Written  uint64        // bytes the device sent
	Elapsed  time.Duration // first byte written to last byte received by the last client
	AggMBps  float64       // all clients' bytes / Elapsed
	MinMBps  float64       // the slowest client's bytes / its own last-byte time
	Exact    int           // clients that got every byte in order
	Problems []string
	CPU      time.Duration // server CPU time over the run
	RSSKB    int
	CtxSw    int           // server context switches over the run
	BenchCPU time.Duration // the bench's own CPU time (writer, clients)
	Busy     float64       // share of the machine's CPU busy, all processes
	Steal    float64       // share of the machine's CPU the hypervisor took
	Err      string
	Rounds   int
}

// merge folds another round of the same peer and N into r: the figures are
// those of the faster round (the one least disturbed by other load on the
// machine), while exactness and problems count over every round.
func (r *tputResult) merge(o tputResult) {
	exact := min(r.Exact, o.Exact)
	problems := append(r.Problems, o.Problems...)
	rounds := r.Rounds + 1
	errs := r.Err
	if errs == "" {
		errs = o.Err
	}
	if o.AggMBps > r.AggMBps {
		*r = o
	}
	r.Exact, r.Problems, r.Rounds, r.Err = exact, problems, rounds, errs
}

func mb(b uint64) float64 { return float64(b) / 1e6 }

func (r *tputResult) CPUPerMB() float64 {
	if r.Written == 0 {
		return math.NaN()
	}
	return r.CPU.Seconds() / mb(r.Written)
}

// runThroughput measures output throughput of p to n clients.
// during, when set, runs while the device is being written (the swap
// workload); after, when set, runs once every client is done.
func runThroughput(ctx context.Context, e *env, p *peer, o runOpts, dur time.Duration,
	during func(ctx context.Context, t *target), after func(t *target, written uint64) error) tputResult {
	r := tputResult{Peer: p.label, N: o.clients, Rounds: 1}
	fail := func(err error) tputResult {
		r.Err = err.Error()
		return r
	}
	t, err := p.start(ctx, e, o)
	if err != nil {
		return fail(err)
	}
	defer t.close()
	s, err := newSession(ctx, t, o.clients)
	if err != nil {
		return fail(err)
	}
	defer s.close()
	if err := s.sync(); err != nil {
		return fail(err)
	}
	var before procStat
	if t.proc != nil {
		before, _ = readProcStat(t.proc.pid())
	}
	cpu0, self0 := readCPUTimes(), selfCPU()
	dctx, stop := context.WithCancel(ctx)
	var dwg sync.WaitGroup
	if during != nil {
		dwg.Add(1)
		go func() { defer dwg.Done(); during(dctx, t) }()
	}
	written, t0, serr := s.stream(dur)
	stop()
	dwg.Wait()
	r.Written = written
	r.Busy, r.Steal = busy(cpu0, readCPUTimes())
	r.BenchCPU = selfCPU() - self0
	if t.proc != nil {
		if st, err := readProcStat(t.proc.pid()); err == nil {
			r.CPU = st.cpu - before.cpu
			r.RSSKB = st.rssKB
			r.CtxSw = st.ctxsw - before.ctxsw
		}
	}
	var total uint64
	var lastAll int64
	r.MinMBps = math.Inf(1)
	// Each reader goroutine owns its verifier until the clients are
	// closed: read the atomic counts now and the verdicts after close.
	for _, cl := range s.clients {
		got := cl.got.Load()
		total += got
		last := cl.last.Load()
		lastAll = max(lastAll, last)
		if el := time.Duration(last - t0.UnixNano()); el > 0 {
			r.MinMBps = min(r.MinMBps, mb(got)/el.Seconds())
		}
	}
	r.Elapsed = time.Duration(lastAll - t0.UnixNano())
	if r.Elapsed > 0 {
		r.AggMBps = mb(total) / r.Elapsed.Seconds()
	}
	if math.IsInf(r.MinMBps, 1) {
		r.MinMBps = 0
	}
	if serr != nil {
		r.Err = serr.Error()
	}
	if after != nil {
		if err := after(t, written); err != nil {
			r.Problems = append(r.Problems, err.Error())
		}
	}
	s.close()
	for i, cl := range s.clients {
		switch {
		case cl.v.bad != nil:
			r.Problems = append(r.Problems, fmt.Sprintf("client %d: reordered or lost: %v", i, cl.v.bad))
		case cl.v.off < written:
			r.Problems = append(r.Problems, fmt.Sprintf("client %d: got %d of %d bytes (%v)", i, cl.v.off, written, cl.err))
		case cl.v.extra > 0 || cl.v.off > written:
			r.Problems = append(r.Problems, fmt.Sprintf("client %d: %d bytes more than written", i, cl.v.off+cl.v.extra-written))
		default:
			r.Exact++
		}
	}
	if len(r.Problems) > 3 {
		r.Problems = append(r.Problems[:3], fmt.Sprintf("... and %d more", len(r.Problems)-3))
	}
	return r
}

// rttResult is the keystroke round trip: client -> server -> device, echoed
// by the bench, device -> server -> client, one key at a time.
type rttResult struct {
	Peer     string
	lat      []time.Duration
	Rounds   int
	Samples  int
	P50, P99 time.Duration
	Max      time.Duration
	Err      string
}

func runRTT(ctx context.Context, e *env, p *peer, dur time.Duration, during func(ctx context.Context, t *target)) rttResult {
	r := rttResult{Peer: p.label}
	fail := func(err error) rttResult {
		r.Err = err.Error()
		return r
	}
	t, err := p.start(ctx, e, runOpts{clients: 1})
	if err != nil {
		return fail(err)
	}
	defer t.close()
	go func() { // the device echoes every byte back
		buf := make([]byte, 4096)
		for {
			n, err := t.dev.Read(buf)
			if n > 0 {
				t.dev.SetWriteDeadline(time.Now().Add(stallLimit))
				if _, werr := t.dev.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	cs, err := dialAll(ctx, t, 1)
	if err != nil {
		return fail(err)
	}
	c := cs[0]
	defer c.Close()
	buf := make([]byte, 256)
	key := func(b byte, timeout time.Duration) (time.Duration, error) {
		start := time.Now()
		c.SetWriteDeadline(start.Add(timeout))
		if _, err := c.Write([]byte{b}); err != nil {
			return 0, err
		}
		c.SetReadDeadline(start.Add(timeout))
		n, err := c.Read(buf)
		el := time.Since(start)
		if err != nil {
			return 0, err
		}
		if n != 1 || buf[0] != b {
			return 0, fmt.Errorf("bench: sent %q, echo was %q", b, buf[:n])
		}
		return el, nil
	}
	// Servers may open the device only when the client connects: the
	// first key waits for that.
	if _, err := key('!', 10*time.Second); err != nil {
		return fail(fmt.Errorf("bench: first key never echoed: %w", err))
	}
	if during != nil {
		dctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); during(dctx, t) }()
		defer func() { stop(); <-done }()
	}
	var lat []time.Duration
	start := time.Now()
	for i := 0; time.Since(start) < dur && len(lat) < 1000000; i++ {
		el, err := key(byte('a'+i%26), 5*time.Second)
		if err != nil {
			return fail(fmt.Errorf("bench: key %d: %w", i, err))
		}
		if i >= 20 { // warm-up
			lat = append(lat, el)
		}
	}
	r.lat = lat
	r.Rounds = 1
	r.summarize()
	return r
}

func (r *rttResult) summarize() {
	lat := r.lat
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.Samples = len(lat)
	if len(lat) > 0 {
		r.P50 = lat[len(lat)/2]
		r.P99 = lat[len(lat)*99/100]
		r.Max = lat[len(lat)-1]
	}
}

// merge adds another round's keys; an error in any round is kept.
func (r *rttResult) merge(o rttResult) {
	r.Rounds++
	r.lat = append(r.lat, o.lat...)
	if r.Err == "" {
		r.Err = o.Err
	}
	r.summarize()
}

// swapResult is the handover workload: the capture leg swapped to a new
// file again and again while the device streams at full speed to 8 block
// clients and the capture.
type swapResult struct {
	Tput      tputResult
	Swaps     int
	Failed    int
	Errors    []string
	Lost      uint64 // capture bytes missing from the concatenated files
	Verified  uint64 // capture bytes verified in order
	CaptureOK bool
	P50, Max  time.Duration // as seen by the API client
	EngineMax time.Duration // the engine's own report
	Handed    uint64
	Drained   uint64
}

func runSwaps(ctx context.Context, e *env, p *peer, n int, dur, every time.Duration) swapResult {
	var sr swapResult
	var files []string
	files = append(files, e.scratch("cap"))
	var durs []time.Duration
	during := func(ctx context.Context, t *target) {
		hc := unixHTTP(t.socket)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			next := e.scratch("cap")
			spec, _ := json.Marshal(map[string]any{"spec": map[string]any{
				"type": "file", "path": next, "format": "raw", "on_overflow": "block", "queue": "1MiB"}})
			start := time.Now()
			rep, err := swapCall(hc, "bench", "cap", spec)
			el := time.Since(start)
			sr.Swaps++
			if err != nil {
				sr.Failed++
				if len(sr.Errors) < 3 {
					sr.Errors = append(sr.Errors, err.Error())
				}
				continue
			}
			files = append(files, next)
			durs = append(durs, el)
			sr.EngineMax = max(sr.EngineMax, rep.Elapsed)
			sr.Handed += rep.Handed
			sr.Drained += rep.Drained
		}
	}
	after := func(t *target, written uint64) error {
		// The last capture leg writes what it was given; wait for it.
		deadline := time.Now().Add(drainLimit)
		for {
			var v verifier
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil && !os.IsNotExist(err) {
					return err
				}
				v.feed(b)
			}
			sr.Verified = v.off
			if v.bad != nil {
				sr.Lost = written - min(written, v.off)
				return fmt.Errorf("capture: reordered or lost across %d files: %v", len(files), v.bad)
			}
			if v.off >= written {
				sr.CaptureOK = v.off == written && v.extra == 0
				if !sr.CaptureOK {
					return fmt.Errorf("capture: %d bytes more than written", v.off+v.extra-written)
				}
				return nil
			}
			if time.Now().After(deadline) {
				sr.Lost = written - v.off
				return fmt.Errorf("capture: %d of %d bytes in %d files after %v", v.off, written, len(files), drainLimit)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	sr.Tput = runThroughput(ctx, e, p, runOpts{clients: n, capture: files[0]}, dur, during, after)
	sort.Slice(durs, func(i, j int) bool { return durs[i] < durs[j] })
	if len(durs) > 0 {
		sr.P50 = durs[len(durs)/2]
		sr.Max = durs[len(durs)-1]
	}
	return sr
}

func unixHTTP(socket string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
}

// swapCall is POST /v1/tees/{tee}/backends/{name}/swap. The bench speaks
// HTTP itself: chartee's Go client is internal to cmd/chartee.
func swapCall(hc *http.Client, teeName, backend string, body []byte) (tee.SwapReport, error) {
	var rep tee.SwapReport
	resp, err := hc.Post("http://chartee/v1/tees/"+teeName+"/backends/"+backend+"/swap", "application/json", bytes.NewReader(body))
	if err != nil {
		return rep, fmt.Errorf("bench: swap: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("bench: swap: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("bench: swap: response %q: %w", b, err)
	}
	return rep, nil
}

// idleResult is memory and goroutines with many connected, idle clients.
type idleResult struct {
	Peer        string
	N           int
	RSS0KB      int // before any client
	RSSKB       int // with N clients
	HWMKB       int
	Goroutines0 int
	Goroutines  int
	Threads     int
	Err         string
}

func runIdle(ctx context.Context, e *env, p *peer, n int) idleResult {
	r := idleResult{Peer: p.label, N: n, Goroutines0: -1, Goroutines: -1}
	fail := func(err error) idleResult {
		r.Err = err.Error()
		return r
	}
	t, err := p.start(ctx, e, runOpts{clients: n, metrics: true})
	if err != nil {
		return fail(err)
	}
	defer t.close()
	time.Sleep(300 * time.Millisecond)
	st0, err := readProcStat(t.proc.pid())
	if err != nil {
		return fail(err)
	}
	r.RSS0KB = st0.rssKB
	r.Goroutines0 = goroutines(t.metrics)
	t0 := time.Now()
	s, err := newSession(ctx, t, n)
	if err != nil {
		return fail(err)
	}
	defer s.close()
	t1 := time.Now()
	// Every client receiving the sync byte proves it is attached.
	if err := s.sync(); err != nil {
		return fail(err)
	}
	logf("  %d clients connected in %v, all attached %v later", n, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	time.Sleep(time.Second)
	st, err := readProcStat(t.proc.pid())
	if err != nil {
		return fail(err)
	}
	r.RSSKB, r.HWMKB, r.Threads = st.rssKB, st.hwmKB, st.thread
	r.Goroutines = goroutines(t.metrics)
	return r
}

// goroutines reads go_goroutines from a Prometheus endpoint; -1 when there
// is none.
func goroutines(addr string) int {
	if addr == "" {
		return -1
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}
