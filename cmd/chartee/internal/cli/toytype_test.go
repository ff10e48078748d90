package cli

// This file proves docs/BACKENDS.md's claim that a new backend type touches
// one file: toy-listen, a listening type defined here and nowhere else, is
// accepted by the config layer, rejected by `chartee check` when two
// backends bind its address, and rebound in place by a reload that changes
// its options, through nothing but the chardev registry and chardev.Claimer.
// toy-listen-unclaimed, the same type without Claims, shows what the claim
// buys: check misses its duplicate bind and the same reload fails.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"chartee/chardev"
)

// toySpec is toy-listen's options: where to listen, and a line each client
// is greeted with (so a test can tell which listener accepted it).
type toySpec struct {
	Listen string `yaml:"listen" json:"listen"`
	Banner string `yaml:"banner" json:"banner"`
}

func (s *toySpec) Validate() error {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		return fmt.Errorf("listen %q: want host:port", s.Listen)
	}
	return nil
}

// Claims is all it takes for config and daemon to know the address.
func (s *toySpec) Claims() []chardev.Claim {
	return []chardev.Claim{chardev.Bind("tcp", "listen", s.Listen)}
}

// unclaimedToySpec is toySpec without Claims.
type unclaimedToySpec struct {
	Listen string `yaml:"listen" json:"listen"`
	Banner string `yaml:"banner" json:"banner"`
}

func (s *unclaimedToySpec) Validate() error { return (*toySpec)(s).Validate() }

var (
	_ chardev.Claimer = (*toySpec)(nil)
	_ chardev.Source  = (*toySource)(nil)
)

// toySource accepts TCP clients, greeting each with its banner.
type toySource struct {
	ln     net.Listener
	banner string
}

func (s *toySource) Accept() (chardev.Chardev, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, s.banner+"\n"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (s *toySource) Close() error { return s.ln.Close() }
func (s *toySource) Addr() string { return s.ln.Addr().String() }

func toyListen(ctx context.Context, listen, banner string) (chardev.Source, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("toy-listen: %w", err)
	}
	return &toySource{ln: ln, banner: banner}, nil
}

func init() {
	chardev.Register("toy-listen", chardev.Factory{
		NewSpec: func() chardev.Spec { return &toySpec{Banner: "toy"} },
		Listen: func(ctx context.Context, spec chardev.Spec) (chardev.Source, error) {
			s, ok := spec.(*toySpec)
			if !ok {
				return nil, fmt.Errorf("toy-listen: spec is %T", spec)
			}
			return toyListen(ctx, s.Listen, s.Banner)
		},
		Input: true,
	})
	chardev.Register("toy-listen-unclaimed", chardev.Factory{
		NewSpec: func() chardev.Spec { return &unclaimedToySpec{Banner: "toy"} },
		Listen: func(ctx context.Context, spec chardev.Spec) (chardev.Source, error) {
			s, ok := spec.(*unclaimedToySpec)
			if !ok {
				return nil, fmt.Errorf("toy-listen-unclaimed: spec is %T", spec)
			}
			return toyListen(ctx, s.Listen, s.Banner)
		},
		Input: true,
	})
}

// toyReservedAddr is a loopback address no automatic bind will take for a
// minute: its port is left in TIME_WAIT on the listening side, which an
// explicit listen (SO_REUSEADDR, as Go sets it) takes at once.
func toyReservedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, _ = io.Copy(io.Discard, c)
	return ln.Addr().String()
}

func toyConfig(socket, typ, addr, banner string, twice bool) string {
	cfg := fmt.Sprintf(`control: {socket: %s}
tees:
  - name: t
    frontend: {type: demo}
    backends:
      - {name: toy, type: %s, listen: %q, banner: %s}
`, socket, typ, addr, banner)
	if twice {
		cfg += fmt.Sprintf("      - {name: toy2, type: %s, listen: %q}\n", typ, addr)
	}
	return cfg
}

// toyGreeting connects to addr and returns the banner it is greeted with,
// and the connection.
func toyGreeting(t *testing.T, addr string) (string, net.Conn) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		t.Fatalf("greeting from %s: %v", addr, err)
	}
	return strings.TrimSpace(line), c
}

