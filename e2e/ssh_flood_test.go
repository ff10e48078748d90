package e2e

import (
	"crypto/ed25519"
	"crypto/rand"

	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"chartee/e2e/internal/harness"
)

// TestSSHFloodBounded: 1,000 half-open TCP connections to the SSH port
// (connected, never a byte sent) and 200 failed logins (100 unknown keys,
// 100 wrong passwords, 16 at a time) while they are held open. The bound
// stated in sshd's package doc: at most max_startups (32, the default)
// connections handshake at once, the oldest being dropped for a
// newcomer, a dropped or failed one keeping its place until its
// goroutines have ended, each costing at most 3 goroutines (its own, the
// SSH transport's reader and key-exchange loops), and one password hash
// at a time (argon2id with p=1: one lane goroutine). So chartee's
// goroutines stay within baseline + 3×32 + 1 (while the half-open
// connections come in, one goroutine each: baseline + 2×32, see below),
// sampled all through the flood from the daemon's goroutine profile (GET
// /v1/debug/goroutines; the peak's stacks are in the failure). Its Go heap in use stays within
// baseline + 64 MiB (one argon2id hash of 19 MiB at a time, returned to
// the OS after each), and its resident memory within baseline + 192 MiB
// (observed: about +100 MiB on the 2-core CI machine, none of it in what
// the Go runtime accounts for, go_memstats_sys_bytes staying near 53 MiB;
// not explained yet). A real user then logs in with OpenSSH while the
// 1,000 connections are still open.
func TestSSHFloodBounded(t *testing.T) {
	metricsAddr := harness.FreeAddr(t)
	// Plain: the memory bound is the shipped daemon's; the race
	// detector's shadow memory multiplies every allocation.
	r := newSSHRigExtra(t, "metrics:\n  listen: "+metricsAddr+"\n", true)
	pid := r.c.Proc.Pid()
	// Warm up: one real session, so the baseline includes what a
	// session leaves behind (pools, the ssh backend).
	warm := r.ssh(t, "alice", "alice:c0")
	warm.Screen.WaitFor(t, "as operate", 0, timeoutLong)
	warm.Type(t, "\x05.")
	warm.Proc.Wait(timeoutLong)
	g0 := sshQuiet(t, r)
	rss0, err := harness.ProcessRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	heap0, err := harness.Metric(metricsAddr, "go_memstats_heap_inuse_bytes", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	peak := sampleGoroutines(r)
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// The half-open connections come in a burst from 8 dialers: the
	// daemon must not start goroutines faster than dropped connections'
	// end (before, it did: 165 goroutines, 111 of them not yet started,
	// where the design allows baseline + 32). A connection that never
	// sends a byte costs one goroutine; allowed too, for each of the
	// max_startups places, the goroutine of a dropped connection between
	// giving its place back and returning.
	var cmu sync.Mutex
	var dialers sync.WaitGroup
	for range 8 {
		dialers.Go(func() {
			for range 1000 / 8 {
				c, err := net.Dial("tcp", r.addr)
				if err != nil {
					t.Errorf("half-open connection: %v", err)
					return
				}
				cmu.Lock()
				conns = append(conns, c)
				cmu.Unlock()
			}
		})
	}
	dialers.Wait()
	burstPeak, burstDump := peak()
	if t.Failed() {
		t.FailNow()
	}
	if burstBound := g0 + 2*sshMaxStartups; burstPeak > burstBound {
		t.Fatalf("goroutines during the half-open burst: %d, past the bound %d; the daemon's goroutines then:\n%s", burstPeak, burstBound, burstDump)
	}
	peak = sampleGoroutines(r)

	_, wrongKey, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(wrongKey)
	var failed, unexpected atomic.Int64
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		auth := ssh.AuthMethod(ssh.PublicKeys(signer))
		if i%2 == 1 {
			auth = ssh.Password("wrong")
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := ssh.Dial("tcp", r.addr, &ssh.ClientConfig{User: "alice:c0", Auth: []ssh.AuthMethod{auth},
				HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second})
			if err == nil {
				c.Close()
				unexpected.Add(1)
				return
			}
			failed.Add(1)
		}()
	}
	wg.Wait()
	peakG, peakDump := peak()
	if unexpected.Load() != 0 {
		t.Fatalf("%d of the bad logins got in", unexpected.Load())
	}
	g1, _, err := r.c.GoroutineDump(timeoutLong)
	if err != nil {
		t.Fatal(err)
	}
	rss1, _ := harness.ProcessRSS(pid)
	heap1, _ := harness.Metric(metricsAddr, "go_memstats_heap_inuse_bytes", 5*time.Second)
	sys1, _ := harness.Metric(metricsAddr, "go_memstats_sys_bytes", 5*time.Second)
	stack1, _ := harness.Metric(metricsAddr, "go_memstats_stack_inuse_bytes", 5*time.Second)
	t.Logf("Go runtime after the flood: sys %.0f MiB, stacks %.1f MiB", sys1/(1<<20), stack1/(1<<20))
	bound := g0 + 3*sshMaxStartups + 1
	t.Logf("goroutines: baseline %d, peak during the half-open burst %d (bound %d), during the logins %d, after %d (bound %d); RSS: %d MiB -> %d MiB; Go heap in use: %.0f MiB -> %.0f MiB; %d logins failed",
		g0, burstPeak, g0+2*sshMaxStartups, peakG, g1, bound, rss0>>20, rss1>>20, heap0/(1<<20), heap1/(1<<20), failed.Load())
	if peakG > bound || g1 > bound {
		t.Fatalf("goroutines grew past the bound %d: peak during the logins %d, after %d; the daemon's goroutines at the peak:\n%s", bound, peakG, g1, peakDump)
	}
	if heap1-heap0 > 64<<20 {
		t.Fatalf("Go heap in use grew by %.0f MiB (bound 64 MiB)", (heap1-heap0)/(1<<20))
	}
	if rss1-rss0 > 192<<20 {
		t.Fatalf("resident memory grew by %d MiB (bound 192 MiB)", (rss1-rss0)>>20)
	}

	// A real user still gets in, the 1,000 connections still open.
	alice := r.ssh(t, "alice", "alice:c0")
	alice.Screen.WaitFor(t, "alice on c0 as operate", 0, timeoutLong)
	alice.Type(t, "\x05.")
	if err := alice.Proc.Wait(timeoutLong); err != nil {
		t.Fatalf("ssh: %v\n%s", err, alice.Screen.Bytes())
	}
	var logged int
	for _, m := range auditRecords(t, r.auditLog) {
		if m["kind"] == "login-failed" {
			logged++
		}
	}
	// Every attempt that reached authentication is logged; on a loaded
	// machine a few connections can hit the handshake deadline before
	// their client gets that far, so not quite all 200 need to be there.
	t.Logf("audit: %d failed logins logged", logged)
	if logged < 150 {
		t.Fatalf("audit has %d failed logins, want most of the 200", logged)
	}
}

