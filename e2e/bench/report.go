package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type results struct {
	cfg                   *config
	started, finished     time.Time
	machine               string
	loadBefore, loadAfter string
	tput                  []tputResult
	rtt                   []rttResult
	swap                  *swapResult
	idle                  []idleResult
	upgrade               *upgradeResult
	profile               string
	straces               []string
	buildErr              error
}

func (res *results) find(peer string, n int) *tputResult {
	for i := range res.tput {
		if res.tput[i].Peer == peer && res.tput[i].N == n {
			return &res.tput[i]
		}
	}
	return nil
}

func (res *results) findRTT(peer string) *rttResult {
	for i := range res.rtt {
		if res.rtt[i].Peer == peer {
			return &res.rtt[i]
		}
	}
	return nil
}

func ok(r *tputResult) bool { return r != nil && r.Err == "" && r.AggMBps > 0 }

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

// Notes written by hand between these markers survive a rerun.
const (
	notesBegin = "<!-- BEGIN NOTES (kept when the bench rewrites this file) -->"
	notesEnd   = "<!-- END NOTES -->"
	// browserBegin starts the section e2e/bench/browser writes (its
	// beginMark); kept as it is.
	browserBegin = "<!-- BEGIN BROWSER"
	browserEnd   = "<!-- END BROWSER -->"
)

