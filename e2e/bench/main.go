// Command bench measures chartee against the device's own limit, socat and
// ser2net 4, all in one run on one machine so the ratios hold, and writes
// docs/BENCHMARKS.md with a table and a plot.
//
//	go run ./e2e/bench                      # the full run (a few minutes)
//	go run ./e2e/bench -quick -out /tmp/b.md # a smoke run
//
// The "serial port" is a pty: the bench owns the master and every server
// under test opens the slave, exactly as it would open a USB adapter. For
// the QEMU case chartee's frontend is a unix socket the bench listens on.
// Every client verifies the stream byte-exact (see pattern.go). Servers run
// as separate processes on loopback only; every one is stopped at the end,
// also on error or interrupt.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	duration time.Duration
	quick    bool
	check    bool
	out      string
	plot     string
	peers    []string
	clients  []int
	idle     int
	every    time.Duration
	chartee  string
	profile  bool
	outAbs   string
	keep     bool
	rounds   int
	upgrades int
	work     map[string]bool
}

func parseFlags() (*config, error) {
	c := &config{}
	peers := flag.String("peers", "device,socat,ser2net,ser2net-nodelay,chartee,chartee-cap,chartee-gmp1,chartee-ssh,unix,chartee-unix",
		"systems to measure: device (pty read directly), socat, ser2net, ser2net-nodelay, chartee, chartee-cap (chartee with a block raw capture file leg beside the client), chartee-gmp1 (chartee with GOMAXPROCS=1), chartee-ssh (clients are SSH sessions), unix (unix socket read directly), chartee-unix")
	clients := flag.String("clients", "1,8,64,512", "client counts for the throughput workload")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "how long each workload streams or types")
	flag.BoolVar(&c.quick, "quick", false, "smoke run: 1s workloads, clients 1,8,64, 200 idle clients")
	flag.BoolVar(&c.check, "check", false, "fail (exit 1) on a gross regression: chartee N=1 throughput, round trip and idle memory against loose bounds (e2e/bench/check.go); make bench-check")
	flag.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "report to write (relative to the module root)")
	flag.StringVar(&c.plot, "plot", "", "plot image to write (default: benchmarks.png next to -out)")
	flag.IntVar(&c.idle, "idle", 1000, "idle clients for the memory workload")
	flag.DurationVar(&c.every, "swap-every", 200*time.Millisecond, "interval between capture swaps under load")
	flag.StringVar(&c.chartee, "chartee", "", "chartee binary (default: go build ./cmd/chartee into a scratch dir)")
	flag.BoolVar(&c.profile, "profile", true, "also profile chartee: perf at N=8, strace syscall counts during the round trip (needs perf and strace)")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds of the throughput and round-trip workloads; the table keeps each system's fastest throughput round and pools the round-trip keys of all rounds")
	flag.IntVar(&c.upgrades, "upgrades", 50, "upgrades in the upgrade workload (with -idle idle clients and one streaming client)")
	work := flag.String("workloads", "throughput,rtt,swap,idle,upgrade", "workloads to run")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch directory (configs, server logs) and print its path")
	flag.Parse()
	if c.quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["rounds"] {
			c.rounds = 1
		}
		if !set["duration"] {
			c.duration = time.Second
		}
		if !set["clients"] {
			*clients = "1,8,64"
		}
		if !set["idle"] {
			c.idle = 200
		}
		if !set["upgrades"] {
			c.upgrades = 10
		}
	}
	for _, s := range strings.Split(*peers, ",") {
		s = strings.TrimSpace(s)
		if peerByID(s) == nil {
			return nil, fmt.Errorf("bench: -peers: unknown peer %q", s)
		}
		c.peers = append(c.peers, s)
	}
	for _, s := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bench: -clients: %q: want positive integers", s)
		}
		c.clients = append(c.clients, n)
	}
	c.work = map[string]bool{}
	for _, w := range strings.Split(*work, ",") {
		w = strings.TrimSpace(w)
		switch w {
		case "throughput", "rtt", "swap", "idle", "upgrade":
			c.work[w] = true
		default:
			return nil, fmt.Errorf("bench: -workloads: unknown workload %q", w)
		}
	}
	if c.plot == "" {
		c.plot = filepath.Join(filepath.Dir(c.out), "benchmarks.png")
	}
	return c, nil
}

// moduleRoot finds the directory holding chartee's go.mod, so the bench
// works from anywhere inside the repository.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module chartee\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("bench: not inside the chartee module")
		}
		dir = parent
	}
}

func raiseNoFile() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return l.Cur, nil
}

