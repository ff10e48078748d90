package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
)

// TestNewShutdown starts a tee with a capture file, a ring buffer and a
// TCP listener, checks what runs, and shuts down: the capture holds every
// byte the frontend sent, and a second Shutdown is harmless.
func TestNewShutdown(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	capPath := filepath.Join(dir, "cap.log")
	cfg := parse(t, teeYAML("console", f.addr(), indent(`- name: cap
  type: file
  path: `+capPath+`
  on_overflow: block
- name: rb
  type: ringbuf
  size: 64KiB
- name: net
  type: tcp-listen
  listen: 127.0.0.1:0`)))
	d, r, logs := start(t, cfg)
	if got := r.list(); !slices.Equal(got, []bool{true}) {
		t.Fatalf("OnReload calls = %v, want [true]", got)
	}
	if ts := d.Tees(); len(ts) != 1 || ts[0].Name() != "console" {
		t.Fatalf("Tees() = %v", ts)
	}
	if _, ok := d.Tee("nope"); ok {
		t.Fatal("Tee(nope) found something")
	}
	if got := backendNames(t, d, "console"); !slices.Equal(got, []string{"cap", "net", "rb"}) {
		t.Fatalf("backends = %v", got)
	}
	c := f.conn(t)
	if n := stream(c, 0, 500, nil); n != 500 {
		t.Fatalf("wrote %d lines", n)
	}
	tt, _ := d.Tee("console")
	waitFor(t, "the tee to read everything", func() bool { return tt.Offset() == 500*lineLen })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	checkLines(t, readFile(t, capPath), 0, 500)
	if len(d.Tees()) != 1 {
		t.Fatal("Tees() changed by shutdown")
	}
	if err := d.Detach("console", "rb"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Detach after Shutdown: %v, want ErrClosed", err)
	}
	if _, err := d.Reload(ctx); err == nil {
		t.Fatal("Reload after Shutdown (and without a file) succeeded")
	}
	if !strings.Contains(logs.String(), "msg=attach tee=console backend=cap") {
		t.Fatalf("no attach record in the log:\n%s", logs)
	}
}

// TestNewFailsStartsNothing: a backend that cannot be opened stops New,
// with an error naming the tee and the backend, and nothing keeps running
// (goleak checks no goroutine is left; the other tee's port is free).
func TestNewFailsStartsNothing(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	writeConfig(t, notDir, "not a directory")
	addr := freePort(t)
	f := newFeeder(t)
	cfg := parse(t, `tees:
  - name: a
    frontend: {type: tcp-connect, address: `+f.addr()+`}
    backends:
      - {name: net, type: tcp-listen, listen: "`+addr+`"}
  - name: b
    frontend: {type: tcp-connect, address: `+f.addr()+`}
    backends:
      - {name: cap, type: file, path: `+filepath.Join(notDir, "x.log")+`}
`)
	r := &reloads{}
	d, err := New(context.Background(), cfg, Options{OnReload: r.record})
	if err == nil {
		d.Shutdown(context.Background())
		t.Fatal("New succeeded with an unwritable capture path")
	}
	if msg := err.Error(); !strings.Contains(msg, "tee b") || !strings.Contains(msg, "backend cap") {
		t.Fatalf("error does not name the tee and backend: %v", err)
	}
	if got := r.list(); !slices.Equal(got, []bool{false}) {
		t.Fatalf("OnReload calls = %v, want [false]", got)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("tee a's listener is still open")
	}
}

