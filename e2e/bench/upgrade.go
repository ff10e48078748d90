package main

// The upgrade workload: chartee hands itself over to a new binary again
// and again (`POST /v1/upgrade`, what `chartee ctl upgrade` does),
// alternating two builds with different version strings, while one
// client streams and 1,000 idle clients stay attached. The output pause
// of an upgrade is what the streaming client sees: the gap from the last
// byte before the cut to the first byte after it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	upgradeChunk  = 128                    // bytes the streaming device writes per tick
	upgradeTick   = time.Millisecond       // its pace: a busy console, ~100 KB/s
	upgradeSettle = 300 * time.Millisecond // between upgrades
	upgradeWait   = 60 * time.Second       // one upgrade call, at most
)

// upgradeReport mirrors the fields of chartee's api.UpgradeReport the
// bench reads (chartee's Go types are internal to cmd/chartee).
type upgradeReport struct {
	NewVersion string        `json:"new_version"`
	NewPID     int           `json:"new_pid"`
	Files      int           `json:"files"`
	Prepare    time.Duration `json:"prepare_ns"`
	Cut        time.Time     `json:"cut"`
	Pause      time.Duration `json:"pause_ns"`
	Steps      []struct {
		Name string        `json:"name"`
		At   time.Duration `json:"at_ns"`
	} `json:"steps"`
}

// upgradeResult is the upgrade workload's outcome.
type upgradeResult struct {
	Upgrades, Failed int
	Idle             int
	Errors           []string
	Pauses           []time.Duration // as the streaming client saw them
	Reported         []time.Duration // chartee's own pause (cut to running)
	Prepares         []time.Duration // the new binary's start, before the cut
	Steps            map[string][]time.Duration
	StepOrder        []string
	Files            int
	StreamBytes      uint64
	StreamExact      bool
	StreamErr        string
	IdleAlive        int // idle clients still attached (and fed) at the end
	Versions         [2]string
	LoadBefore       string
	LoadAfter        string
	Err              string
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)]
}

// stream is the streaming client: it verifies every byte and notes when
// each read arrived.
type streamClient struct {
	c       net.Conn
	mu      sync.Mutex
	v       verifier
	arrived []time.Time
	err     error
	done    chan struct{}
}

func (s *streamClient) read() {
	defer close(s.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := s.c.Read(buf)
		now := time.Now()
		s.mu.Lock()
		if n > 0 {
			s.v.feed(buf[:n])
			s.arrived = append(s.arrived, now)
		}
		if err != nil {
			s.err = err
		}
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// gap is the stream's silence across the upgrade's pause [cut, end]: the
// longest wait between two reads that spans part of it, from the last
// byte before the cut (which may arrive just after it) to the first one
// after the new process took over; and whether a byte has arrived after
// end yet. chartee and the bench read the same clock; stalls before the
// cut (the new binary starting) are not counted.
func (s *streamClient) gap(cut, end time.Time) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arrived
	i := sort.Search(len(a), func(i int) bool { return a[i].After(cut) })
	if i == 0 {
		return 0, false
	}
	var longest time.Duration
	for ; i < len(a); i++ {
		longest = max(longest, a[i].Sub(a[i-1]))
		if a[i].After(end) {
			return longest, true
		}
	}
	return longest, false
}

// buildVersioned builds chartee from the tree with its version string set.
func buildVersioned(root, out, ver string) error {
	cmd := exec.Command("go", "build", "-ldflags", "-X chartee/cmd/chartee/internal/cli.Version="+ver, "-o", out, "./cmd/chartee")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bench: go build %s: %v: %s", ver, err, strings.TrimSpace(string(b)))
	}
	return nil
}

// unixDevice listens where chartee's unix-connect frontend dials, as QEMU
// does, and returns the accepted connection.
type unixDevice struct {
	ln   *net.UnixListener
	path string
}

func listenDevice(path string) (*unixDevice, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return &unixDevice{ln: ln.(*net.UnixListener), path: path}, nil
}