func main() {
	if err := run(); err != nil {
		stopAll()
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run() error {
	cfg, err := parseFlags()
	if err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	out := filepath.Join(root, cfg.out)
	if filepath.IsAbs(cfg.out) {
		out = cfg.out
	}
	plot := filepath.Join(root, cfg.plot)
	if filepath.IsAbs(cfg.plot) {
		plot = cfg.plot
	}
	// Fail now rather than after minutes of measuring.
	for _, d := range []string{filepath.Dir(out), filepath.Dir(plot)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	}
	nofile, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("bench: RLIMIT_NOFILE: %w", err)
	}
	if need := uint64(2*cfg.idle + 256); nofile < need {
		return fmt.Errorf("bench: RLIMIT_NOFILE hard limit %d is below the %d the idle workload needs", nofile, need)
	}
	dir, err := os.MkdirTemp("", "chartee-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		logf("scratch directory: %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() {
		<-ctx.Done()
		stopAll()
	}()
	defer stopAll()

	e := &env{dir: dir}
	if cfg.chartee != "" {
		e.chartee = cfg.chartee
	} else if wants(cfg.peers, "chartee", "chartee-unix", "chartee-ssh") {
		bin := filepath.Join(dir, "chartee")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/chartee")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			e.buildErr = fmt.Errorf("go build ./cmd/chartee: %v: %s", err, strings.TrimSpace(string(out)))
			logf("chartee not measured: %v", e.buildErr)
		} else {
			e.chartee = bin
		}
	}

	res := &results{cfg: cfg, started: time.Now(), machine: machineInfo(), loadBefore: loadavg()}
	peers := make([]*peer, 0, len(cfg.peers))
	for _, id := range cfg.peers {
		peers = append(peers, peerByID(id))
	}
	// Peers interleave inside each client count, so machine noise (other
	// work on the box) spreads over all of them rather than one.
	for round := 1; round <= cfg.rounds; round++ {
		for _, n := range cfg.clients {
			for _, p := range peers {
				if !cfg.work["throughput"] || p.maxN != 0 && n > p.maxN {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("round %d throughput %-26s N=%-4d ...", round, p.label, n)
				r := runThroughput(ctx, e, p, runOpts{clients: n}, cfg.duration, nil, nil)
				logf("  %8.2f MB/s aggregate, %d/%d exact, cpu %v %s", r.AggMBps, r.Exact, n, r.CPU, r.Err)
				for _, pr := range r.Problems {
					logf("    %s", pr)
				}
				if prev := res.find(r.Peer, n); prev != nil {
					prev.merge(r)
				} else {
					res.tput = append(res.tput, r)
				}
			}
		}
		for _, p := range peers {
			if !cfg.work["rtt"] {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			logf("round %d round trip %s ...", round, p.label)
			r := runRTT(ctx, e, p, cfg.duration, nil)
			logf("  p50 %v p99 %v (%d keys) %s", r.P50, r.P99, r.Samples, r.Err)
			if prev := res.findRTT(r.Peer); prev != nil {
				prev.merge(r)
			} else {
				res.rtt = append(res.rtt, r)
			}
		}
	}
	if cfg.work["swap"] && wants(cfg.peers, "chartee") {
		logf("handover swaps under load ...")
		sr := runSwaps(ctx, e, peerByID("chartee"), 8, cfg.duration, cfg.every)
		logf("  %d swaps (%d failed), capture verified %d bytes, lost %d, %.1f MB/s %s %v",
			sr.Swaps, sr.Failed, sr.Verified, sr.Lost, sr.Tput.AggMBps, sr.Tput.Err, sr.Tput.Problems)
		res.swap = &sr
	}
	for _, id := range []string{"chartee", "ser2net"} {
		if !cfg.work["idle"] || !wants(cfg.peers, id) || ctx.Err() != nil {
			continue
		}
		logf("%d idle clients: %s ...", cfg.idle, id)
		r := runIdle(ctx, e, peerByID(id), cfg.idle)
		logf("  rss %d kB -> %d kB, goroutines %d -> %d %s", r.RSS0KB, r.RSSKB, r.Goroutines0, r.Goroutines, r.Err)
		res.idle = append(res.idle, r)
	}
	if cfg.work["upgrade"] && wants(cfg.peers, "chartee") && ctx.Err() == nil {
		logf("%d upgrades with %d idle clients and one streaming client ...", cfg.upgrades, cfg.idle)
		bins, versions, err := upgradeBuilds(root, dir)
		var r upgradeResult
		if err != nil {
			r.Err = err.Error()
		} else {
			r = runUpgrades(ctx, e, bins, versions, cfg.upgrades, cfg.idle)
		}
		logf("  pause p50 %v p99 %v (chartee's own p50 %v), %d failed, stream exact %v, %d/%d idle clients attached %s",
			pct(r.Pauses, 50), pct(r.Pauses, 99), pct(r.Reported, 50), r.Failed, r.StreamExact, r.IdleAlive, r.Idle, r.Err)
		res.upgrade = &r
	}
	if cfg.profile && wants(cfg.peers, "chartee") && e.chartee != "" {
		logf("perf profile of chartee at N=8 ...")
		res.profile = profileChartee(ctx, e, cfg.duration)
		for _, id := range []string{"socat", "chartee", "chartee-gmp1"} {
			if wants(cfg.peers, id) {
				logf("strace of %s during the round trip ...", id)
				res.straces = append(res.straces, straceRTT(ctx, e, peerByID(id), cfg.duration))
			}
		}
	}
	res.finished = time.Now()
	res.loadAfter = loadavg()
	res.buildErr = e.buildErr

	if err := writePlot(plot, res); err != nil {
		return err
	}
	rel, err := filepath.Rel(filepath.Dir(out), plot)
	if err != nil {
		rel = plot
	}
	cfg.outAbs = out
	if err := os.WriteFile(out, []byte(res.markdown(rel)), 0o644); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	logf("wrote %s and %s", out, plot)
	if cfg.check {
		if fails := res.grossRegressions(); len(fails) > 0 {
			return fmt.Errorf("bench: -check: %d gross regression(s):\n  %s", len(fails), strings.Join(fails, "\n  "))
		}
		logf("-check: no gross regression")
	}
	return nil
}

func wants(ids []string, any ...string) bool {
	for _, id := range ids {
		for _, a := range any {
			if id == a {
				return true
			}
		}
	}
	return false
}

func machineInfo() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	var u syscall.Utsname
	kernel := "?"
	if syscall.Uname(&u) == nil {
		b := make([]byte, 0, len(u.Release))
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		kernel = string(b)
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			f := strings.Fields(line)
			if len(f) >= 2 {
				if kb, err := strconv.Atoi(f[1]); err == nil {
					mem = fmt.Sprintf(", %.1f GiB RAM", float64(kb)/(1<<20))
				}
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs%s, Linux %s, %s", model, runtime.NumCPU(), mem, kernel, runtime.Version())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