// TestAPIOperations drives attach, swap, detach and frontend swap through
// the Daemon methods and checks the running config follows.
func TestAPIOperations(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	pathA, pathB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	d, _, _ := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+pathA+`, on_overflow: block}`))))
	c := f.conn(t)
	stop, wait := streamAsync(c, 0, 3000)
	defer stop()
	ctx := context.Background()

	rb := parse(t, teeYAML("x", f.addr(), indent(`- {name: rb, type: ringbuf, size: 4KiB}`))).Tees[0].Backends[0]
	if err := d.Attach(ctx, "t", rb); err != nil {
		t.Fatal(err)
	}
	if err := d.Attach(ctx, "t", rb); !errors.Is(err, tee.ErrExists) {
		t.Fatalf("second attach of rb: %v, want ErrExists", err)
	}
	if err := d.Attach(ctx, "nope", rb); !errors.Is(err, tee.ErrNotFound) {
		t.Fatalf("attach to an unknown tee: %v, want ErrNotFound", err)
	}
	if got := configNames(d, "t"); !slices.Equal(got, []string{"cap", "rb"}) {
		t.Fatalf("running config backends = %v", got)
	}

	waitFor(t, "output in a.log", func() bool { return fileSize(pathA) > 2000 })
	capB := parse(t, teeYAML("x", f.addr(), indent(`- {name: cap, type: file, path: `+pathB+`, on_overflow: block}`))).Tees[0].Backends[0]
	rep, err := d.Swap(ctx, "t", "cap", capB, tee.SwapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Cut == 0 || rep.Mode != "handover" {
		t.Fatalf("swap report %+v", rep)
	}
	listener := parse(t, teeYAML("x", f.addr(), indent(`- {name: cap, type: tcp-listen, listen: 127.0.0.1:0}`))).Tees[0].Backends[0]
	if _, err := d.Swap(ctx, "t", "cap", listener, tee.SwapOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("swapping a file for a listener: %v, want ErrInvalid", err)
	}
	renamed := *capB
	renamed.Name = "other"
	if _, err := d.Swap(ctx, "t", "cap", &renamed, tee.SwapOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("swap that renames: %v, want ErrInvalid", err)
	}
	unnamed := *capB
	unnamed.Name = ""
	if _, err := d.Swap(ctx, "t", "ghost", &unnamed, tee.SwapOptions{}); !errors.Is(err, tee.ErrNotFound) {
		t.Fatalf("swap of an unknown backend: %v, want ErrNotFound", err)
	}
	if _, err := d.SwapFrontend(ctx, "t", &listener.Device); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a listener as frontend: %v, want ErrInvalid", err)
	}

	if err := d.Detach("t", "rb"); err != nil {
		t.Fatal(err)
	}
	if err := d.Detach("t", "rb"); !errors.Is(err, tee.ErrNotFound) {
		t.Fatalf("second detach: %v, want ErrNotFound", err)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"cap"}) {
		t.Fatalf("engine backends = %v", got)
	}
	var capPath string
	for _, tc := range d.Config().Tees {
		for _, b := range tc.Backends {
			capPath = b.Canonical
		}
	}
	if !strings.Contains(capPath, "b.log") {
		t.Fatalf("running config still has the old capture: %s", capPath)
	}

	n := wait()
	tt, _ := d.Tee("t")
	waitFor(t, "the tee to read everything", func() bool { return tt.Offset() == uint64(n*lineLen) })

	// A frontend swap to a second feeder: the capture continues with it.
	f2 := newFeeder(t)
	fe := parse(t, teeYAML("x", f2.addr(), indent(`- {name: n, type: "null"}`))).Tees[0].Frontend.Device
	frep, err := d.SwapFrontend(ctx, "t", &fe)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(frep.To, f2.addr()) {
		t.Fatalf("frontend swap report %+v", frep)
	}
	c2 := f2.conn(t)
	if stream(c2, n, 100, nil) != 100 {
		t.Fatal("short write to the second feeder")
	}
	waitFor(t, "the second frontend's output", func() bool { return tt.Offset() == uint64((n+100)*lineLen) })
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	all := append(readFile(t, pathA), readFile(t, pathB)...)
	checkLines(t, all, 0, n+100)
	if len(readFile(t, pathB)) == 0 {
		t.Fatal("b.log is empty: the swap happened after the stream ended")
	}
}

