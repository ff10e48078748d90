package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a server under test, started in its own process group so that
// stopping it takes whatever it spawned along.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

var (
	procsMu sync.Mutex
	procs   = map[*proc]bool{}
)

func startProc(name, logPath string, argv ...string) (*proc, error) {
	return startProcEnv(name, logPath, nil, argv...)
}

// startProcEnv is startProc with extra environment variables.
func startProcEnv(name, logPath string, environ []string, argv ...string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: log: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if len(environ) > 0 {
		cmd.Env = append(os.Environ(), environ...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	procsMu.Lock()
	procs[p] = true
	procsMu.Unlock()
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, and SIGKILL if it is still there
// after a grace period.
func (p *proc) stop() {
	procsMu.Lock()
	delete(procs, p)
	procsMu.Unlock()
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}

// logTail returns the end of the process's log, for error messages.
func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.log)
	s := strings.TrimSpace(string(b))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	if s == "" {
		return "(empty log)"
	}
	return s
}

// stopAll kills every server still running (on an error path or a signal).
func stopAll() {
	procsMu.Lock()
	ps := make([]*proc, 0, len(procs))
	for p := range procs {
		ps = append(ps, p)
	}
	procsMu.Unlock()
	for _, p := range ps {
		p.stop()
	}
	stopGroups()
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until something listens on 127.0.0.1:port, reading
// /proc/net/tcp rather than connecting: a probe connection would itself be
// a client to the server under test.
func waitListening(ctx context.Context, p *proc, port int, timeout time.Duration) error {
	want := fmt.Sprintf("0100007F:%04X", port)
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && f[1] == want && f[3] == "0A" {
				return nil
			}
		}
		if p != nil && p.exited() {
			return fmt.Errorf("bench: %s exited before listening on port %d: %v: %s", p.name, port, p.err, p.logTail())
		}
		if time.Now().After(deadline) {
			tail := ""
			if p != nil {
				tail = ": " + p.logTail()
			}
			return fmt.Errorf("bench: nothing listens on 127.0.0.1:%d after %v%s", port, timeout, tail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// procStat is a process's CPU time and memory from /proc.
type procStat struct {
	cpu    time.Duration // user + system
	rssKB  int
	hwmKB  int
	thread int
	ctxsw  int // voluntary + involuntary context switches
}

const clockTicks = 100 // USER_HZ on Linux

func readProcStat(pid int) (procStat, error) {
	var s procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'. utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return s, errors.New("bench: /proc/PID/stat: no ')'")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return s, errors.New("bench: /proc/PID/stat: short")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	sf, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("bench: %w", err)
	}
	defer sf.Close()
	sc := bufio.NewScanner(sf)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		switch k {
		case "VmRSS":
			s.rssKB = n
		case "VmHWM":
			s.hwmKB = n
		case "Threads":
			s.thread = n

		}
	}
	if err := sc.Err(); err != nil {
		return s, err
	}
	// Context switches are counted per thread: sum the live threads.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				s.ctxsw += n
			}
		}
	}
	return s, nil
}

// cpuTimes is the machine's CPU time from the first line of /proc/stat, in
// ticks: everything, idle (with iowait) and steal (taken by the hypervisor).
type cpuTimes struct{ total, idle, steal uint64 }

func readCPUTimes() cpuTimes {
	var c cpuTimes
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		c.total += n
		switch i {
		case 3, 4:
			c.idle += n
		case 7:
			c.steal += n
		}
	}
	return c
}

// busy returns the share of the machine's CPU time that was not idle
// between a and b, and the share the hypervisor stole.
func busy(a, b cpuTimes) (busy, steal float64) {
	t := float64(b.total - a.total)
	if t <= 0 {
		return 0, 0
	}
	return 1 - float64(b.idle-a.idle)/t, float64(b.steal-a.steal) / t
}

// selfCPU is the bench's own user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