func (d *unixDevice) accept(p *proc) (net.Conn, error) {
	d.ln.SetDeadline(time.Now().Add(15 * time.Second))
	c, err := d.ln.Accept()
	d.ln.Close()
	if err != nil {
		return nil, fmt.Errorf("bench: chartee never connected to %s: %v: %s", d.path, err, p.logTail())
	}
	return c, nil
}

// runUpgrades runs n upgrades of chartee with idle idle clients and one
// streaming client; bins are the two builds, versions their versions.
func runUpgrades(ctx context.Context, e *env, bins, versions [2]string, n, idle int) (r upgradeResult) {
	r = upgradeResult{Idle: idle, Versions: versions, Steps: map[string][]time.Duration{}, LoadBefore: loadavg()}
	defer func() { r.LoadAfter = loadavg() }()
	fail := func(err error) upgradeResult {
		r.Err = err.Error()
		return r
	}
	streamDev, err := listenDevice(e.scratch("stream.sock"))
	if err != nil {
		return fail(err)
	}
	defer streamDev.ln.Close()
	idleDev, err := listenDevice(e.scratch("idle.sock"))
	if err != nil {
		return fail(err)
	}
	defer idleDev.ln.Close()
	sport, err1 := freePort()
	iport, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return fail(err)
	}
	socket := e.scratch("chartee.sock")
	cfg := fmt.Sprintf(`control: {socket: %q}
log: {level: warn}
tees:
  - name: stream
    frontend: {type: unix-connect, path: %q}
    backends:
      - {name: clients, type: tcp-listen, listen: "127.0.0.1:%d", on_overflow: block, queue: 1MiB}
  - name: idle
    frontend: {type: unix-connect, path: %q}
    backends:
      - {name: clients, type: tcp-listen, listen: "127.0.0.1:%d", max_clients: %d}
`, socket, streamDev.path, sport, idleDev.path, iport, idle)
	cfgPath := e.scratch("upgrade.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fail(fmt.Errorf("bench: %w", err))
	}
	p, err := startProc("chartee", strings.TrimSuffix(cfgPath, ".yaml")+".log", bins[0], "run", "-c", cfgPath)
	if err != nil {
		return fail(err)
	}
	// Upgraded daemons are the first one's descendants in its process
	// group, which outlives it: stop the group at the end.
	stopGroup := registerGroup(p.pid())
	defer stopGroup()
	defer p.stop()
	sdev, err := streamDev.accept(p)
	if err != nil {
		return fail(err)
	}
	defer sdev.Close()
	idev, err := idleDev.accept(p)
	if err != nil {
		return fail(err)
	}
	defer idev.Close()
	for _, port := range []int{sport, iport} {
		if err := waitListening(ctx, p, port, 15*time.Second); err != nil {
			return fail(err)
		}
	}

	idles, err := dialIdle(ctx, iport, idle)
	if err != nil {
		return fail(err)
	}
	defer idles.close()
	if err := idles.await(idev, time.Now().Add(syncTimeout)); err != nil {
		return fail(err)
	}
	sc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", sport))
	if err != nil {
		return fail(fmt.Errorf("bench: %w", err))
	}
	st := &streamClient{c: sc, done: make(chan struct{})}
	go st.read()
	defer func() { sc.Close(); <-st.done }()
	// The device streams at a console's pace until the end; sync bytes
	// first, until the client has one.
	stop := streamDevice(sdev, st)
	defer stop()

	hc := unixHTTP(socket)
	hc.Timeout = upgradeWait
	defer hc.CloseIdleConnections()
	for i := range n {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		time.Sleep(upgradeSettle)
		next := (i + 1) % 2
		rep, err := upgradeCall(hc, bins[next])
		r.Upgrades++
		if err == nil && rep.Cut.IsZero() {
			err = fmt.Errorf("bench: upgrade %d: the report has no cut time", i)
		}
		if err == nil && !strings.HasPrefix(rep.NewVersion, versions[next]) {
			err = fmt.Errorf("bench: upgrade %d: new version %q, want %s", i, rep.NewVersion, versions[next])
		}
		if err != nil {
			r.Failed++
			if len(r.Errors) < 3 {
				r.Errors = append(r.Errors, err.Error())
			}
			// A failed upgrade rolled back: the next one retries the
			// same build.
			continue
		}
		hc.CloseIdleConnections() // the old process is gone
		deadline := time.Now().Add(15 * time.Second)
		var gap time.Duration
		for {
			g, over := st.gap(rep.Cut, rep.Cut.Add(rep.Pause))
			if over {
				gap = g
				break
			}
			if time.Now().After(deadline) {
				return fail(fmt.Errorf("bench: upgrade %d: no output on the stream 15s after it (%s)", i, st.errText()))
			}
			time.Sleep(5 * time.Millisecond)
		}
		r.Pauses = append(r.Pauses, gap)
		r.Reported = append(r.Reported, rep.Pause)
		r.Prepares = append(r.Prepares, rep.Prepare)
		r.Files = rep.Files
		for _, s := range rep.Steps {
			if _, ok := r.Steps[s.Name]; !ok {
				r.StepOrder = append(r.StepOrder, s.Name)
			}
			r.Steps[s.Name] = append(r.Steps[s.Name], s.At)
		}
		if i%10 == 9 {
			logf("  %d upgrades, client-side pause p50 %v", i+1, pct(r.Pauses, 50).Round(10*time.Microsecond))
		}
	}
	// Every byte written arrives, in order; every idle client is still
	// there and still fed.
	total := stop()
	deadline := time.Now().Add(drainLimit)
	for {
		st.mu.Lock()
		got, bad := st.v.off, st.v.bad
		st.mu.Unlock()
		if got >= total || bad != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.mu.Lock()
	r.StreamBytes = st.v.off
	r.StreamExact = st.v.bad == nil && st.v.off == total && st.v.extra == 0
	switch {
	case st.v.bad != nil:
		r.StreamErr = st.v.bad.Error()
	case st.v.off != total:
		r.StreamErr = fmt.Sprintf("got %d of %d bytes (%v)", st.v.off, total, st.err)
	}
	st.mu.Unlock()
	r.IdleAlive = idles.alive(idev, time.Now().Add(syncTimeout))
	return r
}