// TestReloadCapturePath changes a capture path while the frontend keeps
// producing: the old file followed by the new one is the stream, byte for
// byte.
func TestReloadCapturePath(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	pathA, pathB := filepath.Join(dir, "a.log"), filepath.Join(dir, "b.log")
	yaml := func(p string) string {
		return teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+p+`, on_overflow: block}
- {name: rb, type: ringbuf, size: 4KiB}`))
	}
	d, r, _ := start(t, parse(t, yaml(pathA)))
	c := f.conn(t)
	stop, wait := streamAsync(c, 0, 4000)
	defer stop()
	waitFor(t, "output in a.log", func() bool { return fileSize(pathA) > 4000 })

	rep, err := d.Apply(context.Background(), parse(t, yaml(pathB)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Swapped, []string{"t/cap"}) || len(rep.Attached)+len(rep.Detached)+len(rep.Updated) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if got := r.list(); !slices.Equal(got, []bool{true, true}) {
		t.Fatalf("OnReload calls = %v", got)
	}
	n := wait()
	tt, _ := d.Tee("t")
	waitFor(t, "the tee to read everything", func() bool { return tt.Offset() == uint64(n*lineLen) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a, b := readFile(t, pathA), readFile(t, pathB)
	if len(b) == 0 {
		t.Fatal("nothing reached b.log")
	}
	checkLines(t, append(a, b...), 0, n)
}

// TestReloadAddRemove adds a backend and a tee, removes a backend and
// changes leg options and tee settings in one reload.
func TestReloadAddRemove(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	capPath := filepath.Join(dir, "cap.log")
	before := teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+capPath+`}
- {name: old, type: ringbuf, size: 4KiB}`))
	d, _, logs := start(t, parse(t, before))
	events, cancel := d.Subscribe(64)
	defer cancel()

	after := teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+capPath+`, queue: 1MiB, on_overflow: block}
- {name: new, type: ringbuf, size: 8KiB}`)) + `    input: exclusive
  - name: second
    frontend: {type: tcp-connect, address: ` + f.addr() + `}
    backends:
      - {name: rb, type: ringbuf}
`
	rep, err := d.Apply(context.Background(), parse(t, after))
	if err != nil {
		t.Fatal(err)
	}
	want := ReloadReport{
		Started:  []string{"second"},
		Attached: []string{"t/new", "second/rb"},
		Detached: []string{"t/old"},
		Updated:  []string{"t (settings)", "t/cap"},
	}
	if !slices.Equal(rep.Started, want.Started) || !slices.Equal(rep.Attached, want.Attached) ||
		!slices.Equal(rep.Detached, want.Detached) || !slices.Equal(rep.Updated, want.Updated) ||
		len(rep.Swapped)+len(rep.Stopped)+len(rep.Frontend) != 0 {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"cap", "new"}) {
		t.Fatalf("backends of t = %v", got)
	}
	if got := backendNames(t, d, "second"); !slices.Equal(got, []string{"rb"}) {
		t.Fatalf("backends of second = %v", got)
	}
	tt, _ := d.Tee("t")
	st := tt.Stats()
	if st.InputMode != "exclusive" {
		t.Fatalf("input mode %q, want exclusive", st.InputMode)
	}
	for _, b := range st.Backends {
		if b.Name == "cap" && b.Overflow != "block" {
			t.Fatalf("cap's policy is %q, want block", b.Overflow)
		}
	}
	// The merged event stream includes the tee the reload started.
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for !seen["second"] || !seen["t"] {
		select {
		case e := <-events:
			seen[e.Tee] = true
		case <-timeout:
			t.Fatalf("events seen from %v only", seen)
		}
	}

	// Removing the second tee again stops it.
	rep, err = d.Apply(context.Background(), parse(t, teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+capPath+`, queue: 1MiB, on_overflow: block}
- {name: new, type: ringbuf, size: 8KiB}`))+"    input: exclusive\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Stopped, []string{"second"}) || len(rep.Attached)+len(rep.Detached)+len(rep.Updated)+len(rep.Swapped) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if _, ok := d.Tee("second"); ok {
		t.Fatal("tee second still runs")
	}
	if l := logs.String(); !strings.Contains(l, "msg=reloaded") || !strings.Contains(l, "tee=second") {
		t.Fatalf("reload not logged:\n%s", l)
	}
}

