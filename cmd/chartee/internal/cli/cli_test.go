package cli

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
	"pgregory.net/rapid"

	"chartee/access"
	"chartee/cmd/chartee/internal/api"
	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
)

func TestVersion(t *testing.T) {
	r := runCmd(context.Background(), nil, "version")
	if r.code != exitOK || !strings.HasPrefix(r.stdout, "chartee ") || len(strings.TrimSpace(r.stdout)) <= len("chartee ") {
		t.Fatalf("version: code %d, stdout %q", r.code, r.stdout)
	}
	old := Version
	Version = "v9.8.7"
	defer func() { Version = old }()
	if r := runCmd(context.Background(), nil, "version"); r.stdout != "chartee v9.8.7\n" {
		t.Fatalf("version with Version set: %q", r.stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"help"}, exitOK, "Usage:"},
		{[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		{[]string{"run", "-c", "x.yaml", "--port", "7000"}, exitUsage, "--port applies to the built-in demo only"},
		{[]string{"run", "--port", "70000"}, exitUsage, "want 0 to 65535"},
		{[]string{"run", "a.yaml", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"run", "--bogus"}, exitUsage, "flag provided but not defined: -bogus"},
		{[]string{"check"}, exitUsage, "chartee check: no config file given: chartee check FILE (or -c FILE)"},
		{[]string{"check", "a.yaml", "b.yaml"}, exitUsage, `one config file at a time: unexpected "b.yaml"`},
		{[]string{"check", "-h"}, exitOK, "Usage: chartee check"},
		{[]string{"ctl"}, exitUsage, "Usage: chartee ctl"},
		{[]string{"ctl", "-h"}, exitOK, "Usage: chartee ctl"},
		{[]string{"ctl", "jump"}, exitUsage, `unknown command "jump"`},
		{[]string{"ctl", "show"}, exitUsage, "usage: chartee ctl show TEE"},
		{[]string{"ctl", "list", "extra"}, exitUsage, "usage: chartee ctl list"},
		{[]string{"ctl", "list", "--mode", "overlap"}, exitUsage, "flag --mode applies to swap only"},
		{[]string{"ctl", "show", "t", "-f"}, exitUsage, "flag -f applies to tail only"},
		{[]string{"ctl", "--url", "http://127.0.0.1:1", "list"}, exitUsage, "--url needs --token-file"},
		{[]string{"ctl", "--token-file", "x", "list"}, exitUsage, "--token-file goes with --url"},
		{[]string{"ctl", "--socket", "/x", "--url", "http://127.0.0.1:1", "list"}, exitUsage, "give one"},
	} {
		r := runCmd(ctx, nil, tc.args...)
		if r.code != tc.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", tc.args, r.code, tc.code, r.stderr)
		}
		mustContain(t, strings.Join(tc.args, " "), r.stdout+r.stderr, tc.want)
	}
}

// A spec is checked before the daemon is asked: a bad one never leaves
// the client, and its message names the column.
func TestCtlBadSpecNeedsNoDaemon(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "none.sock")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"attach", "t", "fille,name=a"}, `did you mean "file"?`},
		{[]string{"attach", "t", "file,path=/tmp/x"}, "name: required"},
		{[]string{"swap", "t", "b", "file,path=/tmp/x", "--mode", "sideways"}, `swap mode "sideways"`},
		{[]string{"swap-frontend", "t", "tcp-listen,listen=127.0.0.1:0"}, "cannot be a frontend"},
		{[]string{"swap-frontend", "t", "demo,input=true"}, `unknown key`},
	} {
		r := runCmd(context.Background(), nil, append([]string{"ctl", "--socket", sock}, tc.args...)...)
		if r.code == exitOK {
			t.Errorf("%q: exit 0", tc.args)
		}
		mustContain(t, strings.Join(tc.args, " "), r.stderr, tc.want)
		if strings.Contains(r.stderr, "no chartee daemon") {
			t.Errorf("%q: the daemon was asked: %s", tc.args, r.stderr)
		}
	}
}