func (s *streamClient) errText() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("client error: %v, %d bytes verified", s.err, s.v.off)
}

// streamDevice writes sync bytes until the client has one, then the
// pattern at upgradeTick. stop ends it and returns how many pattern bytes
// were written.
func streamDevice(dev net.Conn, st *streamClient) (stop func() uint64) {
	var written atomic.Uint64
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			st.mu.Lock()
			synced := st.v.synced
			st.mu.Unlock()
			if synced {
				break
			}
			dev.SetWriteDeadline(time.Now().Add(stallLimit))
			if _, err := dev.Write([]byte{syncByte}); err != nil {
				return
			}
			select {
			case <-quit:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
		tick := time.NewTicker(upgradeTick)
		defer tick.Stop()
		var off uint64
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			dev.SetWriteDeadline(time.Now().Add(stallLimit))
			n, err := dev.Write(patternAt(off, upgradeChunk))
			off += uint64(n)
			written.Store(off)
			if err != nil {
				return
			}
		}
	}()
	var once sync.Once
	return func() uint64 {
		once.Do(func() { close(quit); <-done })
		return written.Load()
	}
}

// idleClients are connections that only wait for the occasional marker
// byte.
type idleClients struct {
	conns []net.Conn
	got   []atomic.Int64 // marker bytes received
	dead  atomic.Int64
	wg    sync.WaitGroup
}