// TestReloadListenerMove moves a tcp-listen backend to another port while
// a client is connected: the client stays and keeps receiving without a
// gap, the new port accepts, the old one no longer does. Then a change of
// options on the same port rebinds it, again keeping the client.
func TestReloadListenerMove(t *testing.T) {
	f := newFeeder(t)
	addr1, addr2 := freePort(t), freePort(t)
	yaml := func(addr, extra string) string {
		return teeYAML("t", f.addr(), indent(`- {name: net, type: tcp-listen, listen: "`+addr+`"`+extra+`}`))
	}
	d, _, _ := start(t, parse(t, yaml(addr1, "")))
	c := f.conn(t)
	cl := dial(t, addr1)
	tt, _ := d.Tee("t")
	waitFor(t, "the client to be attached", func() bool { return len(tt.Stats().Legs) == 1 })
	stop, wait := streamAsync(c, 0, 6000)
	defer stop()
	waitFor(t, "the client to receive", func() bool { return len(cl.bytes()) > 2000 })

	rep, err := d.Apply(context.Background(), parse(t, yaml(addr2, "")))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Swapped, []string{"t/net"}) {
		t.Fatalf("report %+v", rep)
	}
	if c, err := net.DialTimeout("tcp", addr1, time.Second); err == nil {
		c.Close()
		t.Fatal("the old address still accepts")
	}
	cl2 := dial(t, addr2)
	waitFor(t, "the new client to receive", func() bool { return len(cl2.bytes()) > 100 })

	// Same port, other options: the listener is rebound.
	rep, err = d.Apply(context.Background(), parse(t, yaml(addr2, ", max_clients: 5")))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Swapped, []string{"t/net"}) {
		t.Fatalf("report %+v", rep)
	}
	cl3 := dial(t, addr2)
	waitFor(t, "the third client to receive", func() bool { return len(cl3.bytes()) > 100 })

	n := wait()
	waitFor(t, "the first client to get everything", func() bool {
		b := cl.bytes()
		return len(b) > 0 && strings.HasSuffix(string(b), string(lineAt(n-1)))
	})
	if err := cl.failed(); err != nil {
		t.Fatalf("the first client was disconnected: %v", err)
	}
	first, got := checkContiguous(t, cl.bytes())
	if first+got != n {
		t.Fatalf("first client got lines %d..%d, want up to %d", first, first+got-1, n-1)
	}
	if st := tt.Stats(); len(st.Legs) != 3 {
		t.Fatalf("legs = %d, want 3 clients", len(st.Legs))
	}
}

func lineAt(i int) []byte { return fmt.Appendf(nil, "%08d\n", i) }

// TestReloadFrontend changes the frontend: the capture gets the first
// frontend's output, then the second's; a connected client stays.
func TestReloadFrontend(t *testing.T) {
	dir := t.TempDir()
	f1, f2 := newFeeder(t), newFeeder(t)
	capPath := filepath.Join(dir, "cap.log")
	addr := freePort(t)
	backends := indent(`- {name: cap, type: file, path: ` + capPath + `, on_overflow: block}
- {name: net, type: tcp-listen, listen: "` + addr + `"}`)
	d, _, logs := start(t, parse(t, teeYAML("t", f1.addr(), backends)))
	c1 := f1.conn(t)
	cl := dial(t, addr)
	tt, _ := d.Tee("t")
	waitFor(t, "the client to be attached", func() bool { return len(tt.Stats().Legs) == 2 })
	stream(c1, 0, 300, nil)
	waitFor(t, "the first frontend's output", func() bool { return tt.Offset() == 300*lineLen })

	rep, err := d.Apply(context.Background(), parse(t, teeYAML("t", f2.addr(), backends)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Frontend, []string{"t"}) || len(rep.Swapped)+len(rep.Attached)+len(rep.Detached) != 0 {
		t.Fatalf("report %+v", rep)
	}
	c2 := f2.conn(t)
	stream(c2, 300, 300, nil)
	waitFor(t, "the second frontend's output", func() bool { return tt.Offset() == 600*lineLen })
	waitFor(t, "the client to get both", func() bool { return len(cl.bytes()) == 600*lineLen })
	checkLines(t, cl.bytes(), 0, 600)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	checkLines(t, readFile(t, capPath), 0, 600)
	if !strings.Contains(logs.String(), "msg=frontend-swap tee=t") {
		t.Fatalf("frontend swap not logged:\n%s", logs)
	}
}

// TestReloadInvalidConfig: a file with an error changes nothing, and the
// error lists the problem with its position.
func TestReloadInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	capPath := filepath.Join(dir, "cap.log")
	cfgPath := filepath.Join(dir, "chartee.yaml")
	good := teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+capPath+`, on_overflow: block}`))
	writeConfig(t, cfgPath, good)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	d, r, _ := start(t, cfg)
	d.SetConfigPath(cfgPath)
	before := d.Config()

	writeConfig(t, cfgPath, good+"      - {name: rb, type: ringbuf, sise: 4KiB}\n")
	_, err = d.Reload(context.Background())
	var list config.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Reload error %v (%T), want a config.ErrorList", err, err)
	}
	if !strings.Contains(err.Error(), cfgPath+":") || !strings.Contains(err.Error(), "sise") {
		t.Fatalf("error does not point at the problem: %v", err)
	}
	if got := r.list(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("OnReload calls = %v, want [true false]", got)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"cap"}) {
		t.Fatalf("backends = %v", got)
	}
	after := d.Config()
	if len(after.Tees) != 1 || len(after.Tees[0].Backends) != 1 || after.Tees[0].Backends[0] != before.Tees[0].Backends[0] {
		t.Fatal("the running config changed")
	}
	// The tee still works.
	c := f.conn(t)
	stream(c, 0, 100, nil)
	waitFor(t, "the capture", func() bool { return fileSize(capPath) == 100*lineLen })

	// Fixing the file makes the next reload work.
	writeConfig(t, cfgPath, good+"      - {name: rb, type: ringbuf, size: 4KiB}\n")
	rep, err := d.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Attached, []string{"t/rb"}) || rep.File != cfgPath {
		t.Fatalf("report %+v", rep)
	}
	if got := r.list(); !slices.Equal(got, []bool{true, false, true}) {
		t.Fatalf("OnReload calls = %v", got)
	}
}