func TestCtlNoDaemon(t *testing.T) {
	sock := filepath.Join(shortTempDir(t), "none.sock")
	r := runCmd(context.Background(), nil, "ctl", "--socket", sock, "list")
	if r.code != exitError {
		t.Fatalf("exit %d", r.code)
	}
	mustContain(t, "stderr", r.stderr, "chartee ctl: no chartee daemon at "+sock+" (no such file or directory)\n",
		"hint: start one (chartee run FILE, or chartee for the demo)")
	if strings.Contains(r.stderr, "http://") || strings.Contains(r.stderr, "dial unix") {
		t.Errorf("Go internals in the message:\n%s", r.stderr)
	}
	// A stale socket (nobody listening) is no daemon either.
	stale := filepath.Join(shortTempDir(t), "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	r = runCmd(context.Background(), nil, "ctl", "--socket", stale, "list")
	mustContain(t, "stale socket", r.stderr, "no chartee daemon at "+stale+" (connection refused)")
	// Over TCP too.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + tcp.Addr().String()
	tcp.Close()
	tok := filepath.Join(shortTempDir(t), "tok")
	writeFile(t, tok, "x")
	r = runCmd(context.Background(), nil, "ctl", "--url", url, "--token-file", tok, "list")
	mustContain(t, "tcp", r.stderr, "no chartee daemon at "+url+" (connection refused)")
}

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		pos      []string
		follow   bool
		mode     string
		parseErr bool
	}{
		{[]string{"tail", "t", "r", "-f"}, []string{"tail", "t", "r"}, true, "", false},
		{[]string{"-f", "tail", "t", "r"}, []string{"tail", "t", "r"}, true, "", false},
		{[]string{"swap", "t", "--mode", "overlap", "b", "spec"}, []string{"swap", "t", "b", "spec"}, false, "overlap", false},
		{[]string{"swap", "--mode=overlap", "t", "--", "-b", "-f"}, []string{"swap", "t", "-b", "-f"}, false, "overlap", false},
		{[]string{"--", "-f"}, []string{"-f"}, false, "", false},
		{nil, nil, false, "", false},
		{[]string{"x", "--nope"}, nil, false, "", true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		follow := fs.Bool("f", false, "")
		mode := fs.String("mode", "", "")
		pos, err := parseInterspersed(fs, tc.args)
		if (err != nil) != tc.parseErr {
			t.Errorf("%q: err %v", tc.args, err)
			continue
		}
		if err != nil {
			continue
		}
		if !slices.Equal(pos, tc.pos) || *follow != tc.follow || *mode != tc.mode {
			t.Errorf("%q: pos %q follow %v mode %q; want %q %v %q", tc.args, pos, *follow, *mode, tc.pos, tc.follow, tc.mode)
		}
	}
}

func TestCliHasKey(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want bool
	}{
		{"file,name=a,path=/x", true},
		{"file,path=/x,name=a", true},
		{"file,path=/x", false},
		{"file,banner=x,,name=y", false}, // ",," is a comma inside banner
		{"file,banner=x,,,name=y", true},
		{"name=a", true},
		{"file,names=a", false},
		{"", false},
	} {
		if got := cliHasKey(tc.spec, "name"); got != tc.want {
			t.Errorf("cliHasKey(%q) = %v, want %v", tc.spec, got, tc.want)
		}
	}
}

// swapBody lends the swapped backend's name to a spec that has none; the
// config layer then sees the same backend.
func TestSwapBodyAddsName(t *testing.T) {
	body, err := swapBody("file,path=/tmp/a b.log", "cap")
	if err != nil {
		t.Fatal(err)
	}
	b, err := config.DecodeBackendJSON(body)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "cap" || b.Type != "file" {
		t.Fatalf("decoded %q %q", b.Name, b.Type)
	}
	if _, err := swapBody("file,name=other,path=/tmp/x", "cap"); err != nil {
		t.Fatalf("a spec naming its backend is passed on as it is (the API judges it): %v", err)
	}
}

// A frontend spec, given inline or as a file, becomes a body the API
// decodes to the same device.
func TestFrontendSpecBody(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "fe.yaml")
	writeFile(t, file, "type: demo\nhostname: fromfile\nheartbeat: 2s\n")
	for _, spec := range []string{"demo,hostname=fromcli,heartbeat=2s", "@" + file} {
		body, err := config.DeviceSpecToJSON(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		d, err := config.DecodeDeviceJSON(body)
		if err != nil {
			t.Fatalf("%s: the API would refuse %s: %v", spec, body, err)
		}
		if d.Type != "demo" || !strings.Contains(d.Canonical, "2s") {
			t.Fatalf("%s: decoded %q %q", spec, d.Type, d.Canonical)
		}
	}
}