func TestToyListeningTypeNeedsOneFile(t *testing.T) {
	dir := shortTempDir(t)
	cfgPath := filepath.Join(dir, "c.yaml")
	socket := filepath.Join(dir, "ctl.sock")
	addr := toyReservedAddr(t)

	// check: one toy listener is fine; two on one address are refused at
	// the second, with where the first is.
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen", addr, "one", false))
	if r := runCmd(context.Background(), nil, "check", "-c", cfgPath); r.code != exitOK {
		t.Fatalf("check of one toy listener: exit %d\n%s", r.code, r.stderr)
	}
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen", addr, "one", true))
	r := runCmd(context.Background(), nil, "check", "-c", cfgPath)
	if r.code == exitOK {
		t.Fatalf("check accepted two toy listeners on %s:\n%s", addr, r.stdout)
	}
	mustContain(t, "check of a duplicate bind", r.stderr,
		cfgPath+":7:", "tees[0].backends[1].listen: tcp "+addr+" is already bound (first at line 6)")
	// Its exposure is known from the claim too (check binds nothing).
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen", "0.0.0.0:7", "one", false))
	r = runCmd(context.Background(), nil, "check", "-c", cfgPath)
	if r.code != exitOK {
		t.Fatalf("check of an exposed toy listener: exit %d\n%s", r.code, r.stderr)
	}
	mustContain(t, "check of an exposed listener", r.stderr, "toy-listen 0.0.0.0:7 is reachable from the network (this type has no TLS)")
	// Without Claims the same duplicate goes unnoticed: the claim is what
	// check knows the address by.
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen-unclaimed", addr, "one", true))
	if r := runCmd(context.Background(), nil, "check", "-c", cfgPath); r.code != exitOK {
		t.Fatalf("check of unclaimed duplicates: exit %d (expected to pass unnoticed)\n%s", r.code, r.stderr)
	}

	// run, then reload with new options on the same address: the old
	// listener lets go before the new one binds, and a client connected
	// before the reload stays connected.
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen", addr, "one", false))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr, sigs, done, info := startInProcess(t, ctx, "run", "-c", cfgPath)
	if got := info.Listeners["t/toy"]; got != addr {
		t.Fatalf("toy listener at %q, want %q", got, addr)
	}
	greeting, before := toyGreeting(t, addr)
	defer before.Close()
	if greeting != "one" {
		t.Fatalf("greeting %q, want one", greeting)
	}
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen", addr, "two", false))
	sigs.send(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload logged", func() bool {
		return strings.Contains(stderr.String(), "config reloaded") || strings.Contains(stderr.String(), "reload failed")
	})
	mustContain(t, "reload log", stderr.String(), "config reloaded")
	if greeting, after := toyGreeting(t, addr); greeting != "two" {
		after.Close()
		t.Fatalf("after the reload, greeting %q, want two (the new listener)", greeting)
	} else {
		after.Close()
	}
	// Still connected: a read gets the demo's output, or times out; a
	// client that was cut reads EOF or a reset.
	before.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := before.Read(make([]byte, 1)); err != nil && !toyIsTimeout(err) {
		t.Fatalf("the client connected before the reload was cut: %v", err)
	}
	sigs.send(syscall.SIGTERM)
	if code := <-done; code != exitOK {
		t.Fatalf("run exit %d:\n%s", code, stderr.String())
	}
}

// TestToyListeningTypeWithoutClaimsFailsToRebind is the control: the same
// reload of a type that does not declare its address fails, the new
// listener finding the old one still bound.
func TestToyListeningTypeWithoutClaimsFailsToRebind(t *testing.T) {
	dir := shortTempDir(t)
	cfgPath := filepath.Join(dir, "c.yaml")
	socket := filepath.Join(dir, "ctl.sock")
	addr := toyReservedAddr(t)
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen-unclaimed", addr, "one", false))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr, sigs, done, _ := startInProcess(t, ctx, "run", "-c", cfgPath)
	writeFile(t, cfgPath, toyConfig(socket, "toy-listen-unclaimed", addr, "two", false))
	sigs.send(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the reload logged", func() bool {
		return strings.Contains(stderr.String(), "config reloaded") || strings.Contains(stderr.String(), "reload failed")
	})
	mustContain(t, "reload log", stderr.String(), "reload failed", "address already in use")
	greeting, c := toyGreeting(t, addr)
	c.Close()
	if greeting != "one" {
		t.Fatalf("after the failed reload, greeting %q, want one (nothing changed)", greeting)
	}
	sigs.send(syscall.SIGTERM)
	if code := <-done; code != exitOK {
		t.Fatalf("run exit %d:\n%s", code, stderr.String())
	}
}

func toyIsTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