// TestReloadUnwritableCapture: a config whose new capture path cannot be
// opened changes nothing at all — not even the parts that could have been
// applied — and returns the error.
func TestReloadUnwritableCapture(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	capPath := filepath.Join(dir, "cap.log")
	notDir := filepath.Join(dir, "plain")
	writeConfig(t, notDir, "not a directory")
	addr := freePort(t)
	d, r, logs := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+capPath+`, on_overflow: block}`))))
	c := f.conn(t)
	before := d.Config()

	bad := teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+filepath.Join(notDir, "cap.log")+`, on_overflow: block}
- {name: rb, type: ringbuf, size: 4KiB}
- {name: net, type: tcp-listen, listen: "`+addr+`"}`)) + `    input: exclusive
  - name: other
    frontend: {type: tcp-connect, address: ` + f.addr() + `}
`
	rep, err := d.Apply(context.Background(), parse(t, bad))
	if err == nil {
		t.Fatalf("Apply succeeded: %+v", rep)
	}
	if !strings.Contains(err.Error(), "tee t") || !strings.Contains(err.Error(), "backend cap") {
		t.Fatalf("error does not name tee and backend: %v", err)
	}
	if len(rep.Started)+len(rep.Attached)+len(rep.Swapped)+len(rep.Updated)+len(rep.Detached) != 0 {
		t.Fatalf("report says something changed: %+v", rep)
	}
	if got := r.list(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("OnReload calls = %v", got)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"cap"}) {
		t.Fatalf("backends = %v", got)
	}
	if _, ok := d.Tee("other"); ok {
		t.Fatal("tee other was started")
	}
	if tt, _ := d.Tee("t"); tt.Stats().InputMode != "shared" {
		t.Fatal("the input mode changed")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("the new listener was left open")
	}
	after := d.Config()
	if len(after.Tees) != 1 || after.Tees[0].Backends[0] != before.Tees[0].Backends[0] {
		t.Fatal("the running config changed")
	}
	stream(c, 0, 100, nil)
	waitFor(t, "the old capture to keep going", func() bool { return fileSize(capPath) == 100*lineLen })
	if !strings.Contains(logs.String(), "reload failed") {
		t.Fatalf("failure not logged:\n%s", logs)
	}
}