// Substituting any path into the demo keeps it one YAML string.
func TestSubstituteProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.String().Draw(t, "value")
		if !isYAMLSafe(v) {
			t.Skip("YAML cannot carry this string at all")
		}
		doc := substitute("a: @@X@@\nb: @@X@@\n", map[string]string{"X": v})
		var got map[string]string
		if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if got["a"] != v || got["b"] != v {
			t.Fatalf("%q came back as %q", v, got)
		}
	})
}

// isYAMLSafe excludes invalid UTF-8, which no YAML document can hold (and
// which os.MkdirTemp never makes).
func isYAMLSafe(s string) bool { return utf8.ValidString(s) }

func TestDemoConfigParses(t *testing.T) {
	xdg := t.TempDir()
	tmp := filepath.Join(t.TempDir(), "dir with space")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp)
	s, err := prepareDemo(0, mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg}), false)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(s.Dir)
	if !strings.HasPrefix(s.Dir, tmp) {
		t.Fatalf("demo dir %s is not under $TMPDIR %s", s.Dir, tmp)
	}
	cfg, err := config.Parse(demoFile, s.YAML)
	if err != nil {
		t.Fatalf("the embedded demo does not parse: %v", err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("the demo has warnings: %v", cfg.Warnings)
	}
	if cfg.Control.Socket != filepath.Join(xdg, "chartee-demo.sock") {
		t.Errorf("socket %q", cfg.Control.Socket)
	}
	if len(cfg.Tees) != 1 || cfg.Tees[0].Frontend.Type != "demo" {
		t.Fatalf("tees: %+v", cfg.Tees)
	}
	types := map[string]string{}
	for _, b := range cfg.Tees[0].Backends {
		types[b.Name] = b.Type
		if b.Type == "file" && !strings.Contains(b.Canonical, s.Capture) {
			t.Errorf("capture %q not in %s", s.Capture, b.Canonical)
		}
		if b.Type == "tcp-listen" && !strings.Contains(b.Canonical, "127.0.0.1:0") {
			t.Errorf("telnet listener: %s", b.Canonical)
		}
	}
	want := map[string]string{"telnet": "tcp-listen", "recent": "ringbuf", "capture": "file"}
	if len(types) != len(want) {
		t.Fatalf("backends %v, want %v", types, want)
	}
	for k, v := range want {
		if types[k] != v {
			t.Errorf("backend %s: %q, want %q", k, types[k], v)
		}
	}
	if strings.Contains(string(s.YAML), "@@SOCKET@@") || strings.Contains(string(s.YAML), "@@TELNET@@") || strings.Contains(string(s.YAML), "@@CAPTURE@@") {
		t.Errorf("placeholder left:\n%s", s.YAML)
	}
}

// The default port, when taken, gives way to a free one with a note.
func TestDemoPortInUse(t *testing.T) {
	xdg := t.TempDir()
	if !tcpPortFree(demoDefaultPort) {
		// Someone holds 7000 already: that is the case under test.
		s, err := prepareDemo(-1, mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg}), false)
		if err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(s.Dir)
		if s.Telnet != "127.0.0.1:0" || len(s.Notes) == 0 {
			t.Fatalf("telnet %q notes %q", s.Telnet, s.Notes)
		}
		return
	}
	s, err := prepareDemo(-1, mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg}), false)
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(s.Dir)
	if s.Telnet != "127.0.0.1:"+strconv.Itoa(demoDefaultPort) {
		t.Fatalf("free default port not used: %q", s.Telnet)
	}
}