// sshMaxStartups is chartee's default ssh max_startups, which the rig
// keeps.
const sshMaxStartups = 32

// sshQuiet waits until no SSH connection's goroutine is left in the
// daemon (a session just ended tears down after its client exits) and
// returns the goroutine count then.
func sshQuiet(t *testing.T, r *sshRig) int {
	t.Helper()
	var n int
	var dump string
	deadline := time.Now().Add(timeoutLong)
	for {
		var err error
		n, dump, err = r.c.GoroutineDump(timeoutLong)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(dump, "sshd.(*Server).handle") && !strings.Contains(dump, "golang.org/x/crypto/ssh.") {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("SSH connections' goroutines still there after %v:\n%s", timeoutLong, dump)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sampleGoroutines samples the daemon's goroutine count until the
// returned function is called, which stops it and returns the highest
// count seen with that sample's goroutine profile.
func sampleGoroutines(r *sshRig) func() (int, string) {
	stop, done := make(chan struct{}), make(chan struct{})
	var peak int
	var peakDump string
	go func() {
		defer close(done)
		for {
			if n, dump, err := r.c.GoroutineDump(timeoutLong); err == nil && n > peak {
				peak, peakDump = n, dump
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond): // pacing: the samples must not starve the daemon
			}
		}
	}()
	return func() (int, string) {
		close(stop)
		<-done
		return peak, peakDump
	}
}