// TestReloadKeepsAPIChanges: a backend attached through the API is part
// of what runs, so a reload of a file without it detaches it, and a
// reload of the same file twice changes nothing the second time.
func TestReloadKeepsAPIChanges(t *testing.T) {
	f := newFeeder(t)
	cfg := parse(t, teeYAML("t", f.addr(), indent(`- {name: rb, type: ringbuf, size: 4KiB}`)))
	d, _, _ := start(t, cfg)
	extra := parse(t, teeYAML("x", f.addr(), indent(`- {name: extra, type: "null"}`))).Tees[0].Backends[0]
	if err := d.Attach(context.Background(), "t", extra); err != nil {
		t.Fatal(err)
	}
	rep, err := d.Apply(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Detached, []string{"t/extra"}) {
		t.Fatalf("report %+v", rep)
	}
	rep, err = d.Apply(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Detached)+len(rep.Attached)+len(rep.Swapped)+len(rep.Updated)+len(rep.Frontend) != 0 {
		t.Fatalf("a reload of the running config changed something: %+v", rep)
	}
}

// TestReopen renames a capture file away (as logrotate does) and reopens:
// later output goes to a new file at the configured path.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	capPath := filepath.Join(dir, "cap.log")
	d, _, _ := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: cap, type: file, path: `+capPath+`, on_overflow: block}`))))
	c := f.conn(t)
	stream(c, 0, 100, nil)
	waitFor(t, "the capture", func() bool { return fileSize(capPath) == 100*lineLen })
	rotated := capPath + ".1"
	if err := os.Rename(capPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := d.Reopen(); err != nil {
		t.Fatal(err)
	}
	stream(c, 100, 50, nil)
	waitFor(t, "the new capture", func() bool { return fileSize(capPath) == 50*lineLen })
	checkLines(t, readFile(t, rotated), 0, 100)
	checkLines(t, readFile(t, capPath), 100, 50)
}

// TestReloadWithoutFile: a daemon started without a file cannot reload,
// and says why.
func TestReloadWithoutFile(t *testing.T) {
	f := newFeeder(t)
	d, r, _ := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: n, type: "null"}`))))
	_, err := d.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no configuration file") {
		t.Fatalf("Reload: %v", err)
	}
	if got := r.list(); !slices.Equal(got, []bool{true, false}) {
		t.Fatalf("OnReload calls = %v", got)
	}
}

// TestSubscribeCancel: cancelling a subscription closes its channel, and
// Shutdown closes the ones still open.
func TestSubscribeCancel(t *testing.T) {
	f := newFeeder(t)
	d, _, _ := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: n, type: "null"}`))))
	ev1, cancel1 := d.Subscribe(4)
	ev2, _ := d.Subscribe(4)
	cancel1()
	cancel1()
	for range ev1 {
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ev2:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("Shutdown did not close the subscription")
		}
	}
}

// TestReloadRenameAndRetype: a listener renamed on the same fixed port can
// only bind once the old one is gone, so it is opened after the detach; a
// capture that becomes a listener is detached and attached; a new
// failover list is applied in place.
func TestReloadRenameAndRetype(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	addr, addr2 := freePort(t), freePort(t)
	before := teeYAML("t", f.addr(), indent(`- {name: net, type: tcp-listen, listen: "`+addr+`"}
- {name: cap, type: file, path: `+filepath.Join(dir, "cap.log")+`}`))
	d, _, _ := start(t, parse(t, before))
	after := strings.Replace(teeYAML("t", f.addr(), indent(`- {name: net2, type: tcp-listen, listen: "`+addr+`"}