func TestDemoSocketPath(t *testing.T) {
	xdg := t.TempDir()
	got, err := demoSocketPath(mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg}), true)
	if err != nil || got != filepath.Join(xdg, "chartee-demo.sock") {
		t.Fatalf("with XDG_RUNTIME_DIR: %q %v", got, err)
	}

	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	noXDG := mapEnv(nil)
	if _, err := demoSocketPath(noXDG, false); err == nil {
		t.Fatal("without create, a missing directory is an error")
	}
	got, err = demoSocketPath(noXDG, true)
	dir := filepath.Join(tmp, "chartee-"+strconv.Itoa(os.Getuid()))
	if err != nil || got != filepath.Join(dir, "demo.sock") {
		t.Fatalf("without XDG_RUNTIME_DIR: %q %v", got, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("private dir: %v %v", fi, err)
	}
	// A directory others can write to is refused: they could plant a
	// socket there.
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := demoSocketPath(noXDG, true); err == nil || !strings.Contains(err.Error(), "open to other users") {
		t.Fatalf("open dir: %v", err)
	}
	os.Remove(dir)
	if err := os.Symlink(t.TempDir(), dir); err != nil {
		t.Fatal(err)
	}
	if _, err := demoSocketPath(noXDG, true); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("symlink: %v", err)
	}
}

func TestSocketPathResolution(t *testing.T) {
	xdg := t.TempDir()
	// The packaged socket lives in a directory of the test's: whether a
	// real daemon runs on this machine changes nothing.
	system := filepath.Join(t.TempDir(), "control.sock")
	a := &app{getenv: mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg}), systemSocket: system}
	if got := a.socketPath("/flag.sock"); got != "/flag.sock" {
		t.Errorf("flag: %q", got)
	}
	a.getenv = mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg, "CHARTEE_SOCKET": "/env.sock"})
	if got := a.socketPath(""); got != "/env.sock" {
		t.Errorf("env: %q", got)
	}
	a.getenv = mapEnv(map[string]string{"XDG_RUNTIME_DIR": xdg})
	if got := a.socketPath(""); got != system {
		t.Errorf("no demo running: %q, want %q", got, system)
	}
	demo := filepath.Join(xdg, "chartee-demo.sock")
	writeFile(t, demo, "")
	if got := a.socketPath(""); got != demo {
		t.Errorf("demo: %q, want %q", got, demo)
	}
	// A packaged daemon's socket wins over a demo's.
	writeFile(t, system, "")
	if got := a.socketPath(""); got != system {
		t.Errorf("packaged daemon and demo: %q, want %q", got, system)
	}
	// Unset, the packaged default is the documented path.
	if got := (&app{}).defaultSocket(); got != "/run/chartee/control.sock" {
		t.Errorf("default socket %q", got)
	}
}

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	if _, err := readToken(""); err == nil {
		t.Error("no token file: no error")
	}
	if _, err := readToken(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	writeFile(t, empty, " \n\t\n")
	if _, err := readToken(empty); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Errorf("empty: %v", err)
	}
	ok := filepath.Join(dir, "ok")
	writeFile(t, ok, "  s3cret\n")
	if tok, err := readToken(ok); err != nil || tok != "s3cret" {
		t.Errorf("ok: %q %v", tok, err)
	}
}

func sampleStatus() api.TeeStatus {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := api.TeeStatus{Line: api.LineStatus{Baud: 9600, DataBits: 7, Parity: "even", StopBits: "2", Flow: "rtscts"}}
	st.Name = "router1"
	st.Offset = 123456
	st.InputMode = "exclusive"
	st.WriteLock = "telnet#2"
	st.Frontend = tee.FrontendStats{Up: false, Device: "serial /dev/ttyUSB1", Candidate: 1, LastError: "read: EOF", BytesOut: 123456, Reconnects: 3, Failovers: 1}
	st.Backends = []tee.BackendStats{
		{Name: "telnet", Source: "127.0.0.1:7001", Queue: 256 << 10, Input: true, Overflow: "drop", Legs: 2, BytesOut: 1000},
		{Name: "capture", Device: "file /var/log/c.log (raw, out)", Queue: 1 << 20, Overflow: "block", Legs: 1, BytesOut: 123456},
	}
	st.Legs = []tee.LegStats{
		{Name: "telnet#2", Backend: "telnet", Peer: "127.0.0.1:40000", Since: since, BytesOut: 500, FirstOffset: 100, NextOffset: 600},
		{Name: "capture", Backend: "capture", Since: since.Add(-time.Hour), BytesOut: 123456, NextOffset: 123456},
	}
	st.Swaps = []tee.SwapCount{{Kind: "leg", Result: "ok", Count: 2}, {Kind: "leg", Result: "error", Count: 0}, {Kind: "failover", Result: "ok", Count: 1}}
	return st
}

