package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// UpgradeReport is what `chartee ctl --json upgrade` prints on success.
type UpgradeReport struct {
	Binary     string            `json:"binary"`
	OldVersion string            `json:"old_version"`
	NewVersion string            `json:"new_version"`
	OldPID     int               `json:"old_pid"`
	NewPID     int               `json:"new_pid"`
	Files      int               `json:"files"`
	Elapsed    time.Duration     `json:"elapsed_ns"`
	Pause      time.Duration     `json:"pause_ns"`
	Cuts       map[string]uint64 `json:"cuts"`
}

// UpgradeTimeout is how long Upgrade gives a new binary to be ready when
// the test does not say: far more than the daemon's default (10s), since
// a race-detector build starting on a loaded machine can take seconds,
// and a rollback there would be a false failure.
const UpgradeTimeout = 40 * time.Second

// Upgrade runs `chartee ctl --json upgrade --binary BINARY --timeout T`
// (no --binary when BINARY is "": the daemon re-reads its own path; T 0:
// UpgradeTimeout). On success it checks that the old process ended
// (with status 0 when it is the one Start ran) and that the new one
// serves the control API, and from then on treats the new one as the
// daemon. On failure the error carries ctl's stderr (why).
func (c *Chartee) Upgrade(t testing.TB, binary string, timeout time.Duration) (UpgradeReport, error) {
	t.Helper()
	if timeout <= 0 {
		timeout = UpgradeTimeout
	}
	args := []string{"--json", "upgrade", "--timeout", timeout.String()}
	if binary != "" {
		args = append(args, "--binary", binary)
	}
	old := c.PID()
	out, err := c.CtlWithin(t, timeout+timeoutShort, args...)
	if err != nil {
		return UpgradeReport{}, err
	}
	var rep UpgradeReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("e2e: ctl upgrade printed %q: %v", out, err)
	}
	if rep.OldPID != old || rep.NewPID <= 0 || rep.NewPID == old {
		t.Fatalf("e2e: upgrade from pid %d reported old pid %d, new pid %d", old, rep.OldPID, rep.NewPID)
	}
	c.pid.Store(int64(rep.NewPID))
	if old == c.Proc.Pid() {
		if err := c.Proc.Wait(timeoutShort); err != nil {
			t.Fatalf("e2e: the daemon Start ran did not exit cleanly after handing over: %v", err)
		}
	} else if !WaitGone(old, timeoutShort) {
		t.Fatalf("e2e: the old daemon (pid %d) still runs %v after handing over to pid %d", old, timeoutShort, rep.NewPID)
	}
	if !Running(rep.NewPID) {
		t.Fatalf("e2e: the new daemon (pid %d) is not running after the upgrade", rep.NewPID)
	}
	if err := c.Health(); err != nil {
		t.Fatalf("e2e: the new daemon (pid %d) does not answer /healthz: %v", rep.NewPID, err)
	}
	return rep, nil
}

// Running reports whether process pid exists and has not ended (a zombie
// has ended: a process an upgrade started is reparented away from the
// test, and its new parent may reap it late or never).
func Running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses, the
	// state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 || i+2 >= len(stat) {
		return false
	}
	state := stat[i+2]
	return state != 'Z' && state != 'X'
}

// GroupProcess is a live process of a process group.
type GroupProcess struct {
	PID  int
	Comm string // its command name (/proc/PID/comm)
}

// Group lists the live processes in process group pgid.
func Group(pgid int) []GroupProcess {
	var out []GroupProcess
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		// After the comm: state, ppid, pgrp.
		f := strings.Fields(string(stat[end+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		out = append(out, GroupProcess{PID: pid, Comm: string(stat[open+1 : end])})
	}
	return out
}

// UpgradeBySignal sends the daemon SIGUSR2: it hands over to its own
// path, re-read from disk, with its default timeout. It waits until the
// old process has ended and takes the one chartee process left in its
// process group for the new daemon, which must serve the control API.
// A failed or refused upgrade (logged by the daemon) fails the test.
func (c *Chartee) UpgradeBySignal(t testing.TB) int {
	t.Helper()
	old := c.PID()
	failures := func() int {
		out := c.Output()
		return strings.Count(out, "upgrade failed") + strings.Count(out, "upgrade refused")
	}
	before := failures()
	if err := syscall.Kill(old, syscall.SIGUSR2); err != nil {
		t.Fatalf("e2e: SIGUSR2 to pid %d: %v", old, err)
	}
	deadline := time.Now().Add(2*UpgradeTimeout + timeoutShort)
	for Running(old) {
		if failures() > before {
			t.Fatalf("e2e: the upgrade on SIGUSR2 failed:\n%s", tailOf([]byte(c.Output()), 3000))
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: the daemon (pid %d) still runs %v after SIGUSR2", old, 2*UpgradeTimeout+timeoutShort)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if old == c.Proc.Pid() {
		if err := c.Proc.Wait(timeoutShort); err != nil {
			t.Fatalf("e2e: the daemon Start ran did not exit cleanly after handing over: %v", err)
		}
	}
	var daemons []GroupProcess
	for _, p := range Group(c.Proc.Pid()) {
		if strings.HasPrefix(p.Comm, "chartee") && p.PID != old {
			daemons = append(daemons, p)
		}
	}
	if len(daemons) != 1 {
		t.Fatalf("e2e: after SIGUSR2 the daemon's process group holds %+v, want one new chartee", daemons)
	}
	c.pid.Store(int64(daemons[0].PID))
	if err := c.Health(); err != nil {
		t.Fatalf("e2e: the new daemon (pid %d) does not answer /healthz: %v", daemons[0].PID, err)
	}
	return daemons[0].PID
}

// WaitGone waits up to timeout for process pid to end.
func WaitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for Running(pid) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// ExitScript writes an executable shell script to path that says why on
// stderr and exits with status 1 at once: a new "binary" that fails to
// start (before the cut: the daemon freezes nothing).
func ExitScript(t testing.TB, path, why string) string {
	t.Helper()
	return script(t, path, fmt.Sprintf("echo %q >&2\nexit 1\n", why))
}

// HangScript writes an executable shell script to path that never says
// it is prepared (it sleeps an hour): a new binary hung at its start.
func HangScript(t testing.TB, path string) string {
	t.Helper()
	return script(t, path, "exec sleep 3600\n")
}

// The handover protocol as far as a script speaks it (package handover):
// the new process says "prepared INFO" on fd 3; the old one then stops
// every tee at its cut and sends "state FILES BYTES", the files and the
// state document, and waits for "ready".
const scriptPrepared = "echo 'prepared e2e-script' >&3\nread -r header <&3\n"

// ExitAfterCutScript writes a script that is prepared, takes the state
// (the daemon's tees are frozen at their cuts by then), says why on
// stderr and exits with status 1 instead of being ready.
func ExitAfterCutScript(t testing.TB, path, why string) string {
	t.Helper()
	return script(t, path, scriptPrepared+fmt.Sprintf("echo %q >&2\nexit 1\n", why))
}

// HangAfterCutScript writes a script that is prepared, takes the state
// and then never says it is ready.
func HangAfterCutScript(t testing.TB, path string) string {
	t.Helper()
	return script(t, path, scriptPrepared+"exec sleep 3600\n")
}

func script(t testing.TB, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