- {name: cap, type: tcp-listen, listen: "`+addr2+`"}`)), "      reconnect:", "      failover:\n        - {type: tcp-connect, address: "+f.addr()+"}\n      reconnect:", 1)
	rep, err := d.Apply(context.Background(), parse(t, after))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Detached, []string{"t/cap", "t/net"}) || !slices.Equal(rep.Attached, []string{"t/net2", "t/cap"}) ||
		!slices.Equal(rep.Updated, []string{"t (failover)"}) || len(rep.Swapped) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"cap", "net2"}) {
		t.Fatalf("backends = %v", got)
	}
	for _, a := range []string{addr, addr2} {
		c, err := net.DialTimeout("tcp", a, time.Second)
		if err != nil {
			t.Fatalf("%s does not accept: %v", a, err)
		}
		c.Close()
	}
	if got := configNames(d, "t"); !slices.Equal(got, []string{"cap", "net2"}) {
		t.Fatalf("running config = %v", got)
	}
	if fo := d.Config().Tees[0].Frontend.Failover; len(fo) != 1 {
		t.Fatalf("running failover list = %v", fo)
	}
}

// TestAPISwapListener swaps listening backends through the API: a TCP
// listener to a new port, a unix listener to a new path and then to new
// options on the same path. Connected clients stay connected throughout.
func TestAPISwapListener(t *testing.T) {
	dir := t.TempDir()
	f := newFeeder(t)
	addr1, addr2 := freePort(t), freePort(t)
	sock1, sock2 := filepath.Join(dir, "a.sock"), filepath.Join(dir, "b.sock")
	d, _, _ := start(t, parse(t, teeYAML("t", f.addr(), indent(`- {name: net, type: tcp-listen, listen: "`+addr1+`"}
- {name: local, type: unix-listen, path: `+sock1+`}`))))
	c := f.conn(t)
	cl := dial(t, addr1)
	uc, err := net.Dial("unix", sock1)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	tt, _ := d.Tee("t")
	waitFor(t, "both clients", func() bool { return len(tt.Stats().Legs) == 2 })
	ctx := context.Background()
	spec := func(line string) *config.Backend {
		b := parse(t, teeYAML("x", f.addr(), indent(line))).Tees[0].Backends[0]
		b.Name = ""
		return b
	}

	rep, err := d.Swap(ctx, "t", "net", spec(`- {name: x, type: tcp-listen, listen: "`+addr2+`"}`), tee.SwapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Backend != "net" || rep.Mode != "listener" {
		t.Fatalf("report %+v", rep)
	}
	if _, err := d.Swap(ctx, "t", "local", spec(`- {name: x, type: unix-listen, path: `+sock2+`}`), tee.SwapOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock1); err == nil {
		t.Fatal("the old socket file is still there")
	}
	if _, err := d.Swap(ctx, "t", "local", spec(`- {name: x, type: unix-listen, path: `+sock2+`, max_clients: 3}`), tee.SwapOptions{}); err != nil {
		t.Fatal(err)
	}
	uc2, err := net.Dial("unix", sock2)
	if err != nil {
		t.Fatal(err)
	}
	defer uc2.Close()
	cl2 := dial(t, addr2)
	waitFor(t, "all four clients", func() bool { return len(tt.Stats().Legs) == 4 })

	stream(c, 0, 200, nil)
	waitFor(t, "the first client's data", func() bool { return len(cl.bytes()) == 200*lineLen })
	waitFor(t, "the second client's data", func() bool { return len(cl2.bytes()) == 200*lineLen })
	checkLines(t, cl.bytes(), 0, 200)
	got := make([]byte, 200*lineLen)
	uc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(uc, got); err != nil {
		t.Fatalf("the first unix client: %v", err)
	}
	checkLines(t, got, 0, 200)
	var canon []string
	for _, b := range d.Config().Tees[0].Backends {
		canon = append(canon, b.Canonical)
	}
	if !strings.Contains(canon[0], addr2) || !strings.Contains(canon[1], "b.sock") || !strings.Contains(canon[1], `"max_clients":3`) {
		t.Fatalf("running config: %v", canon)
	}
}

// TestApplyWarningsAndChecks: what a reload cannot change live is
// reported as a warning, and an impossible config is refused.
func TestApplyWarningsAndChecks(t *testing.T) {
	f := newFeeder(t)
	base := teeYAML("t", f.addr(), indent(`- {name: rb, type: ringbuf, size: 4KiB}`))
	d, _, _ := start(t, parse(t, base))
	changed := "metrics: {listen: \"127.0.0.1:0\"}\n" + base + "    scrollback: 1MiB\n"
	rep, err := d.Apply(context.Background(), parse(t, changed))
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(rep.Warnings, "\n")
	if !strings.Contains(w, "metrics") || !strings.Contains(w, "tee t: scrollback") {
		t.Fatalf("warnings = %q", rep.Warnings)
	}
	if _, err := d.Apply(context.Background(), nil); err == nil {
		t.Fatal("Apply(nil) succeeded")
	}
	dup := parse(t, base)
	dup.Tees = append(dup.Tees, dup.Tees[0])
	if _, err := d.Apply(context.Background(), dup); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("Apply with a duplicate tee: %v", err)
	}
	if got := backendNames(t, d, "t"); !slices.Equal(got, []string{"rb"}) {
		t.Fatalf("backends = %v", got)
	}
}

// TestReloadRevivesFailedBackend: a single-stream backend whose peer hung
// up has no leg left; reloading the same config connects it again.
func TestReloadRevivesFailedBackend(t *testing.T) {
	f := newFeeder(t)
	peer := newFeeder(t)
	cfg := parse(t, teeYAML("t", f.addr(), indent(`- {name: up, type: tcp-connect, address: "`+peer.addr()+`"}`)))
	d, _, _ := start(t, cfg)
	tt, _ := d.Tee("t")
	pc := peer.conn(t)
	waitFor(t, "the leg", func() bool { return len(tt.Stats().Legs) == 1 })
	pc.Close()
	waitFor(t, "the leg to fail", func() bool { return len(tt.Stats().Legs) == 0 })
	rep, err := d.Apply(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Swapped, []string{"t/up"}) {
		t.Fatalf("report %+v", rep)
	}
	pc2 := peer.conn(t)
	waitFor(t, "the new leg", func() bool { return len(tt.Stats().Legs) == 1 })
	c := f.conn(t)
	stream(c, 0, 10, nil)
	got := make([]byte, 10*lineLen)
	pc2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(pc2, got); err != nil {
		t.Fatal(err)
	}
	checkLines(t, got, 0, 10)
}

// TestDemoPtyReload runs the demo frontend into a pty backend and moves
// the pty's link with a reload: the swapped-in pty gets the output, the
// old link is gone.
func TestDemoPtyReload(t *testing.T) {
	dir := t.TempDir()
	link1, link2 := filepath.Join(dir, "console1"), filepath.Join(dir, "console2")
	yaml := func(link string) string {
		return `tees:
  - name: demo
    frontend: {type: demo, heartbeat: 20ms}
    backends:
      - {name: term, type: pty, link: ` + link + `}