func TestWriteList(t *testing.T) {
	var b strings.Builder
	if err := writeList(&b, []api.TeeStatus{sampleStatus()}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines: %q", lines)
	}
	head, row := strings.Fields(lines[0]), lines[1]
	if !slices.Equal(head, []string{"TEE", "FRONTEND", "UP", "OFFSET", "BACKENDS", "LEGS", "PROBLEM"}) {
		t.Errorf("header %q", head)
	}
	// Columns are aligned: each value starts where its header does.
	for _, col := range []struct{ head, val string }{{"UP", "no"}, {"OFFSET", "123456"}, {"BACKENDS", "2"}} {
		if hi, vi := strings.Index(lines[0], col.head), strings.Index(row, " "+col.val+" ")+1; hi != vi {
			t.Errorf("column %s at %d, value %q at %d:\n%s", col.head, hi, col.val, vi, b.String())
		}
	}
	mustContain(t, "list", row, "router1", "serial /dev/ttyUSB1", "read: EOF (retrying)")
	// A tee whose frontend never opened says why in the list.
	absent := sampleStatus()
	absent.Name = "fw1"
	absent.Frontend = tee.FrontendStats{Device: "serial /dev/ttyUSB9", LastError: "serial: open /dev/ttyUSB9: no such file or directory"}
	up := sampleStatus()
	up.Name = "ok1"
	up.Frontend = tee.FrontendStats{Up: true, Device: "demo"}
	b.Reset()
	writeList(&b, []api.TeeStatus{absent, up})
	mustContain(t, "list", b.String(), "PROBLEM", "serial: open /dev/ttyUSB9: no such file or directory (retrying)")
	if l := strings.Split(b.String(), "\n")[2]; !strings.HasSuffix(strings.TrimSpace(l), " -") {
		t.Errorf("an up tee has a problem: %q", l)
	}
	// Nothing wrong: no PROBLEM column.
	b.Reset()
	writeList(&b, []api.TeeStatus{up})
	if strings.Contains(b.String(), "PROBLEM") {
		t.Errorf("PROBLEM column with no problem:\n%s", b.String())
	}
	b.Reset()
	writeList(&b, nil)
	if b.String() != "no tees\n" {
		t.Errorf("empty list: %q", b.String())
	}
}

func TestWriteShow(t *testing.T) {
	var b strings.Builder
	now := time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	if err := writeShow(&b, sampleStatus(), now); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	mustContain(t, "show", out,
		"tee:       router1",
		"exclusive (write lock held by telnet#2)",
		"serial /dev/ttyUSB1 (DOWN, retrying, failover #1)",
		"reconnects 3, failovers 1",
		"last error: read: EOF",
		"9600 baud, 7 data bits, parity even, stop bits 2, flow rtscts",
		"swaps:     leg ok 2, failover ok 1",
		"BACKEND  DEVICE                          INPUT  OVERFLOW  QUEUE",
		"telnet   listening on 127.0.0.1:7001     yes    drop      256KiB",
		"capture  file /var/log/c.log (raw, out)  no     block     1MiB",
		"telnet#2  telnet   127.0.0.1:40000  55s",
		"1h0m55s",
	)
}

