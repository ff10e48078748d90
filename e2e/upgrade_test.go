package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"chartee/e2e/internal/harness"
)

// upgradeV2 is the version string of the second build of chartee the
// upgrades alternate with the first (the e2e tests' own build, whose
// version is what Go's build information says).
const upgradeV2 = "e2e-upgrade-2"

// upgradeCount is how many upgrades the VM test makes (issue 16: 20).
const upgradeCount = 20

// upgradeRig is a VM's console served by a daemon that is upgraded in
// place, with every kind of client the upgrade must carry attached from
// the VM's first byte on.
type upgradeRig struct {
	c       *harness.Chartee
	vm      *harness.VM
	metrics string
	v1      string            // the first build's version
	bins    map[string]string // version -> binary
	// installed is the path the daemon runs from (see install).
	installed string
	// typist is the raw client the test types with; ref records what it
	// gets and is the reference every other copy is compared with.
	typist net.Conn
	ref    *harness.Recorder
	// clients are every client's recorder, by name (ref included): none
	// may end.
	clients map[string]*harness.Recorder
	telnets map[string]*harness.Terminal
	// copies are every copy of the stream, by name (clients, and the
	// captures and ring buffers read back).
	copies map[string]func(t *testing.T) []byte
	legs   int // how many legs the tee has throughout
	// frontendOut is the last scrape's frontend byte counter.
	frontendOut float64
	began       time.Time
	// typedLog is an input capture (direction in, raw): what chartee
	// wrote to the frontend, whoever typed it.
	typedLog string
}

