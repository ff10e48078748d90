// Command browser measures the browser console (package web) in a real
// headless Chromium, against baselines taken in the same run, and writes
// its section of docs/BENCHMARKS.md (between the BROWSER markers; the
// rest of the file is left as it is):
//
//	go run ./e2e/bench/browser                 # about a minute
//	go run ./e2e/bench/browser -out /tmp/b.md  # elsewhere
//
// The console is a pty (chartee's pty frontend; the bench holds the other
// end). Three measurements:
//
//   - rendered bytes/s: MiB of text written to the device, timed until
//     xterm.js has parsed the last byte (its write callback), with the
//     page's flow control on and the viewer legs on_overflow: block so
//     nothing is dropped; baseline: the same bytes read by a raw TCP leg
//     of the same tee in the same run;
//   - keystroke round trip browser → device → browser: the page types a
//     key (term.input, the path a key press takes), the device echoes it,
//     timed until xterm.js has parsed the echo; baseline: the same echo
//     through a raw TCP leg;
//   - daemon CPU per viewer: chartee's CPU time while the device writes
//     ~256 KB/s for a fixed time, with 0, 1 and 4 browser viewers.
package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"
)

const (
	beginMark = "<!-- BEGIN BROWSER (go run ./e2e/bench/browser rewrites this section) -->"
	endMark   = "<!-- END BROWSER -->"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type opts struct {
	out      string
	mib      int
	keys     int
	rounds   int
	cpuFor   time.Duration
	chromium string
}

func run() error {
	var o opts
	flag.StringVar(&o.out, "out", "docs/BENCHMARKS.md", "report whose BROWSER section is rewritten (relative to the module root)")
	flag.IntVar(&o.mib, "mib", 32, "MiB written for the rendered-throughput measurement")
	flag.IntVar(&o.keys, "keys", 300, "keys for the round-trip measurement")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of the throughput measurements (the report gives the median and the range)")
	flag.DurationVar(&o.cpuFor, "cpu-time", 5*time.Second, "how long each CPU-per-viewer measurement streams")
	flag.StringVar(&o.chromium, "chromium", "/usr/bin/chromium", "Chromium binary")
	flag.Parse()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "chartee-browser-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d, err := startDaemon(root, dir)
	if err != nil {
		return err
	}
	defer d.stop()
	b, err := newBrowser(o.chromium, dir)
	if err != nil {
		return err
	}
	defer b.close()
	r := &report{started: time.Now(), load0: loadavg()}
	if err := measure(d, b, o, r); err != nil {
		return err
	}
	r.load1 = loadavg()
	out := o.out
	if !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	return writeSection(out, r.markdown(o))
}

func measure(d *daemon, b *browser, o opts, r *report) error {
	page, err := b.page(d.url, "bench")
	if err != nil {
		return err
	}
	// Interleaved rounds, so that the three see the same load.
	for round := 1; round <= o.rounds; round++ {
		logf("round %d: rendered throughput, %d MiB through the browser ...", round, o.mib)
		mbps, lost, err := throughput(d, page, o.mib)
		if err != nil {
			return err
		}
		r.page, r.pageLost = append(r.page, mbps), r.pageLost+lost
		logf("  %.1f MB/s (lost %d); baseline: a raw TCP leg ...", mbps, lost)
		if mbps, err = rawThroughput(d, o.mib); err != nil {
			return err
		}
		r.raw = append(r.raw, mbps)
		logf("  %.1f MB/s; ceiling: xterm.js alone in the page ...", mbps)
		if mbps, err = xtermAlone(page, o.mib); err != nil {
			return err
		}
		r.alone = append(r.alone, mbps)
		logf("  %.1f MB/s", mbps)
	}
	logf("keystroke round trip, %d keys ...", o.keys)
	if r.pageRTT, err = pageRTT(d, page, o.keys); err != nil {
		return err
	}
	logf("  p50 %v p99 %v", pct(r.pageRTT, 50), pct(r.pageRTT, 99))
	if r.rawRTT, err = rawRTT(d, o.keys); err != nil {
		return err
	}
	logf("  raw TCP p50 %v p99 %v", pct(r.rawRTT, 50), pct(r.rawRTT, 99))
	page.close()
	for _, n := range []int{0, 1, 4} {
		logf("daemon CPU with %d viewers ...", n)
		cpu, written, err := cpuWith(d, b, n, o.cpuFor)
		if err != nil {
			return err
		}
		r.cpu = append(r.cpu, cpuResult{viewers: n, cpu: cpu, bytes: written})
		logf("  %v CPU in %v, %d bytes written", cpu, o.cpuFor, written)
	}
	for _, n := range []int{0, 4, 16} {
		logf("daemon CPU with %d WebSocket viewers without a browser ...", n)
		cpu, written, err := cpuWith(d, nil, n, o.cpuFor)
		if err != nil {
			return err
		}
		r.cpuWS = append(r.cpuWS, cpuResult{viewers: n, cpu: cpu, bytes: written})
		logf("  %v CPU in %v, %d bytes written", cpu, o.cpuFor, written)
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

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
			return "", fmt.Errorf("bench: run inside the chartee module")
		}
		dir = parent
	}
}