func TestWriteReports(t *testing.T) {
	var b strings.Builder
	writeSwapReport(&b, "t", tee.SwapReport{Backend: "cap", Mode: "handover", Cut: 10, NewStart: 8, Handed: 2, OldErr: "disk full"})
	mustContain(t, "swap", b.String(), "swapped t/cap (handover)", "cut at offset:", "10", "handed over:", "2 B", "old leg failed:      disk full")
	b.Reset()
	writeFrontendSwapReport(&b, "t", tee.FrontendSwapReport{From: "demo a", To: "demo b", Offset: 5, LineApplied: true})
	mustContain(t, "frontend swap", b.String(), "from:", "demo a", "to:", "demo b", "line settings replayed:  yes")
	b.Reset()
	writeReloadReport(&b, api.ReloadReport{File: "c.yaml", Attached: []string{"t/a", "t/b"}, Warnings: []string{"w1"}})
	mustContain(t, "reload", b.String(), "reloaded c.yaml", "backends attached:  t/a, t/b", "warning: w1")
	b.Reset()
	writeReloadReport(&b, api.ReloadReport{File: "c.yaml"})
	mustContain(t, "empty reload", b.String(), "nothing changed")
	b.Reset()
	writeEvent(&b, tee.Event{Time: time.Date(2026, 1, 1, 10, 0, 0, 5e6, time.UTC), Tee: "t", Kind: tee.EventDetach, Backend: "tel", Leg: "tel#1", Offset: 9, Reason: `peer "gone"`})
	if got, want := b.String(), "10:00:00.005 t detach backend=tel leg=tel#1 offset=9 reason=\"peer \\\"gone\\\"\"\n"; got != want {
		t.Errorf("event:\n got %q\nwant %q", got, want)
	}
}

// FuzzYAMLQuote: any valid UTF-8 string survives yamlQuote and a YAML
// parse unchanged, wherever it lands in a document.
func FuzzYAMLQuote(f *testing.F) {
	for _, s := range []string{"", "/tmp/chartee-demo-1/console.log", "a b: c # d", `"\'`, "\t\n\r\x00\x7f\u0085\u2028\ufeff", "ü€𝄞"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		doc := "k: " + yamlQuote(s) + "\nl: [" + yamlQuote(s) + "]\n"
		var got struct {
			K string   `yaml:"k"`
			L []string `yaml:"l"`
		}
		if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if got.K != s || len(got.L) != 1 || got.L[0] != s {
			t.Fatalf("%q came back as %q / %q", s, got.K, got.L)
		}
	})
}

func TestPasswdPrintsAVerifiableHash(t *testing.T) {
	// Real costs take seconds under -race; the code path is the same.
	oldA, oldB := access.DefaultArgon2, access.BcryptCost
	access.DefaultArgon2, access.BcryptCost = access.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}, 4
	defer func() { access.DefaultArgon2, access.BcryptCost = oldA, oldB }()
	for _, flagArgs := range [][]string{{"passwd"}, {"passwd", "--bcrypt"}} {
		var out, errb bytes.Buffer
		a := &app{stdin: strings.NewReader("s3cret\n"), stdout: &out, stderr: &errb}
		if code := a.main(flagArgs); code != exitOK {
			t.Fatalf("%v: exit %d: %s", flagArgs, code, errb.String())
		}
		h := strings.TrimSpace(out.String())
		if err := access.CheckHash(h); err != nil || !access.VerifyPassword(h, "s3cret") || access.VerifyPassword(h, "s3cret\n") {
			t.Fatalf("%v: hash %q: %v", flagArgs, h, err)
		}
	}
	var errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: &errb}
	if code := a.main([]string{"passwd"}); code != exitError || !strings.Contains(errb.String(), "no password") {
		t.Fatalf("empty stdin: %d %q", code, errb.String())
	}
}

func TestWriteShowNamesPeopleAndLockHolder(t *testing.T) {
	st := sampleStatus()
	st.WriteLock, st.WriteLockUser = "ssh:alice#3", "alice"
	st.Legs = append(st.Legs, tee.LegStats{Name: "ssh:alice#3", Backend: "ssh", Peer: "10.0.0.5:5555", User: "alice", Role: "operate"})
	var b strings.Builder
	if err := writeShow(&b, st, time.Now()); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "show", b.String(), "write lock held by alice (ssh:alice#3)", "alice  operate")
}

func TestWriteEventNamesThePeople(t *testing.T) {
	var b strings.Builder
	writeEvent(&b, tee.Event{Tee: "c0", Kind: tee.EventWriteLock, Leg: "ssh:root#2", User: "root", Role: "admin",
		FromUser: "alice", FromLeg: "ssh:alice#1", Reason: "stolen from ssh:alice#1"})
	mustContain(t, "event", b.String(), "user=root", "role=admin", "from_user=alice", "from_leg=ssh:alice#1")
}