func dialIdle(ctx context.Context, port, n int) (*idleClients, error) {
	cs, err := dialAll(ctx, &target{dial: tcpDialer(port)}, n)
	if err != nil {
		return nil, err
	}
	ic := &idleClients{got: make([]atomic.Int64, n)}
	for i, c := range cs {
		nc := c.(net.Conn)
		ic.conns = append(ic.conns, nc)
		ic.wg.Add(1)
		go func() {
			defer ic.wg.Done()
			buf := make([]byte, 64)
			for {
				k, err := nc.Read(buf)
				ic.got[i].Add(int64(k))
				if err != nil {
					ic.dead.Add(1)
					return
				}
			}
		}()
	}
	return ic, nil
}

// await writes marker bytes on the idle tee's device until every idle
// client has one: each is attached (chartee accepts in the background).
func (ic *idleClients) await(dev net.Conn, deadline time.Time) error {
	for {
		n := 0
		for i := range ic.got {
			if ic.got[i].Load() > 0 {
				n++
			}
		}
		if n == len(ic.conns) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: only %d of %d idle clients got a byte from the idle console", n, len(ic.conns))
		}
		dev.SetWriteDeadline(deadline)
		if _, err := dev.Write([]byte{syncByte}); err != nil {
			return fmt.Errorf("bench: idle console: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive sends one more marker and counts the clients that get it in time.
func (ic *idleClients) alive(dev net.Conn, deadline time.Time) int {
	before := make([]int64, len(ic.got))
	for i := range ic.got {
		before[i] = ic.got[i].Load()
	}
	dev.SetWriteDeadline(deadline)
	if _, err := dev.Write([]byte{syncByte}); err != nil {
		return 0
	}
	for {
		n := 0
		for i := range ic.got {
			if ic.got[i].Load() > before[i] {
				n++
			}
		}
		if n == len(ic.conns) || time.Now().After(deadline) {
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (ic *idleClients) close() {
	for _, c := range ic.conns {
		c.Close()
	}
	ic.wg.Wait()
}

// upgradeCall is POST /v1/upgrade.
func upgradeCall(hc *http.Client, binary string) (upgradeReport, error) {
	var rep upgradeReport
	body, _ := json.Marshal(map[string]string{"binary": binary})
	resp, err := hc.Post("http://chartee/v1/upgrade", "application/json", bytes.NewReader(body))
	if err != nil {
		return rep, fmt.Errorf("bench: upgrade: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("bench: upgrade: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return rep, fmt.Errorf("bench: upgrade: response %q: %w", b, err)
	}
	return rep, nil
}

// upgradeBuilds builds the two chartee binaries the upgrades alternate
// between, with versions "bench-a" and "bench-b".
func upgradeBuilds(root, dir string) (bins, versions [2]string, err error) {
	versions = [2]string{"bench-a", "bench-b"}
	for i, v := range versions {
		bins[i] = filepath.Join(dir, "chartee-"+v)
		if err := buildVersioned(root, bins[i], v); err != nil {
			return bins, versions, err
		}
	}
	return bins, versions, nil
}

// registerGroup makes stopAll (and the returned function) stop process
// group pgid, which may outlive its leader.
func registerGroup(pgid int) func() {
	groupsMu.Lock()
	groups[pgid] = true
	groupsMu.Unlock()
	return func() {
		groupsMu.Lock()
		delete(groups, pgid)
		groupsMu.Unlock()
		stopGroup(pgid)
	}
}

var (
	groupsMu sync.Mutex
	groups   = map[int]bool{}
)

// stopGroup sends SIGTERM to the group, and SIGKILL if it is still there
// after a grace period.
func stopGroup(pgid int) {
	if syscall.Kill(-pgid, syscall.SIGTERM) != nil {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(-pgid, 0) != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}

func stopGroups() {
	groupsMu.Lock()
	var gs []int
	for g := range groups {
		gs = append(gs, g)
	}
	groupsMu.Unlock()
	for _, g := range gs {
		stopGroup(g)
	}
}

// upgradeTarget is the target for the pause.
const upgradeTarget = 200 * time.Millisecond

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// targetRow is the upgrade line of the targets table.
func (r *upgradeResult) targetRow() string {
	what := fmt.Sprintf("output pause per upgrade p99 < 200 ms (%d upgrades, %d idle clients + 1 streaming)", r.Upgrades, r.Idle)
	if r.Err != "" || len(r.Pauses) == 0 {
		return fmt.Sprintf("| %s | error: %s | **missed** |\n", what, r.Err)
	}
	met := pct(r.Pauses, 99) < upgradeTarget && r.Failed == 0 && r.StreamExact && r.IdleAlive == r.Idle
	v := "met"
	if !met {
		v = "**missed**"
	}
	return fmt.Sprintf("| %s | p50 %s, p99 %s; %d failed; stream exact: %v; %d/%d idle clients attached | %s |\n",
		what, ms(pct(r.Pauses, 50)), ms(pct(r.Pauses, 99)), r.Failed, r.StreamExact, r.IdleAlive, r.Idle, v)
}

// markdown is the upgrade section of the report.
func (r *upgradeResult) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## Process upgrade: output pause\n\n")
	p("chartee runs two tees: `stream`, whose `unix-connect` frontend the bench writes %d bytes every %v (a busy console) to one `block` TCP client, and `idle`, a silent `unix-connect` frontend with %d idle TCP clients. "+
		"The bench upgrades it %d times through `POST /v1/upgrade` (what `chartee ctl upgrade` does), alternating two builds of this tree with different version strings (%s, %s; each upgrade must report the other one), %v apart. "+
		"The **pause** is what the streaming client saw: the longest silence on its stream across the pause chartee reports (from its cut to the new process's word that its tees read on; both read the same clock), i.e. from the last byte before the cut to the first byte after it; it includes the device's %v pace and the machine's scheduling, but not a stall before the cut (while the new binary starts, the old one streams on). "+
		"*chartee's own* is the pause the old process reports, from its cut to the new process's word that its tees read on. "+
		"Every upgrade hands over %d files (listeners, clients, frontends). Load average before / after the workload: %s / %s.\n\n",
		upgradeChunk, upgradeTick, r.Idle, r.Upgrades, r.Versions[0], r.Versions[1], upgradeSettle, upgradeTick, r.Files, r.LoadBefore, r.LoadAfter)
	if r.Err != "" {
		p("**The workload failed**: %s\n\n", r.Err)
	}
	n := len(r.Pauses)
	p("| upgrades | failed | pause p50 | pause p99 | pause max | chartee's own p50 / p99 | new binary started and checked its config (before the cut) p50 / p99 | stream exact | idle clients still attached |\n")
	p("|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
	exact := "yes"
	if !r.StreamExact {
		exact = "**no**: " + r.StreamErr
	}
	p("| %d | %d | %s | %s | %s | %s / %s | %s / %s | %s (%d bytes) | %d/%d |\n\n", r.Upgrades, r.Failed,
		ms(pct(r.Pauses, 50)), ms(pct(r.Pauses, 99)), ms(pct(r.Pauses, 100)), ms(pct(r.Reported, 50)), ms(pct(r.Reported, 99)),
		ms(pct(r.Prepares, 50)), ms(pct(r.Prepares, 99)), exact, r.StreamBytes, r.IdleAlive, r.Idle)
	if n > 0 && n < 100 && n*99/100 == n-1 {
		p("With %d upgrades, p99 is the largest pause.\n\n", n)
	}
	for _, e := range r.Errors {
		p("- upgrade error: %s\n", e)
	}
	if len(r.StepOrder) > 0 {
		p("Where chartee's own pause goes: each step's end, counted from the cut, over all upgrades (old process: frozen, state, ready, committed; new process: received, built, running).\n\n")
		p("| step | p50 | p99 |\n|---|---:|---:|\n")
		for _, s := range r.StepOrder {
			p("| %s | %s | %s |\n", s, ms(pct(r.Steps[s], 50)), ms(pct(r.Steps[s], 99)))
		}
		p("\n")
	}
	return b.String()
}