func (res *results) markdown(plot string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cfg := res.cfg
	p("# Benchmarks\n\n")
	p("Written by `go run ./e2e/bench` (the bench program in [e2e/bench](../e2e/bench)); do not edit the tables by hand, rerun it.\n")
	p("Every system below was measured in the same run on the same machine, interleaved, so the ratios hold even where the absolute numbers move with the machine's load.\n\n")
	p("- Command: `%s`\n", command())
	p("- Machine: %s\n", res.machine)
	p("- Run: %s, %s to %s UTC (%v); each workload streams or types for %v\n", res.started.UTC().Format("2006-01-02"),
		res.started.UTC().Format("15:04:05"), res.finished.UTC().Format("15:04:05"), res.finished.Sub(res.started).Round(time.Second), cfg.duration)
	p("- Load average before / after: %s / %s\n", res.loadBefore, res.loadAfter)
	if res.buildErr != nil {
		p("- **chartee was not measured**: %v\n", res.buildErr)
	}
	p("\n![throughput and round trip](%s)\n\n", plot)

	p("## How it measures\n\n")
	p("- **Device.** The serial port is a pty: the bench owns the master and writes to it; the server under test opens the slave (`/dev/pts/N`) as it would open `/dev/ttyUSB0`. " +
		"*pty read directly* is the device's own limit: the bench reads the slave itself, no server in between. For the QEMU case, chartee's frontend is a `unix-connect` to a socket the bench listens on; *unix socket read directly* is that socket's own limit.\n")
	p("- **Stream.** A deterministic pattern (pseudo-random bytes 0..250 over a prime ~1 MiB period). Every client checks every byte in order and the exact count; sync bytes (0xFF, never in the pattern) are sent first until every client has seen one, so every client must receive the whole measured stream.\n")
	p("- **Throughput** is all clients' bytes divided by the time from the first byte written to the last byte received by the last client. The device is written as fast as the server takes it (a `block` server back-pressures the device) for the workload duration. "+
		"With %d rounds (every system in each round, interleaved), a cell shows the system's fastest round, the one least disturbed by other load; exactness counts every round.\n", cfg.rounds)
	p("- **Peers.** socat 1 client (`TCP-LISTEN:port,bind=127.0.0.1 FILE:/dev/pts/N,raw,echo=0`, its defaults); ser2net 4 (`accepter: tcp,127.0.0.1,port`, `connector: serialdev,/dev/pts/N,115200n81,local`, `max-connections: N`) once with its defaults and once with `chardelay: false`; " +
		"chartee with a `serial` frontend and one `tcp-listen` backend (`max_clients: N`, `input: true`, `on_overflow: block`, `queue: 1MiB`), as built from this tree; *chartee GOMAXPROCS=1* is the same binary and config with the Go runtime held to one thread running Go code (see the notes).\n")
	p("- **Round trip.** One client types one key at a time: client → server → device; the bench echoes it on the device; device → server → client. %s, each round after 20 warm-up keys.\n", fmt.Sprintf("p50/p99 over the keys of all %d rounds", cfg.rounds))
	p("- **CPU** is the server process's user+system time (from /proc/PID/stat) over the run, divided by the MB the device sent. **RSS** is VmRSS from /proc/PID/status, goroutines are chartee's `go_goroutines` metric.\n")
	p("- The bench's device writer and verifying clients run on the same CPUs as the server under test (the *bench CPU* column), for every system alike.\n\n")

	// Targets.
	p("## Targets\n\n| target | measured | |\n|---|---|---|\n")
	verdict := func(met bool) string {
		if met {
			return "met"
		}
		return "**missed**"
	}
	if c, d := res.find("chartee", 1), res.find("pty read directly", 1); ok(c) && ok(d) {
		ratio := c.AggMBps / d.AggMBps
		extra := ""
		if g := res.find("chartee GOMAXPROCS=1", 1); ok(g) {
			extra = fmt.Sprintf(" (GOMAXPROCS=1: %.0f%%)", 100*g.AggMBps/d.AggMBps)
		}
		p("| N=1 throughput ≥ 90%% of the device's own limit | %.1f / %.1f MB/s = %.0f%%%s | %s |\n", c.AggMBps, d.AggMBps, 100*ratio, extra, verdict(ratio >= 0.9))
	} else {
		p("| N=1 throughput ≥ 90%% of the device's own limit | not measured | — |\n")
	}
	if c, s := res.find("chartee", 8), res.find("ser2net", 8); ok(c) && ok(s) {
		ratio := c.AggMBps / s.AggMBps
		extra := ""
		if s2 := res.find("ser2net chardelay:false", 8); ok(s2) {
			extra = fmt.Sprintf(" (%.1f× ser2net chardelay:false)", c.AggMBps/s2.AggMBps)
		}
		if g := res.find("chartee GOMAXPROCS=1", 8); ok(g) {
			extra += fmt.Sprintf(" (GOMAXPROCS=1: %.0f×)", g.AggMBps/s.AggMBps)
		}
		p("| N=8 aggregate ≥ 30× ser2net's | %.1f / %.3f MB/s = %.0f×%s | %s |\n", c.AggMBps, s.AggMBps, ratio, extra, verdict(ratio >= 30))
	} else {
		p("| N=8 aggregate ≥ 30× ser2net's | not measured | — |\n")
	}
	if c, s := res.findRTT("chartee"), res.findRTT("socat"); c != nil && s != nil && c.Err == "" && s.Err == "" {
		extra := ""
		if g := res.findRTT("chartee GOMAXPROCS=1"); g != nil && g.Err == "" {
			extra = fmt.Sprintf(" (GOMAXPROCS=1: %s)", us(g.P50))
		}
		p("| round trip p50 no worse than socat's | %s vs %s%s | %s |\n", us(c.P50), us(s.P50), extra, verdict(c.P50 <= s.P50))
	} else {
		p("| round trip p50 no worse than socat's | not measured | — |\n")
	}
	// Issue 10: a 1:1 relay at least socat's, with a block capture leg
	// attached beside the client.
	if c, s := res.find("chartee + block capture", 1), res.find("socat", 1); ok(c) && ok(s) {
		p("| N=1 throughput ≥ socat's, with a block capture file leg too | %.1f / %.1f MB/s = %.2f× | %s |\n", c.AggMBps, s.AggMBps, c.AggMBps/s.AggMBps, verdict(c.AggMBps >= s.AggMBps))
	}
	if c, s := res.findRTT("chartee + block capture"), res.findRTT("socat"); c != nil && s != nil && c.Err == "" && s.Err == "" {
		p("| round trip p50 ≤ socat's, with a block capture file leg too | %s vs %s = %.2f× | %s |\n", us(c.P50), us(s.P50), float64(c.P50)/float64(s.P50), verdict(c.P50 <= s.P50))
	}
	if c, s := res.find("chartee", 1), res.find("socat", 1); ok(c) && ok(s) {
		p("| N=1 throughput ≥ socat's (client only) | %.1f / %.1f MB/s = %.2f× | %s |\n", c.AggMBps, s.AggMBps, c.AggMBps/s.AggMBps, verdict(c.AggMBps >= s.AggMBps))
	}
	for _, r := range res.idle {
		if r.Peer == "chartee" && r.Err == "" {
			per := float64(r.RSSKB-r.RSS0KB) / float64(r.N)
			v := verdict(per <= 8)
			if r.N < 1000 {
				v = fmt.Sprintf("— (only %d clients in this run)", r.N)
			}
			p("| ≤ 8 KiB RSS per idle TCP client | %.1f KiB (%d clients) | %s |\n", per, r.N, v)
		}
	}
	{
		runs, bad := 0, []string{}
		for _, r := range res.tput {
			if strings.HasPrefix(r.Peer, "chartee") {
				runs++
				if r.Err != "" || r.Exact != r.N {
					bad = append(bad, fmt.Sprintf("%s N=%d", r.Peer, r.N))
				}
			}
		}
		if sw := res.swap; sw != nil {
			runs++
			if sw.Tput.Err != "" || sw.Tput.Exact != sw.Tput.N || !sw.CaptureOK {
				bad = append(bad, "swap run")
			}
		}
		if runs > 0 {
			m := fmt.Sprintf("%d chartee runs, every client and capture byte-exact", runs)
			if len(bad) > 0 {
				m = fmt.Sprintf("%d chartee runs; not exact: %s", runs, strings.Join(bad, ", "))
			}
			p("| 0 bytes lost or reordered for block legs in every run | %s | %s |\n", m, verdict(len(bad) == 0))
		}
	}
	if res.upgrade != nil {
		p("%s", res.upgrade.targetRow())
	}
	for _, r := range res.idle {
		if r.Peer == "chartee" {
			if r.Err != "" {
				p("| %d idle clients in ≤ 64 MiB RSS | error: %s | **missed** |\n", r.N, r.Err)
			} else {
				v := verdict(r.RSSKB <= 64*1024)
				if r.N < 1000 {
					v = fmt.Sprintf("— (only %d clients in this run)", r.N)
				}
				p("| %d idle clients in ≤ 64 MiB RSS | %.1f MiB | %s |\n", r.N, float64(r.RSSKB)/1024, v)
			}
		}
	}
	p("\n")

	// Throughput table.
	p("## Output throughput\n\nMB/s (10⁶ bytes) summed over N clients; every cell is byte-exact at every client unless it says otherwise.\n\n")
	p("| system |")
	for _, n := range cfg.clients {
		p(" N=%d |", n)
	}
	p("\n|---|")
	for range cfg.clients {
		p("---:|")
	}
	p("\n")
	var notes []string
	for _, id := range cfg.peers {
		pe := peerByID(id)
		p("| %s |", pe.label)
		for _, n := range cfg.clients {
			r := res.find(pe.label, n)
			switch {
			case r == nil:
				p(" — |")
			case r.Err != "" && r.AggMBps == 0:
				notes = append(notes, fmt.Sprintf("%s N=%d: %s", r.Peer, r.N, r.Err))
				p(" error [%d] |", len(notes))
			default:
				cell := fmt.Sprintf("%s", fmtValue(r.AggMBps))
				if r.Exact != r.N || r.Err != "" {
					msg := r.Err
					if len(r.Problems) > 0 {
						msg = strings.TrimSpace(msg + " " + strings.Join(r.Problems, "; "))
					}
					notes = append(notes, fmt.Sprintf("%s N=%d: %s", r.Peer, r.N, msg))
					cell += fmt.Sprintf(" (%d/%d exact) [%d]", r.Exact, r.N, len(notes))
				}
				p(" %s |", cell)
			}
		}
		p("\n")
	}
	p("\n")
	for i, n := range notes {
		p("[%d] %s\n\n", i+1, n)
	}
	p("Ratios in this run:\n\n| | ")
	for _, n := range cfg.clients {
		p(" N=%d |", n)
	}
	p("\n|---|")
	for range cfg.clients {
		p("---:|")
	}
	p("\n")
	ratioRow := func(name, num string, den string, denN int) {
		p("| %s |", name)
		for _, n := range cfg.clients {
			dn := n
			if denN > 0 {
				dn = denN
			}
			a, d := res.find(num, n), res.find(den, dn)
			if ok(a) && ok(d) {
				p(" %.2f |", a.AggMBps/d.AggMBps)
			} else {
				p(" — |")
			}
		}
		p("\n")
	}
	ratioRow("chartee ÷ pty read directly (N=1)", "chartee", "pty read directly", 1)
	ratioRow("chartee ÷ ser2net", "chartee", "ser2net", 0)
	ratioRow("chartee ÷ ser2net chardelay:false", "chartee", "ser2net chardelay:false", 0)
	ratioRow("chartee over SSH ÷ chartee (raw TCP legs)", "chartee over SSH", "chartee", 0)
	ratioRow("chartee (unix) ÷ unix socket read directly (N=1)", "chartee (unix frontend)", "unix socket read directly", 1)
	p("\nPer run: bytes the device sent, time to the last byte at the last client, slowest single client, server CPU.\n\n")
	p("| system | N | MB sent | time | aggregate MB/s | slowest client MB/s | server CPU s | CPU s per MB sent | context switches per MB sent | RSS MiB | bench CPU s | machine busy (steal) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range res.tput {
		if r.Err != "" && r.AggMBps == 0 {
			continue
		}
		cpu, per, sw, rss := "—", "—", "—", "—"
		if r.CPU > 0 || r.RSSKB > 0 {
			cpu = fmt.Sprintf("%.2f", r.CPU.Seconds())
			per = fmt.Sprintf("%.4f", r.CPUPerMB())
			sw = fmt.Sprintf("%.0f", float64(r.CtxSw)/mb(r.Written))
			rss = fmt.Sprintf("%.1f", float64(r.RSSKB)/1024)
		}
		p("| %s | %d | %.1f | %.2f s | %s | %s | %s | %s | %s | %s | %.2f | %.0f%% (%.0f%%) |\n", r.Peer, r.N, mb(r.Written), r.Elapsed.Seconds(),
			fmtValue(r.AggMBps), fmtValue(r.MinMBps), cpu, per, sw, rss, r.BenchCPU.Seconds(), 100*r.Busy, 100*r.Steal)
	}
	p("\nCPU s per MB counts the device's bytes once, whatever N is; the server's work grows with N. *bench CPU* is the bench process itself (device writer and verifying clients) over the same run; *machine busy* is the non-idle share of all CPUs over the run (every process on the machine, including other work), *steal* the share the hypervisor took.\n\n")

	// Round trip.
	p("## Keystroke round trip\n\n| system | p50 | p99 | max | keys |\n|---|---:|---:|---:|---:|\n")
	for _, r := range res.rtt {
		if r.Err != "" {
			p("| %s | error: %s | | | |\n", r.Peer, r.Err)
			continue
		}
		p("| %s | %s | %s | %s | %d |\n", r.Peer, us(r.P50), us(r.P99), us(r.Max), r.Samples)
	}
	p("\n")

	if sw := res.swap; sw != nil {
		p("## Handover swaps under full load\n\n")
		p("chartee streams to 8 `block` TCP clients and a `block` capture file backend `cap`; every %v the bench swaps `cap` to a new file (handover mode, through the control API) while the device is written as fast as chartee takes it. "+
			"Afterwards the capture files, concatenated in swap order, must equal the stream exactly.\n\n", cfg.every)
		p("| swaps | failed | capture bytes verified | lost or reordered | clients exact | throughput during swaps | swap call p50 / max | engine swap max | handed over / drained |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		lost := fmt.Sprintf("%d bytes", sw.Lost)
		if !sw.CaptureOK {
			lost += " (**not exact**)"
		}
		p("| %d | %d | %d | %s | %d/%d | %s MB/s | %s / %s | %s | %d / %d bytes |\n\n", sw.Swaps, sw.Failed, sw.Verified, lost,
			sw.Tput.Exact, sw.Tput.N, fmtValue(sw.Tput.AggMBps), us(sw.P50), us(sw.Max), us(sw.EngineMax), sw.Handed, sw.Drained)
		for _, e := range sw.Errors {
			p("- swap error: %s\n", e)
		}
		if sw.Tput.Err != "" {
			p("- run error: %s\n", sw.Tput.Err)
		}
		for _, pr := range sw.Tput.Problems {
			p("- %s\n", pr)
		}
		p("\n")
	}

	if res.upgrade != nil {
		p("%s", res.upgrade.markdown())
	}

	if len(res.idle) > 0 {
		p("## Idle clients\n\n| system | clients | RSS before | RSS with clients | per client | peak RSS | goroutines before → with | threads |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, r := range res.idle {
			if r.Err != "" {
				p("| %s | %d | error: %s | | | | | |\n", r.Peer, r.N, r.Err)
				continue
			}
			g := "—"
			if r.Goroutines >= 0 {
				g = fmt.Sprintf("%d → %d", r.Goroutines0, r.Goroutines)
			}
			p("| %s | %d | %.1f MiB | %.1f MiB | %.1f KiB | %.1f MiB | %s | %d |\n", r.Peer, r.N, float64(r.RSS0KB)/1024, float64(r.RSSKB)/1024,
				float64(r.RSSKB-r.RSS0KB)/float64(r.N), float64(r.HWMKB)/1024, g, r.Threads)
		}
		p("\nEvery client was proven attached: each one received a sync byte from the device before the measurement.\n\n")
	}
	if res.profile != "" {
		p("## Profile of chartee at N=8\n\n`perf record -g` on the chartee process during an N=8 run; top symbols by self time:\n\n```\n%s\n```\n\n", res.profile)
	}

	if len(res.straces) > 0 {
		p("## System calls per keystroke\n\n`strace -c -f` attached to the server during a round-trip run (strace itself slows every call, so only the counts matter). Every key is one write to the device and one to the client, so the keys inside strace's window are its writes ÷ 2.\n\n")
		for _, s := range res.straces {
			p("```\n%s\n```\n\n", s)
		}
	}
	// Keep hand-written notes from the previous file.
	notesText := "## Notes\n\n(none yet)\n"
	if old, err := os.ReadFile(cfg.outPath()); err == nil {
		s := string(old)
		if i := strings.Index(s, notesBegin); i >= 0 {
			if j := strings.Index(s[i:], notesEnd); j >= 0 {
				notesText = strings.TrimSpace(s[i+len(notesBegin):i+j]) + "\n"
			}
		}
	}
	p("%s\n%s\n%s\n", notesBegin, notesText, notesEnd)
	// The browser console's section belongs to go run ./e2e/bench/browser.
	if old, err := os.ReadFile(cfg.outPath()); err == nil {
		s := string(old)
		if i := strings.Index(s, browserBegin); i >= 0 {
			if j := strings.Index(s[i:], browserEnd); j >= 0 {
				p("\n%s\n", s[i:i+j+len(browserEnd)])
			}
		}
	}
	return b.String()
}

func (c *config) outPath() string { return c.outAbs }

// command is how the bench was invoked, for the report.
func command() string {
	return strings.Join(append([]string{"go run ./e2e/bench"}, os.Args[1:]...), " ")
}

// profileChartee records where chartee spends its CPU at N=8 with perf.
func profileChartee(ctx context.Context, e *env, dur time.Duration) string {
	if _, err := exec.LookPath("perf"); err != nil {
		return "perf not installed"
	}
	data := filepath.Join(e.dir, "perf.data")
	during := func(ctx context.Context, t *target) {
		cmd := exec.CommandContext(ctx, "perf", "record", "-g", "-q", "-o", data, "-p", fmt.Sprint(t.proc.pid()),
			"--", "sleep", fmt.Sprint(math.Max(0.5, dur.Seconds()-0.5)))
		// perf must stop with SIGINT to finish its file; a kill leaves
		// it unreadable.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 5 * time.Second
		if out, err := cmd.CombinedOutput(); err != nil {
			logf("perf record: %v: %s", err, out)
		}
	}
	r := runThroughput(ctx, e, peerByID("chartee"), runOpts{clients: 8}, dur, during, nil)
	report := func(max int, args ...string) string {
		out, err := exec.Command("perf", append([]string{"report", "-i", data, "--stdio", "--no-children", "-g", "none"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Sprintf("perf report: %v: %s", err, strings.TrimSpace(string(out)))
		}
		var lines []string
		for _, l := range strings.Split(string(out), "\n") {
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				lines = append(lines, strings.TrimRight(l, " -"))
			}
			if len(lines) >= max {
				break
			}
		}
		return strings.Join(lines, "\n")
	}
	return fmt.Sprintf("(run: %s MB/s aggregate)\nby object:\n%s\n\ntop symbols:\n%s", fmtValue(r.AggMBps),
		report(6, "--sort", "dso"), report(20, "--sort", "dso,symbol", "--percent-limit", "1"))
}

// straceRTT counts the server's system calls during a round-trip run.
func straceRTT(ctx context.Context, e *env, p *peer, dur time.Duration) string {
	if _, err := exec.LookPath("strace"); err != nil {
		return "strace not installed"
	}
	var out string
	during := func(ctx context.Context, t *target) {
		if t.proc == nil {
			return
		}
		time.Sleep(300 * time.Millisecond)
		cmd := exec.CommandContext(ctx, "strace", "-c", "-f", "-p", fmt.Sprint(t.proc.pid()))
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = 5 * time.Second
		b, _ := cmd.CombinedOutput()
		var lines []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "strace:") || strings.TrimSpace(l) == "" {
				continue
			}
			lines = append(lines, l)
		}
		out = strings.Join(lines, "\n")
	}
	r := runRTT(ctx, e, p, dur, during)
	return fmt.Sprintf("%s (whole run: p50 %s with strace attached part of the time)\n%s", p.label, us(r.P50), out)
}