`
	}
	d, _, _ := start(t, parse(t, yaml(link1)))
	readSome := func(link string) {
		t.Helper()
		f, err := os.OpenFile(link, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 256)
		n, err := f.Read(b)
		if err != nil || n == 0 {
			t.Fatalf("reading %s: %d bytes, %v", link, n, err)
		}
	}
	readSome(link1)
	rep, err := d.Apply(context.Background(), parse(t, yaml(link2)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Swapped, []string{"demo/term"}) {
		t.Fatalf("report %+v", rep)
	}
	readSome(link2)
	if _, err := os.Lstat(link1); err == nil {
		t.Fatal("the old pty's link is still there")
	}
}

// TestApplyWarnsWebChange: the browser console's settings are read at
// start; a reload that changes them says so.
func TestApplyWarnsWebChange(t *testing.T) {
	f := newFeeder(t)
	users := "access:\n  users:\n    - {name: alice, password: \"$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$2QkZOTRIxTc6GsTtwq0AbTgF3lrWhq1E7EaJtDhMBXI\"}\n"
	base := users + "web: {listen: \"127.0.0.1:0\"}\n" + teeYAML("t", f.addr(), "")
	d, _, _ := start(t, parse(t, base))
	moved := strings.Replace(base, "127.0.0.1:0", "127.0.0.1:8443", 1)
	rep, err := d.Apply(context.Background(), parse(t, moved))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(rep.Warnings, "\n"), "web: changes take effect at the next restart") {
		t.Fatalf("warnings = %q", rep.Warnings)
	}
	rep, err = d.Apply(context.Background(), parse(t, moved))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(rep.Warnings, "\n"), "web:") {
		t.Fatalf("unchanged web section warned: %q", rep.Warnings)
	}
}