// daemon is chartee running one pty console with the web service and a
// raw TCP leg (the baseline).
type daemon struct {
	cmd  *exec.Cmd
	url  string
	raw  string
	dev  *os.File // the console device: the pty's other end
	echo atomic.Bool
	log  string // the daemon's log file
}

func cheapHash(pw string) string {
	salt := []byte("bench-salt-01234")
	sum := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=64,t=1,p=1$%s$%s", argon2.Version,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(sum))
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func startDaemon(root, dir string) (*daemon, error) {
	bin := filepath.Join(dir, "chartee")
	build := exec.Command("go", "build", "-o", bin, "./cmd/chartee")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bench: go build: %v\n%s", err, out)
	}
	webAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rawAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	link := filepath.Join(dir, "console")
	cfg := fmt.Sprintf(`
access:
  users:
    - {name: bench, password: %q}
web:
  listen: %s
  on_overflow: block
  replay: 0
tees:
  - name: console
    frontend: {type: pty, link: %q}
    access: {operate: [bench]}
    backends:
      - {name: raw, type: tcp-listen, listen: %q, input: true, on_overflow: block}
`, cheapHash("bench-pw"), webAddr, link, rawAddr)
	path := filepath.Join(dir, "chartee.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "chartee.log"))
	if err != nil {
		return nil, err
	}
	d := &daemon{url: "http://" + webAddr, raw: rawAddr, log: log.Name()}
	d.cmd = exec.Command(bin, "run", "-c", path)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if f, err := os.OpenFile(link, os.O_RDWR|syscall.O_NOCTTY, 0); err == nil {
			d.dev = f
			break
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("bench: chartee did not make %s", link)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for c, err := net.Dial("tcp", webAddr); ; c, err = net.Dial("tcp", webAddr) {
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("bench: the web service did not come up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	go d.deviceLoop()
	return d, nil
}

// deviceLoop reads what is typed at the device and, while echo is on,
// sends it back (a shell with echo).
func (d *daemon) deviceLoop() {
	buf := make([]byte, 4096)
	for {
		n, err := d.dev.Read(buf)
		if err != nil {
			return
		}
		if d.echo.Load() {
			d.dev.Write(buf[:n])
		}
	}
}

func (d *daemon) setEcho(on bool) { d.echo.Store(on) }

func (d *daemon) stop() {
	if d.cmd.Process != nil {
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { d.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if d.dev != nil {
		d.dev.Close()
	}
}

func (d *daemon) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// text is n bytes of printable lines, like a console streaming a log.
func text(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%08d the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJ\r\n", i)
	}
	return b.Bytes()[:n]
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// webLegs counts the browser legs attached now, from the daemon's log.
func (d *daemon) webLegs() int {
	b, _ := os.ReadFile(d.log)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "backend=web ") {
			if strings.Contains(l, "msg=attach") {
				n++
			} else if strings.Contains(l, "msg=detach") {
				n--
			}
		}
	}
	return n
}