// startUpgradeRig boots the VM (paused until everyone is attached), runs
// the first build with the clients attached, and starts the guest's
// counter.
func startUpgradeRig(t *testing.T) *upgradeRig {
	t.Helper()
	// The second build links while the VM boots.
	harness.StartVersionedBinary(t, upgradeV2)
	r := &upgradeRig{
		bins:    map[string]string{},
		clients: map[string]*harness.Recorder{},
		telnets: map[string]*harness.Terminal{},
		copies:  map[string]func(t *testing.T) []byte{},
	}
	dir := t.TempDir()
	r.vm = harness.StartVM(t, dir, true)
	r.c = harness.NewChartee(t, dir)
	// The daemon runs from its own path, where a package upgrade would
	// replace the file; every upgrade installs the build it wants there
	// first.
	r.installed = filepath.Join(dir, "bin", "chartee")
	if err := os.Mkdir(filepath.Dir(r.installed), 0o755); err != nil {
		t.Fatal(err)
	}
	r.install(t, harness.Binary(t))
	r.began = time.Now() // the e2e tests' own build is done (shared with every test)
	r.c.Bin, r.c.Upgradable = r.installed, true
	r.metrics = harness.FreeAddr(t)
	rawUnix := filepath.Join(dir, "raw.sock")
	ptyLink := filepath.Join(dir, "console.pty")
	capture := filepath.Join(dir, "capture.log")
	typedLog := filepath.Join(dir, "typed.log")
	r.typedLog = typedLog
	r.c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
metrics:
  listen: %s
tees:
  - name: vm
    input: shared
    frontend:
      type: unix-connect
      path: %q
      reconnect: {initial: 100ms, max: 1s}
    backends:
      - name: raw
        type: tcp-listen
        listen: 127.0.0.1:0
        input: true
        on_overflow: block
      - name: telnet
        type: tcp-listen
        listen: 127.0.0.1:0
        protocol: telnet
        input: true
      - name: raw-unix
        type: unix-listen
        path: %q
      - name: pty
        type: pty
        link: %q
        input: false
      - name: capture
        type: file
        path: %q
        format: timestamped
        append: false
      - name: ring
        type: ringbuf
        size: 4MiB
      - name: typed
        type: file
        path: %q
        direction: in
        append: false
`, r.c.Socket, r.metrics, r.vm.Socket, rawUnix, ptyLink, capture, typedLog))
	r.c.Start(t)
	r.v1 = r.version(t)
	r.bins[r.v1] = harness.Binary(t)
	waitFor(t, "the frontend to connect to QEMU's console socket", func() bool {
		return r.c.Tee(t, "vm").Frontend.Up
	})
	addr := r.c.Addr(t, "vm", "raw")
	r.typist = r.dial(t, "raw-typist", "tcp", addr)
	r.ref = r.clients["raw-typist"]
	r.dial(t, "raw-2", "tcp", addr)
	r.dial(t, "raw-unix", "unix", rawUnix)
	// Two real telnet programs, in ptys; what each shows after its own
	// greeting is what the server sent.
	telnetAddr := r.c.Addr(t, "vm", "telnet")
	for _, name := range []string{"telnet-alice", "telnet-bob"} {
		term, at := harness.Telnet(t, name, telnetAddr)
		r.telnets[name] = term
		r.clients[name] = term.Screen
		r.copies[name] = func(*testing.T) []byte { return term.Screen.Bytes()[at:] }
	}
	// A reader on the pty leg's link, as a program on it would be.
	pty := harness.Record(t, "pty", harness.OpenTTY(t, ptyLink))
	r.clients["pty"] = pty
	r.copies["pty"] = func(*testing.T) []byte { return pty.Bytes() }
	// The capture, read back without its timestamps; their times must
	// never go back, across every upgrade.
	r.copies["capture"] = func(t *testing.T) []byte {
		b, err := os.ReadFile(capture)
		if err != nil {
			t.Fatal(err)
		}
		data, times, err := harness.Unstamp(b)
		if err != nil {
			t.Fatalf("the capture: %v", err)
		}
		for i := 1; i < len(times); i++ {
			if times[i].Before(times[i-1]) {
				t.Fatalf("the capture's line %d is stamped %v, before the line above (%v)", i+1, times[i], times[i-1])
			}
		}
		return data
	}
	// The ring buffer, as `ctl tail` prints it.
	r.copies["ring"] = func(t *testing.T) []byte {
		out, err := r.c.Ctl(t, "tail", "vm", "ring")
		if err != nil {
			t.Fatal(err)
		}
		return []byte(out)
	}
	r.legs = 9 // five clients, the pty, the capture, the ring, the input capture
	waitFor(t, "every client to be a leg", func() bool { return len(r.c.Tee(t, "vm").Legs) == r.legs })

	start := time.Now()
	r.vm.Resume(t)
	at := r.ref.WaitFor(t, harness.VMReadyMarker, 0, bootTimeout)
	r.ref.WaitFor(t, harness.VMPrompt, at, timeoutLong)
	t.Logf("VM booted to a prompt %v after resume", time.Since(start).Round(time.Millisecond))
	r.typeLine(t, harness.GuestCounter(10))
	r.ref.WaitFor(t, harness.CounterLine(0), at, timeoutLong)
	r.waitLines(t, 5)
	waited := time.Now()
	r.bins[upgradeV2] = harness.VersionedBinary(t, upgradeV2)
	t.Logf("the second build was ready %v later", time.Since(waited).Round(time.Millisecond))
	if r.v1 == upgradeV2 {
		t.Fatalf("the two builds have the same version %q", r.v1)
	}
	return r
}

// install puts binary at r.installed the way a package manager does: a
// new file renamed over the old one, which the running daemon keeps
// executing (its /proc/self/exe then reads "PATH (deleted)").
func (r *upgradeRig) install(t *testing.T, binary string) {
	t.Helper()
	tmp := r.installed + ".new"
	os.Remove(tmp)
	if err := os.Link(binary, tmp); err != nil {
		// Another file system: copy it.
		data, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tmp, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, r.installed); err != nil {
		t.Fatal(err)
	}
}

// typeAs types line in one of the clients with input, in turn by i:
// telnet-alice, telnet-bob, the raw typist.
func (r *upgradeRig) typeAs(t *testing.T, i int, line string) {
	t.Helper()
	switch i % 3 {
	case 0:
		r.telnets["telnet-alice"].Type(t, line)
	case 1:
		r.telnets["telnet-bob"].Type(t, line)
	default:
		r.typeLine(t, line)
	}
}

// dial connects a raw client and records what it gets.
func (r *upgradeRig) dial(t *testing.T, name, network, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	rec := harness.Record(t, name, conn)
	r.clients[name] = rec
	r.copies[name] = func(*testing.T) []byte { return rec.Bytes() }
	return conn
}

func (r *upgradeRig) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := r.typist.Write([]byte(line)); err != nil {
		t.Fatalf("typing %q: %v", line, err)
	}
}

// waitLines waits until the reference has n more counter lines than it
// has now: the counter runs and reaches the clients.
func (r *upgradeRig) waitLines(t *testing.T, n int) {
	t.Helper()
	want := harness.LastCounterLine(r.ref.Bytes()) + n
	r.ref.WaitFor(t, harness.CounterLine(want), 0, timeoutLong)
}

// ctlShow is `chartee ctl --json show vm`. (It prints the control API's
// answer to GET /v1/tees/vm, which r.c.Tee reads without starting a
// process: the test uses that between upgrades, ctl show around them.)
func (r *upgradeRig) ctlShow(t *testing.T) harness.TeeStatus {
	t.Helper()
	out, err := r.c.Ctl(t, "--json", "show", "vm")
	if err != nil {
		t.Fatal(err)
	}
	var st harness.TeeStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("ctl show printed %q: %v", out, err)
	}
	return st
}

// version is what chartee_build_info says. It also checks that the
// frontend's Prometheus byte counter never went back since the last
// scrape: an upgrade carries it, a new process does not start from 0.
func (r *upgradeRig) version(t *testing.T) string {
	t.Helper()
	m, err := harness.Scrape(r.metrics, timeoutLong)
	if err != nil {
		t.Fatal(err)
	}
	out, err := harness.Sample(m, "chartee_frontend_bytes_total", `direction="out"`, `tee="vm"`)
	if err != nil {
		t.Fatalf("%v in the scrape:\n%s", err, m)
	}
	if out < r.frontendOut {
		t.Errorf("chartee_frontend_bytes_total{direction=\"out\"} went from %v to %v: the counter was reset", r.frontendOut, out)
	}
	r.frontendOut = out
	_, rest, ok := strings.Cut(m, `chartee_build_info{`)
	_, rest, ok2 := strings.Cut(rest, `version="`)
	v, _, ok3 := strings.Cut(rest, `"`)
	if !ok || !ok2 || !ok3 {
		t.Fatalf("no chartee_build_info version in the scrape:\n%s", m)
	}
	return v
}

// checkAttached fails the test if any client's stream ended or the tee
// lost a leg.
func (r *upgradeRig) checkAttached(t *testing.T, st harness.TeeStatus, when string) {
	t.Helper()
	for name, rec := range r.clients {
		if err := rec.Err(); err != nil {
			t.Fatalf("%s: client %s was disconnected: %v", when, name, err)
		}
	}
	if len(st.Legs) != r.legs {
		t.Fatalf("%s: the tee has %d legs, want %d: %+v", when, len(st.Legs), r.legs, st.Legs)
	}
}

// checkMonotonic fails the test if a counter of cur is below prev's: the
// stream offset, the frontend's and every backend's and leg's byte
// counts.
func checkMonotonic(t *testing.T, when string, prev, cur harness.TeeStatus) {
	t.Helper()
	type counter struct {
		name      string
		prev, cur uint64
	}
	cs := []counter{
		{"offset", prev.Offset, cur.Offset},
		{"frontend bytes_out", prev.Frontend.BytesOut, cur.Frontend.BytesOut},
		{"frontend bytes_in", prev.Frontend.BytesIn, cur.Frontend.BytesIn},
	}
	for _, pb := range prev.Backends {
		for _, cb := range cur.Backends {
			if cb.Name == pb.Name {
				cs = append(cs, counter{"backend " + pb.Name + " bytes_out", pb.BytesOut, cb.BytesOut},
					counter{"backend " + pb.Name + " bytes_in", pb.BytesIn, cb.BytesIn})
			}
		}
	}
	for _, pl := range prev.Legs {
		for _, cl := range cur.Legs {
			if cl.Name == pl.Name {
				cs = append(cs, counter{"leg " + pl.Name + " bytes_out", pl.BytesOut, cl.BytesOut})
			}
		}
	}
	for _, c := range cs {
		if c.cur < c.prev {
			t.Errorf("%s: ctl show's %s went from %d to %d", when, c.name, c.prev, c.cur)
		}
	}
	if cur.Offset <= prev.Offset {
		t.Errorf("%s: the stream offset did not advance (%d, then %d) while the guest prints", when, prev.Offset, cur.Offset)
	}
	if len(cur.Backends) != len(prev.Backends) {
		t.Errorf("%s: %d backends, then %d", when, len(prev.Backends), len(cur.Backends))
	}
}

func legNames(st harness.TeeStatus) []string {
	var names []string
	for _, l := range st.Legs {
		names = append(names, l.Backend+"/"+l.Name)
	}
	slices.Sort(names)
	return names
}

// inflightLine is the line typed just before upgrade i (from 0), and
// inflightOutput what it prints when it runs in the guest.
func inflightLine(i int) string   { return fmt.Sprintf("echo inflight-%d-$((6*7))", i+1) }
func inflightOutput(i int) string { return fmt.Sprintf("\ninflight-%d-42\r\n", i+1) }

// checkTypedLines waits, once the counter has ended (at endAt in the
// reference), until the lines typed before the upgrades, which waited in
// the guest's tty, have run, and checks that each ran exactly once, in
// the order typed, and that chartee wrote each to the frontend exactly
// once (the input capture). It returns where the prompt after the last
// one ends.
//
// Nothing may be typed before then: the guest's tty echoes what arrives
// while a command runs, and that echo can land inside the command's
// output (seen: "inflight-1-42" + the echo of a line typed meanwhile +
// "\r\n"), where the line looks as if it had not run.
func (r *upgradeRig) checkTypedLines(t *testing.T, endAt int) int {
	t.Helper()
	var lastAt int
	waitForState(t, "every line typed before an upgrade to run in the guest", func() (bool, string) {
		console := r.ref.Bytes()[endAt:]
		var missing []int
		for i := range upgradeCount {
			at := bytes.Index(console, []byte(inflightOutput(i)))
			if at < 0 {
				missing = append(missing, i+1)
			} else if i == upgradeCount-1 {
				lastAt = endAt + at + len(inflightOutput(i))
			}
		}
		return len(missing) == 0, fmt.Sprintf("the lines typed before upgrades %v have not run; the console since the counter's end:\n%q",
			missing, console[max(0, len(console)-3000):])
	})
	promptAt := r.ref.WaitFor(t, harness.VMPrompt, lastAt, timeoutLong)
	console := r.ref.Bytes()
	prev := -1
	for i := range upgradeCount {
		out := []byte(inflightOutput(i))
		if got := bytes.Count(console, out); got != 1 {
			t.Errorf("the line typed before upgrade %d ran %d times, want once", i+1, got)
		}
		at := bytes.Index(console, out)
		if at < prev {
			t.Errorf("the line typed before upgrade %d ran before the one typed before upgrade %d", i+1, i)
		}
		prev = at
	}
	// What chartee wrote to the frontend: each line once, whichever
	// client typed it, across the rollbacks and upgrades.
	var typed []byte
	waitForState(t, "the input capture to hold every typed line", func() (bool, string) {
		var err error
		if typed, err = os.ReadFile(r.typedLog); err != nil {
			t.Fatal(err)
		}
		return bytes.Contains(typed, []byte(inflightLine(upgradeCount-1))), fmt.Sprintf("%q", typed)
	})
	for i := range upgradeCount {
		if got := bytes.Count(typed, []byte(inflightLine(i))); got != 1 {
			t.Errorf("chartee wrote the line typed before upgrade %d to the frontend %d times, want once; all it wrote:\n%q", i+1, got, typed)
		}
	}
	return promptAt
}

// TestVMUpgrade is issue 16's end-to-end test. A real VM's serial console
// (QEMU's chardev socket, chartee's unix-connect frontend) is served to
// two telnet programs, two raw TCP clients, a raw unix-socket client, a
// reader on a pty leg's link, a timestamped capture file, a ring buffer
// and a capture of the input, all attached before the guest's first
// byte, while the guest prints a counter. First four failed upgrades roll
// back (a new binary that exits 1 or hangs, at its start and after the
// cut, when the daemon has stopped every tee). Then the daemon is
// upgraded 20 times in place, alternating two builds with different
// version strings, each installed at the daemon's path first; they take
// turns: ctl upgrade naming it, ctl upgrade letting the daemon re-read its
// own path, SIGUSR2. Throughout, no client is disconnected, the stream
// offset and the counters of `ctl show` and /metrics never go back, and
// the version changes with every upgrade. A line typed just before each
// upgrade (in turn by a telnet client or the raw one) is written to the
// guest exactly once and runs there exactly once, in order; at the end a
// command typed (in a telnet client) after the last upgrade runs in the
// guest, and every client's stream, the capture and the ring are the
// same, byte for byte, and carry every line of the guest's counter
// exactly once, in order, and nothing else between its first line and
// its last.
func TestVMUpgrade(t *testing.T) {
	harness.Begin(t)
	r := startUpgradeRig(t)
	st := r.ctlShow(t)
	first := st
	r.checkAttached(t, st, "before the upgrades")
	legs := legNames(st)
	var cuts []uint64

	t.Run("failed upgrades roll back", func(t *testing.T) {
		dir := t.TempDir()
		pid := r.c.PID()
		// Before the cut the daemon has frozen nothing; after it, it
		// resumes every tee at its cut.
		const before, after = "rolled back, this daemon carries on (nothing was frozen): ", "rolled back, this daemon carries on: "
		for _, c := range []struct {
			name, bin string
			timeout   time.Duration
			why       []string // what ctl upgrade's error says
		}{
			{"exits 1", harness.ExitScript(t, filepath.Join(dir, "exit1"), "e2e: this new binary cannot start"), 0,
				[]string{before, "the new process exited before it was prepared: exit status 1"}},
			{"hangs at its start", harness.HangScript(t, filepath.Join(dir, "hang")), 2 * time.Second,
				[]string{before, "the new process was not prepared within 2s; killed it"}},
			{"exits 1 after the cut", harness.ExitAfterCutScript(t, filepath.Join(dir, "exit1-cut"), "e2e: this new binary fails after the cut"), 0,
				[]string{after, "the new process exited before it was ready: exit status 1"}},
			{"hangs after the cut", harness.HangAfterCutScript(t, filepath.Join(dir, "hang-cut")), 5 * time.Second,
				[]string{after, "the new process was not ready within 5s; killed it"}},
		} {
			rep, err := r.c.Upgrade(t, c.bin, c.timeout)
			if err == nil {
				t.Fatalf("%s: the upgrade succeeded: %+v", c.name, rep)
			}
			// ctl upgrade says that nothing changed, and why.
			for _, want := range c.why {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: ctl upgrade's error does not say %q: %v", c.name, want, err)
				}
			}
			if r.c.PID() != pid || !harness.Running(pid) {
				t.Fatalf("%s: the daemon (pid %d) does not run on", c.name, pid)
			}
			r.waitLines(t, 3)
			cur := r.c.Tee(t, "vm")
			r.checkAttached(t, cur, c.name)
			checkMonotonic(t, c.name, st, cur)
			st = cur
			if v := r.version(t); v != r.v1 {
				t.Errorf("%s: chartee_build_info says version %q after a rollback, want %q", c.name, v, r.v1)
			}
		}
		// Every failed binary is gone: the daemon killed what hung (all
		// of them ran in its process group).
		group := harness.Group(r.c.Proc.Pid())
		if !slices.Contains(group, harness.GroupProcess{PID: pid, Comm: "chartee"}) {
			t.Errorf("the daemon's process group lists %+v, without the daemon", group)
		}
		for _, p := range group {
			if !strings.HasPrefix(p.Comm, "chartee") {
				t.Errorf("a failed new binary (%+v) still runs after the rollbacks", p)
			}
		}
		// The failing binaries' own words went to the daemon's log.
		// (Copied by the daemon as the binary wrote it: wait for it.)
		for _, words := range []string{"e2e: this new binary cannot start", "e2e: this new binary fails after the cut"} {
			waitForState(t, "the failed binary's stderr in the daemon's log", func() (bool, string) {
				return strings.Contains(r.c.Output(), words), fmt.Sprintf("%q is not there", words)
			})
		}
	})
	if t.Failed() {
		return
	}

	t.Run("20 upgrades", func(t *testing.T) {
		prevVersion := r.v1
		var pauses []time.Duration
		var events []string // the upgrade event each new process must log
		for i := range upgradeCount {
			want := upgradeV2
			if i%2 == 1 {
				want = r.v1
			}
			// The upgrades take turns, a pair (one of each version) at a
			// time: ctl upgrade naming the binary, ctl upgrade letting the
			// daemon re-read its own path, SIGUSR2 (its own path too).
			r.install(t, r.bins[want])
			// A line typed just before the upgrade, in turn by one of the
			// telnet clients or the raw one (whose sessions the upgrades
			// before carried). The counter's tty does not echo and its
			// shell reads no command until the counter ends; then each
			// line must run once. (From outside, the line cannot be timed
			// to be in flight at the cut: it reaches the guest during the
			// ctl's and the new binary's start, before it.)
			r.typeAs(t, i, inflightLine(i)+"\r")
			how := []string{"ctl upgrade --binary", "ctl upgrade", "SIGUSR2"}[(i/2)%3]
			when := fmt.Sprintf("upgrade %d (%s -> %s, %s)", i+1, prevVersion, want, how)
			oldPID := r.c.PID()
			if how == "SIGUSR2" {
				r.c.UpgradeBySignal(t)
			} else {
				bin := r.installed
				if how == "ctl upgrade" {
					bin = ""
				}
				rep, err := r.c.Upgrade(t, bin, 0)
				if err != nil {
					t.Fatalf("%s: %v", when, err)
				}
				if rep.Binary != r.installed {
					t.Errorf("%s: ctl upgrade started %s, want %s", when, rep.Binary, r.installed)
				}
				if rep.OldVersion != prevVersion || rep.NewVersion != want {
					t.Errorf("%s: ctl upgrade reports %s -> %s", when, rep.OldVersion, rep.NewVersion)
				}
				cut := rep.Cuts["vm"]
				if len(cuts) > 0 && cut <= cuts[len(cuts)-1] {
					t.Errorf("%s: cut at %d, not past the last one at %d", when, cut, cuts[len(cuts)-1])
				}
				cuts = append(cuts, cut)
				pauses = append(pauses, rep.Pause)
			}
			events = append(events, fmt.Sprintf("from %s (pid %d) to %s; output paused ", prevVersion, oldPID, want))
			r.waitLines(t, 3)
			var cur harness.TeeStatus
			if i == upgradeCount/2 {
				cur = r.ctlShow(t)
			} else {
				cur = r.c.Tee(t, "vm")
			}
			r.checkAttached(t, cur, when)
			checkMonotonic(t, when, st, cur)
			if got := legNames(cur); !slices.Equal(got, legs) {
				t.Errorf("%s: the legs are %v, were %v", when, got, legs)
			}
			st = cur
			if v := r.version(t); v != want {
				t.Errorf("%s: chartee_build_info says version %q", when, v)
			}
			prevVersion = want
		}
		// Each new process logged the tee's upgrade event, naming both
		// versions and the old pid (every generation logs to the same
		// file).
		waitForState(t, "an upgrade event per upgrade in the daemon's log", func() (bool, string) {
			log := r.c.Output()
			for i, e := range events {
				if !strings.Contains(log, e) {
					return false, fmt.Sprintf("no event %q of upgrade %d", e, i+1)
				}
			}
			return true, ""
		})
		slices.Sort(pauses)
		t.Logf("%d upgrades by ctl; output paused for %v (median), %v (longest)", len(pauses),
			pauses[len(pauses)/2].Round(time.Millisecond), pauses[len(pauses)-1].Round(time.Millisecond))
	})
	if t.Failed() {
		return
	}

	// The counter is stopped (^C); the lines typed before the upgrades
	// run, then a command typed after the last upgrade, each printing
	// what only the guest's shell computes.
	// It is typed in a telnet client, whose session (and telnet state)
	// every upgrade carried.
	stopAt := r.ref.Len()
	r.typeLine(t, harness.StopGuestCounter)
	endAt := r.ref.WaitFor(t, harness.CounterEnd, stopAt, timeoutLong)
	promptAt := r.checkTypedLines(t, endAt)
	n := rand.IntN(1 << 30)
	r.telnets["telnet-alice"].Type(t, fmt.Sprintf("echo marker-%d-$((6*7))\r", n))
	r.ref.WaitFor(t, fmt.Sprintf("\nmarker-%d-42\r\n", n), promptAt, timeoutLong)

	// Every copy reaches the stream's end and they are all the same.
	var offset uint64
	got := map[string][]byte{}
	waitForState(t, "every copy of the stream to reach the tee's offset", func() (bool, string) {
		offset = r.c.Tee(t, "vm").Offset
		var state []string
		ok := true
		for name, read := range r.copies {
			got[name] = read(t)
			state = append(state, fmt.Sprintf("%s %d", name, len(got[name])))
			ok = ok && uint64(len(got[name])) == offset
		}
		return ok, fmt.Sprintf("offset %d; %s", offset, strings.Join(state, ", "))
	})
	ref := got["raw-typist"]
	for name, b := range got {
		if !bytes.Equal(b, ref) {
			t.Errorf("%s differs from what the typist got:\n%s", name, firstDiff(b, ref))
		}
	}
	// The console carried nothing but the counter from its first line to
	// its end: every byte in between is checked.
	res, err := harness.CheckCounter(ref, len(ref))
	if err != nil {
		t.Fatalf("the guest's counter is not exact in the stream: %v", err)
	}
	if !res.Ended {
		t.Errorf("the counter's end line is missing")
	}
	// Every cut fell while the counter ran: the stream was mid-counter at
	// each upgrade, not quiet.
	for i, cut := range cuts {
		if cut <= uint64(res.Start) || cut >= uint64(res.Last) {
			t.Errorf("ctl upgrade %d cut the stream at %d, outside the counter (bytes %d to %d)", i+1, cut, res.Start, res.Last)
		}
	}
	last := r.ctlShow(t)
	r.checkAttached(t, last, "at the end")
	checkMonotonic(t, "from the first ctl show to the last", first, last)
	t.Logf("%d clients and copies each got %d bytes; the counter's %d lines arrived exactly once each, in order, across %d upgrades and 4 rollbacks",
		len(got), len(ref), res.Lines, upgradeCount)
	t.Logf("the test took %v once the shared build was there", time.Since(r.began).Round(time.Second))
}
