package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chartee/backends"
	"chartee/chardev"
	"chartee/tee"
)

// mustParse parses text that must be valid.
func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: unexpected error:\n%v", err)
	}
	return cfg
}

// parseErrs parses text that must be invalid and returns its errors.
func parseErrs(t *testing.T, text string) ErrorList {
	t.Helper()
	cfg, err := Parse("test.yaml", []byte(text))
	if err == nil {
		t.Fatalf("Parse: no error; config %+v", cfg)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config with an error")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse error is %T, want ErrorList", err)
	}
	return list
}

func TestParseFullConfig(t *testing.T) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, string(data))

	if cfg.File != "test.yaml" {
		t.Errorf("File = %q", cfg.File)
	}
	if cfg.Control != (Control{Socket: "/run/chartee/control.sock", Listen: "127.0.0.1:7400", TokenFile: "/etc/chartee/token"}) {
		t.Errorf("Control = %+v", cfg.Control)
	}
	if cfg.Metrics.Listen != "127.0.0.1:9464" || cfg.Log != (Log{Level: "info", Format: "json"}) {
		t.Errorf("Metrics = %+v, Log = %+v", cfg.Metrics, cfg.Log)
	}
	if len(cfg.Tees) != 3 {
		t.Fatalf("%d tees, want 3", len(cfg.Tees))
	}

	r := cfg.Tee("router1")
	if r == nil {
		t.Fatal("no tee router1")
	}
	if r.Input != tee.Exclusive || r.ExclusiveIdle != 30*time.Second || r.InputBuffer != 64<<10 ||
		r.Scrollback != 1<<20 || r.DrainTimeout != 2*time.Second {
		t.Errorf("router1 options = %+v", r)
	}
	if r.Pos != (Pos{File: "test.yaml", Line: 13, Col: 5}) {
		t.Errorf("router1 Pos = %v", r.Pos)
	}
	fe := r.Frontend
	ser, ok := fe.Spec.(*backends.SerialSpec)
	if !ok || fe.Type != "serial" {
		t.Fatalf("frontend = %s %T", fe.Type, fe.Spec)
	}
	if ser.Path != "/dev/serial/by-id/usb-FTDI-router1" || ser.Baud != 115200 || ser.StopBits != "1" ||
		ser.Flow != "rtscts" || ser.DTR == nil || !*ser.DTR || ser.RTS != nil || ser.DataBits != 8 || !ser.Exclusive {
		t.Errorf("serial spec = %+v", ser)
	}
	if fe.Reconnect != (tee.Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second}) {
		t.Errorf("reconnect = %+v", fe.Reconnect)
	}
	if len(fe.Failover) != 2 || fe.Failover[0].Type != "tcp-connect" || fe.Failover[1].Type != "unix-connect" {
		t.Fatalf("failover = %+v", fe.Failover)
	}
	if tc := fe.Failover[0].Spec.(*backends.TCPConnectSpec); tc.Address != "127.0.0.1:7001" || tc.Protocol != "rfc2217" {
		t.Errorf("failover[0] = %+v", tc)
	}
	if fe.IsSource() || fe.Failover[0].IsSource() {
		t.Error("frontend devices must be single streams")
	}

	ops := r.Backend("ops")
	if ops == nil {
		t.Fatal("no backend ops")
	}
	tl := ops.Spec.(*backends.TCPListenSpec)
	if tl.Listen != "127.0.0.1:7000" || tl.Protocol != "telnet" || tl.MaxClients != 8 || tl.OnFull != "kick-oldest" ||
		tl.Escape != "^]" || tl.Banner != "router1 console\r\n" || tl.IdleTimeout.D() != time.Hour ||
		len(tl.Allow) != 2 || tl.Allow[1] != "10.0.0.0/8" || tl.TLS != nil {
		t.Errorf("ops spec = %+v", tl)
	}
	if ops.Leg != (tee.LegOptions{Input: true, Queue: 512 << 10, Overflow: tee.Disconnect, Replay: 16 << 10}) {
		t.Errorf("ops leg = %+v", ops.Leg)
	}
	if !ops.IsSource() {
		t.Error("tcp-listen must be a source")
	}

	capt := r.Backend("capture")
	fs := capt.Spec.(*backends.FileSpec)
	if fs.Format != backends.FileTimestamped || fs.Direction != backends.FileBoth || !fs.Append ||
		fs.Rotate != (backends.FileRotate{MaxSize: 10 << 20, Keep: 7, Compress: true}) {
		t.Errorf("capture spec = %+v", fs)
	}
	// A capture does not type unless told: the factory's default.
	if capt.Leg != (tee.LegOptions{Input: false, Queue: 4 << 20, Overflow: tee.Block}) {
		t.Errorf("capture leg = %+v", capt.Leg)
	}
	if c := r.Backend("cast").Spec.(*backends.FileSpec); c.Width != 132 || c.Height != 43 || c.Rotate.Keep != 5 {
		t.Errorf("cast spec = %+v", c)
	}
	if rb := r.Backend("ring").Spec.(*backends.RingbufSpec); rb.Size != 1<<20 {
		t.Errorf("ring spec = %+v", rb)
	}
	if l := r.Backend("secure").Leg; !l.Control || !l.Input {
		t.Errorf("secure leg = %+v, want control from the spec's control key", l)
	}
	sec := r.Backend("secure").Spec.(*backends.TCPListenSpec)
	if sec.TLS == nil || *sec.TLS != (backends.NetServerTLS{Cert: "/etc/chartee/cert.pem", Key: "/etc/chartee/key.pem", ClientCA: "/etc/chartee/ca.pem"}) || !sec.Control {
		t.Errorf("secure spec = %+v", sec)
	}
	udp := r.Backend("udp-peers")
	if u := udp.Spec.(*backends.UDPSpec); u.MaxDatagram != 1024 || u.IdleTimeout.D() != 5*time.Minute || udp.Leg.Input {
		t.Errorf("udp-peers = %+v %+v", u, udp.Leg)
	}
	if up := r.Backend("upstream").Spec.(*backends.TCPConnectSpec); up.Reconnect == nil ||
		up.Reconnect.Initial.D() != 250*time.Millisecond || up.ConnectTimeout.D() != 5*time.Second {
		t.Errorf("upstream spec = %+v", up)
	}

	vm := cfg.Tee("vm1")
	if vm.Input != tee.Shared || vm.Scrollback != 0 || len(vm.Backends) != 3 {
		t.Errorf("vm1 = %+v", vm)
	}
	if ul := vm.Backend("sock").Spec.(*backends.UnixListenSpec); ul.Mode != "0660" {
		t.Errorf("sock mode = %q", ul.Mode)
	}
	if f := vm.Backend("log").Spec.(*backends.FileSpec); f.Append {
		t.Error("append: false was not decoded")
	}
	if m := vm.Backend("mirror"); m.IsSource() {
		t.Error("udp with remote must be a single stream")
	}
	demo := cfg.Tee("demo")
	if ex := demo.Backend("sh").Spec.(*backends.ExecSpec); len(ex.Command) != 1 || ex.Command[0] != "cat" || ex.Pty {
		t.Errorf("sh spec = %+v", ex)
	}
	if demo.Backend("sink").Type != "null" {
		t.Error("quoted type null not decoded")
	}

	// Every device has a canonical form and a position.
	for _, tt := range cfg.Tees {
		if tt.Frontend.Canonical == "" || tt.Frontend.Pos.Line == 0 {
			t.Errorf("tee %s frontend: Canonical %q Pos %v", tt.Name, tt.Frontend.Canonical, tt.Frontend.Pos)
		}
		for _, b := range tt.Backends {
			if !strings.HasPrefix(b.Canonical, b.Type+" {") || b.Pos.Line == 0 {
				t.Errorf("tee %s backend %s: Canonical %q Pos %v", tt.Name, b.Name, b.Canonical, b.Pos)
			}
		}
	}
	// The only exposed listener without TLS is none: 0.0.0.0:7443 has TLS.
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings:\n%v", cfg.Warnings)
	}

	opts := r.Options()
	if opts.Name != "router1" || opts.Frontend == nil || len(opts.Failover) != 2 || opts.Scrollback != 1<<20 ||
		opts.Input != tee.Exclusive || opts.Reconnect.Max != 10*time.Second {
		t.Errorf("Options = %+v", opts)
	}
	if d := chardev.Describe(opts.Frontend); d != "serial /dev/serial/by-id/usb-FTDI-router1 115200 8N1 rtscts" {
		t.Errorf("frontend opener describes itself as %q", d)
	}
}

// TestParseOpensNothing checks that a config naming devices and addresses
// that do not exist parses: Parse validates, it does not open.
func TestParseOpensNothing(t *testing.T) {
	cfg := mustParse(t, `
tees:
  - name: t
    frontend: {type: serial, path: /nonexistent/tty}
    backends:
      - {name: f, type: file, path: /nonexistent/dir/cap.log}
      - {name: u, type: unix-listen, path: /nonexistent/dir/s.sock}
`)
	if _, err := os.Stat("/nonexistent"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat /nonexistent: %v", err)
	}
	if len(cfg.Tees[0].Backends) != 2 {
		t.Fatalf("backends = %+v", cfg.Tees[0].Backends)
	}
}

// TestParseManyErrors checks that one broken file yields every problem,
// each at its line and column, sorted by position.
func TestParseManyErrors(t *testing.T) {
	text := `control:
  listen: 127.0.0.1:7400
  sokcet: /run/x.sock
log: {level: verbose, format: text}
tees:
  - name: main
    inptu: shared
    scrollback: 64KiB
    drain_timeout: 5
    frontend:
      type: tcp-listen
      listen: 127.0.0.1:7000
    backends:
      - {name: cap, type: file, pth: /tmp/x.log}
      - {name: cap, type: ringbuf, size: 4x}
      - name: net
        type: tcp-listen
        listen: 127.0.0.1:7001
        tls: {cert: /c.pem, kye: /k.pem}
        max_clients: many
      - {type: file, path: /tmp/y.log, on_overflow: dorp, replay: 1MiB}
      - {name: z, type: serail, path: /dev/ttyS0}
  - name: main
    frontend: {type: file}
`
	got := parseErrs(t, text)
	want := []string{
		"test.yaml:2:11: control.listen: needs control.token_file",
		`test.yaml:3:3: control.sokcet: unknown key for control; did you mean "socket"?`,
		`test.yaml:4:14: log.level: "verbose" is not one of debug, info, warn, error`,
		`test.yaml:7:5: tees[0].inptu: unknown key for a tee; did you mean "input"?`,
		`test.yaml:9:20: tees[0].drain_timeout: duration "5": want a number with a unit`,
		"test.yaml:11:13: tees[0].frontend.type: tcp-listen cannot be a frontend",
		`test.yaml:14:33: tees[0].backends[0].pth: unknown key for file; did you mean "path"?`,
		`test.yaml:15:16: tees[0].backends[1].name: duplicate backend name "cap" in this tee (first at line 14)`,
		`test.yaml:15:42: tees[0].backends[1].size: size "4x"`,
		`test.yaml:19:29: tees[0].backends[2].tls.kye: unknown key for tls; did you mean "key"?`,
		`test.yaml:20:22: tees[0].backends[2].max_clients: want a whole number, got "many"`,
		"test.yaml:21:9: tees[0].backends[3]: name: required",
		`test.yaml:21:53: tees[0].backends[3].on_overflow: "dorp" is not one of drop, block, disconnect; did you mean "drop"?`,
		"test.yaml:21:67: tees[0].backends[3].replay: 1MiB is more than the tee's scrollback (64KiB)",
		`test.yaml:22:25: tees[0].backends[4].type: unknown backend type "serail"; did you mean "serial"?`,
		`test.yaml:23:11: tees[1].name: duplicate tee name "main" (first at line 6)`,
		"test.yaml:24:15: tees[1].frontend: file: path: required",
	}
	checkErrors(t, got, want)
}

// checkErrors checks that got has exactly one error per want, in order,
// each starting with (or, past its position, containing) the wanted text.
func checkErrors(t *testing.T, got ErrorList, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d errors, want %d:\n%v", len(got), len(want), got)
	}
	for i := range min(len(got), len(want)) {
		if !strings.HasPrefix(got[i].Error(), want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
}

// base is a minimal valid tee around the snippets of the error-class tests.
func withBackend(backend string) string {
	return "tees:\n  - name: t\n    frontend: {type: null}\n    backends:\n      - " + backend + "\n"
}

func TestParseErrorClasses(t *testing.T) {
	tests := []struct {
		name, text string
		want       string // the error's text, position included
	}{
		{"yaml syntax", "tees:\n  - name: [\n", "test.yaml:2: YAML syntax: did not find expected node content"},
		{"tab indentation", "tees:\n\t- name: x\n", "test.yaml:2: YAML syntax: "},
		{"two documents", "tees: []\n---\ntees: []\n", "test.yaml:2:1: a config file holds one YAML document"},
		{"empty file", "", "test.yaml: the file is empty"},
		{"comment only", "# nothing\n", "test.yaml: the file is empty"},
		{"root not a mapping", "- a\n", "test.yaml:1:1: want a mapping (the config), got a list"},
		{"no tees", "log: {level: info}\n", "test.yaml:1:1: tees: required"},
		{"tees empty", "tees: []\n", "test.yaml:1:7: tees: at least one tee is required"},
		{"tees not a list", "tees: {name: x}\n", "test.yaml:1:7: tees: want a list of tees, got a mapping"},
		{"unknown top key", "teees: []\n", `test.yaml:1:1: teees: unknown key for the config; did you mean "tees"? (known: access, control, log, metrics, ssh, tees, web)`},
		{"duplicate top key", "log: {}\nlog: {}\ntees: []\n", "test.yaml:2:1: log: duplicate key (first at line 1)"},
		{"duplicate key in backend", withBackend("{name: a, type: file, path: /x, path: /y}"), "test.yaml:5:41: tees[0].backends[0].path: duplicate key (first at line 5)"},
		{"merge key", "x: &a {level: info}\nlog:\n  <<: *a\ntees: []\n", "test.yaml:1:1: x: unknown key"},
		{"tee name missing", "tees:\n  - frontend: {type: null}\n", "test.yaml:2:5: tees[0]: name: required"},
		{"tee name empty", "tees:\n  - name: \"\"\n    frontend: {type: null}\n", "test.yaml:2:11: tees[0].name: must not be empty"},
		{"tee name bad", "tees:\n  - name: a/b\n    frontend: {type: null}\n", `test.yaml:2:11: tees[0].name: "a/b": want letters`},
		{"frontend missing", "tees:\n  - name: t\n", "test.yaml:2:5: tees[0]: frontend: required"},
		{"frontend type missing", "tees:\n  - name: t\n    frontend: {path: /x}\n", "test.yaml:3:15: tees[0].frontend: type: required (one of: config-test, demo, exec"},
		{"frontend not a mapping", "tees:\n  - name: t\n    frontend: serial\n", `test.yaml:3:15: tees[0].frontend: want a mapping (frontend), got "serial"`},
		{"backend type missing", withBackend("{name: a, path: /x}"), "test.yaml:5:9: tees[0].backends[0]: type: required"},
		{"backend type empty", withBackend("{name: a, type: }"), "test.yaml:5:25: tees[0].backends[0].type: must not be empty (one of: config-test, demo,"},
		{"backend name missing", withBackend("{type: null}"), "test.yaml:5:9: tees[0].backends[0]: name: required"},
		{"backend type not a string", withBackend("{name: a, type: [file]}"), "test.yaml:5:25: tees[0].backends[0].type: want a string, got a list"},
		{"unknown type", withBackend("{name: a, type: telnet}"), `test.yaml:5:25: tees[0].backends[0].type: unknown backend type "telnet"`},
		{"bad input mode", "tees:\n  - name: t\n    input: exclusiv\n    frontend: {type: null}\n", `test.yaml:3:12: tees[0].input: "exclusiv" is not one of shared, exclusive; did you mean "exclusive"?`},
		{"bad log format", "log: {format: xml}\ntees: []\n", `test.yaml:1:15: log.format: "xml" is not one of text, json`},
		{"bad on_overflow", withBackend("{name: a, type: null, on_overflow: 3}"), `test.yaml:5:44: tees[0].backends[0].on_overflow: "3" is not one of drop, block, disconnect`},
		{"bad leg input", withBackend("{name: a, type: null, input: yes}"), `test.yaml:5:38: tees[0].backends[0].input: want true or false, got "yes"`},
		{"bad size", withBackend("{name: a, type: null, queue: 4 MB B}"), `test.yaml:5:38: tees[0].backends[0].queue: size "4 MB B"`},
		{"negative size", withBackend("{name: a, type: null, queue: -1}"), `test.yaml:5:38: tees[0].backends[0].queue: size "-1"`},
		{"size is a list", withBackend("{name: a, type: null, replay: [1]}"), "test.yaml:5:39: tees[0].backends[0].replay: want a single value, got a list"},
		{"bad duration", "tees:\n  - name: t\n    exclusive_idle: soon\n    frontend: {type: null}\n", `test.yaml:3:21: tees[0].exclusive_idle: duration "soon"`},
		{"negative duration", "tees:\n  - name: t\n    drain_timeout: -1s\n    frontend: {type: null}\n", `test.yaml:3:20: tees[0].drain_timeout: duration "-1s": must not be negative`},
		{"spec wrong type int", withBackend("{name: a, type: file, path: /x, width: wide}"), `test.yaml:5:48: tees[0].backends[0].width: want a whole number, got "wide"`},
		{"spec int out of range", withBackend("{name: a, type: file, path: /x, width: 99999999999999999999}"), `test.yaml:5:48: tees[0].backends[0].width: want a whole number, got the number 99999999999999999999`},
		{"spec float for int", withBackend("{name: a, type: file, path: /x, width: 1.5}"), `test.yaml:5:48: tees[0].backends[0].width: want a whole number, got the number 1.5`},
		{"spec string for bool", withBackend("{name: a, type: file, path: /x, append: \"true\"}"), `test.yaml:5:49: tees[0].backends[0].append: want true or false, got "true"`},
		{"spec mapping for string", withBackend("{name: a, type: file, path: {x: 1}}"), "test.yaml:5:37: tees[0].backends[0].path: want a string, got a mapping"},
		{"spec scalar for list", withBackend("{name: a, type: exec, command: cat}"), `test.yaml:5:40: tees[0].backends[0].command: want a list, got "cat"`},
		{"spec scalar for section", withBackend("{name: a, type: file, path: /x, rotate: 10MiB}"), `test.yaml:5:49: tees[0].backends[0].rotate: want a mapping (rotate), got "10MiB"`},
		{"spec validate", withBackend("{name: a, type: file, path: /x, format: json}"), `test.yaml:5:41: tees[0].backends[0]: file: format "json": want raw, timestamped or asciicast`},
		{"spec validate nested", withBackend("{name: a, type: tcp-listen, listen: 127.0.0.1:1, tls: {key: /k}}"), "test.yaml:5:58: tees[0].backends[0]: tcp-listen: tls: cert: required"},
		{"spec validate without prefix", withBackend("{name: a, type: tcp-listen, listen: \":2000\"}"), `test.yaml:5:37: tees[0].backends[0]: tcp-listen: listen ":2000": give a host`},
		{"spec validate missing key", withBackend("{name: a, type: ringbuf, size: 2GiB}"), "test.yaml:5:34: tees[0].backends[0]: ringbuf: size 2GiB: want at most 1GiB"},
		{"listening frontend", "tees:\n  - name: t\n    frontend: {type: unix-listen, path: /x}\n", "test.yaml:3:22: tees[0].frontend.type: unix-listen cannot be a frontend"},
		{"udp source frontend", "tees:\n  - name: t\n    frontend: {type: udp, listen: 127.0.0.1:5}\n", "test.yaml:3:22: tees[0].frontend.type: udp cannot be a frontend: it listens for clients, each becoming a leg of its own; give it the options of its single-stream form (udp: remote)"},
		{"listening failover", "tees:\n  - name: t\n    frontend:\n      type: null\n      failover: [{type: tcp-listen, listen: 127.0.0.1:1}]\n", "test.yaml:5:25: tees[0].frontend.failover[0].type: tcp-listen cannot be a failover device"},
		{"failover leg key", "tees:\n  - name: t\n    frontend:\n      type: null\n      failover: [{type: null, name: x}]\n", `test.yaml:5:31: tees[0].frontend.failover[0].name: unknown key for null (known: type)`},
		{"failover not a list", "tees:\n  - name: t\n    frontend: {type: null, failover: {type: null}}\n", "test.yaml:3:38: tees[0].frontend.failover: want a list of devices, got a mapping"},
		{"reconnect max below initial", "tees:\n  - name: t\n    frontend: {type: null, reconnect: {initial: 5s, max: 1s}}\n", "test.yaml:3:58: tees[0].frontend.reconnect.max: 1s is less than initial 5s"},
		{"control listen without token", "control: {listen: 127.0.0.1:1}\ntees: []\n", "test.yaml:1:19: control.listen: needs control.token_file"},
		{"control listen no host", "control: {listen: \":7400\", token_file: /t}\ntees: []\n", `test.yaml:1:19: control.listen: ":7400": give a host`},
		{"metrics listen bad", "metrics: {listen: localhost}\ntees: []\n", `test.yaml:1:19: metrics.listen: "localhost": want host:port`},
		{"metrics listen bad port", "metrics: {listen: \"127.0.0.1:http\"}\ntees: []\n", `test.yaml:1:19: metrics.listen: "127.0.0.1:http": port "http" is not a number`},
		{"replay over default scrollback", withBackend("{name: a, type: null, replay: 65537}"), "test.yaml:5:39: tees[0].backends[0].replay: 65537 is more than the default scrollback (64KiB)"},
		{"same listen address", "tees:\n  - name: t\n    frontend: {type: null}\n    backends:\n      - {name: a, type: tcp-listen, listen: 127.0.0.1:7000}\n  - name: u\n    frontend: {type: null}\n    backends:\n      - {name: a, type: tcp-listen, listen: 127.0.0.1:7000}\n",
			"test.yaml:9:45: tees[1].backends[0].listen: tcp 127.0.0.1:7000 is already bound (first at line 5)"},
		{"control and backend on one port", "control: {listen: 127.0.0.1:7000, token_file: /t}\n" + withBackend("{name: a, type: tcp-listen, listen: 127.0.0.1:7000}"),
			"test.yaml:6:45: tees[0].backends[0].listen: tcp 127.0.0.1:7000 is already bound (first at line 1)"},
		{"same capture file", withBackend("{name: a, type: file, path: /tmp/c}") + "      - {name: b, type: file, path: /tmp/c}\n",
			"test.yaml:6:37: tees[0].backends[1].path: path /tmp/c is already used (first at line 5)"},
		{"same serial device", "tees:\n  - name: t\n    frontend: {type: serial, path: /dev/ttyS9}\n  - name: u\n    frontend: {type: serial, path: /dev/ttyS9}\n",
			"test.yaml:5:36: tees[1].frontend.path: path /dev/ttyS9 is already used (first at line 3)"},
		{"udp remote local address", "tees:\n  - name: t\n    frontend: {type: udp, listen: 127.0.0.1:7000, remote: 127.0.0.1:7001}\n    backends:\n      - {name: a, type: udp, listen: 127.0.0.1:7000}\n",
			"test.yaml:5:38: tees[0].backends[0].listen: udp 127.0.0.1:7000 is already bound (first at line 3)"},
		{"metrics and backend on one port", "metrics: {listen: 127.0.0.1:9464}\n" + withBackend("{name: a, type: tcp-listen, listen: 127.0.0.1:9464}"),
			"test.yaml:6:45: tees[0].backends[0].listen: tcp 127.0.0.1:9464 is already bound (first at line 1)"},
		{"control socket and unix-listen", "control: {socket: /tmp/s}\n" + withBackend("{name: a, type: unix-listen, path: /tmp/s}"),
			"test.yaml:6:44: tees[0].backends[0].path: unix /tmp/s is already bound (first at line 1)"},
		{"key not a string", "tees:\n  - name: t\n    frontend: {type: null, [a]: 1}\n", "test.yaml:3:28: tees[0].frontend: a key must be a plain name, got a list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrs(t, tc.text)
			for _, e := range errs {
				if strings.HasPrefix(e.Error(), tc.want) {
					return
				}
			}
			t.Errorf("no error starting with\n  %s\ngot:\n%v", tc.want, errs)
		})
	}
}

// TestTypoRejectedAtDepth is the go-yaml trap: Node.Decode forgets
// KnownFields, so a typo deep inside a backend's options must still be
// refused by the schema walk, at every depth and in every place a device
// can appear.
func TestTypoRejectedAtDepth(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"tls of a listener", withBackend("{name: a, type: tcp-listen, listen: 127.0.0.1:1, tls: {cert: /c, key: /k, client_ac: /ca}}"),
			`test.yaml:5:83: tees[0].backends[0].tls.client_ac: unknown key for tls; did you mean "client_ca"?`},
		{"tls of a dialer", withBackend("{name: a, type: tcp-connect, address: 127.0.0.1:1, tls: {server_nam: x}}"),
			`test.yaml:5:66: tees[0].backends[0].tls.server_nam: unknown key for tls; did you mean "server_name"?`},
		{"rotate", withBackend("{name: a, type: file, path: /x, rotate: {max_size: 1MiB, kep: 3}}"),
			`test.yaml:5:66: tees[0].backends[0].rotate.kep: unknown key for rotate; did you mean "keep"?`},
		{"reconnect of a backend", withBackend("{name: a, type: tcp-connect, address: 127.0.0.1:1, reconnect: {intial: 1s}}"),
			`test.yaml:5:72: tees[0].backends[0].reconnect.intial: unknown key for reconnect; did you mean "initial"?`},
		{"frontend reconnect", "tees:\n  - name: t\n    frontend:\n      type: null\n      reconnect: {initial: 1s, maxx: 2s}\n",
			`test.yaml:5:32: tees[0].frontend.reconnect.maxx: unknown key for reconnect; did you mean "max"?`},
		{"failover device tls", "tees:\n  - name: t\n    frontend:\n      type: null\n      failover:\n        - type: tcp-connect\n          address: 127.0.0.1:1\n          tls:\n            ca_file: /ca\n",
			`test.yaml:9:13: tees[0].frontend.failover[0].tls.ca_file: unknown key for tls`},
		{"inlined options", withBackend("{name: a, type: unix-listen, path: /s, max_client: 3}"),
			`test.yaml:5:48: tees[0].backends[0].max_client: unknown key for unix-listen; did you mean "max_clients"?`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := parseErrs(t, tc.text)
			if len(errs) != 1 || !strings.HasPrefix(errs[0].Error(), tc.want) {
				t.Errorf("got:\n%v\nwant one error starting with\n%s", errs, tc.want)
			}
		})
	}
}

func TestParseWarnings(t *testing.T) {
	cfg := mustParse(t, `control:
  listen: 0.0.0.0:7400
  token_file: /t
metrics: {listen: "[::]:9464"}
tees:
  - name: t
    exclusive_idle: 10s
    frontend: {type: null}
    backends:
      - {name: open, type: tcp-listen, listen: 0.0.0.0:7000}
      - {name: tls, type: tcp-listen, listen: 0.0.0.0:7001, tls: {cert: /c, key: /k}}
      - {name: local, type: tcp-listen, listen: "localhost:7002"}
      - {name: v6local, type: tcp-listen, listen: "[::1]:7003"}
      - {name: u, type: udp, listen: 192.0.2.1:7004}
`)
	want := []string{
		"test.yaml:2:11: control.listen: 0.0.0.0:7400 is reachable from the network without TLS",
		"test.yaml:4:19: metrics.listen: [::]:9464 is reachable from the network; /metrics has no authentication",
		"test.yaml:6:5: tees[0].exclusive_idle: has no effect without input: exclusive",
		"test.yaml:10:48: tees[0].backends[0].listen: tcp-listen 0.0.0.0:7000 is reachable from the network without TLS",
		"test.yaml:14:38: tees[0].backends[4].listen: udp 192.0.2.1:7004 is reachable from the network (this type has no TLS)",
	}
	checkErrors(t, cfg.Warnings, want)
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "chartee.yaml")
	if err := os.WriteFile(path, []byte(withBackend("{name: a, type: null}")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.File != path || cfg.Tees[0].Backends[0].Pos.File != path {
		t.Errorf("File = %q, Pos = %v", cfg.File, cfg.Tees[0].Backends[0].Pos)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte(withBackend("{name: a, type: nul}")), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.HasPrefix(list[0].Error(), bad+":5:25: ") {
		t.Errorf("Load(bad) = %v", err)
	}

	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "config: ") {
		t.Errorf("Load(missing) = %v", err)
	}
}

// TestAliasBomb checks that aliases multiplying the work (a list of 400
// aliases to a tee whose backends are 400 aliases) are cut off with an
// error rather than walked for ever.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-b: &b {name: a, type: file, path: /x, format: raw, width: 1}\nx-bs: &bs [")
	for i := range 400 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*b")
	}
	b.WriteString("]\nx-t: &t {name: t, frontend: {type: null}, backends: *bs}\ntees: [")
	for i := range 400 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*t")
	}
	b.WriteString("]\n")
	errs := parseErrs(t, b.String())
	found := false
	for _, e := range errs {
		found = found || strings.Contains(e.Msg, "too many nodes")
	}
	if !found {
		t.Errorf("no 'too many nodes' error in:\n%v", errs)
	}
}

// TestAliasesWork checks that ordinary anchors and aliases decode.
func TestAliasesWork(t *testing.T) {
	cfg := mustParse(t, `
x-tls: &tls {cert: /c, key: /k}
tees:
  - name: t
    frontend: {type: null}
    backends:
      - {name: a, type: tcp-listen, listen: 127.0.0.1:1, tls: *tls}
      - {name: b, type: tcp-listen, listen: 127.0.0.1:2, tls: *tls}
`[1:])
	for _, b := range cfg.Tees[0].Backends {
		if tls := b.Spec.(*backends.TCPListenSpec).TLS; tls == nil || tls.Cert != "/c" || tls.Key != "/k" {
			t.Errorf("backend %s: tls = %+v", b.Name, tls)
		}
	}
}

// TestDeepNesting checks that deeply nested input is refused, not
// recursed into without bound.
func TestDeepNesting(t *testing.T) {
	errs := parseErrs(t, "tees: "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"\n")
	if len(errs) == 0 || !strings.HasPrefix(errs[0].Error(), "test.yaml") {
		t.Errorf("errors: %v", errs)
	}
	_, err := ParseSpec("null,name=a," + strings.Repeat("a.", 100000) + "b=1")
	if err == nil || !strings.Contains(err.Error(), `key "a" (at column 13): unknown key for null`) {
		t.Errorf("ParseSpec(deep) = %.300v", err)
	}
}

func TestErrorListLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("tees:\n  - name: t\n    frontend: {type: null}\n    backends:\n")
	for range 300 {
		b.WriteString("      - {name: a, type: nul}\n")
	}
	errs := parseErrs(t, b.String())
	if len(errs) != maxErrors+1 || errs[maxErrors].Msg != "too many errors; stopping here" {
		t.Errorf("%d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

// TestNoSpecKeyCollidesWithLegKeys guards the flat backend mapping: a
// type's own key named like a leg key (name, input, queue, ...) or type
// would be unreachable.
func TestNoSpecKeyCollidesWithLegKeys(t *testing.T) {
	for _, typ := range chardev.Types() {
		f, err := chardev.Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		sch := schemaOfSpec(f.NewSpec())
		for _, k := range append([]string{"type"}, legKeys...) {
			if _, clash := sch.fields[k]; clash {
				t.Errorf("type %s has a spec key %q that clashes with a backend key", typ, k)
			}
		}
		if _, clash := sch.fields["failover"]; clash {
			t.Errorf("type %s has a spec key failover", typ)
		}
	}
}

// A nats backend without a subject gets chartee.<appliance>.<tee>: the
// config layer tells every spec its tee's name (chardev.TeeNamer), even
// when the tee's name comes after its backends in the file.
func TestTeeNameReachesSpecs(t *testing.T) {
	cfg := mustParse(t, `
tees:
  - backends:
      - {name: fleet, type: nats, servers: [nats://127.0.0.1:4222], appliance: app1}
    frontend: {type: "null"}
    name: console0
`)
	b := cfg.Tees[0].Backend("fleet")
	if b == nil {
		t.Fatal("no backend fleet")
	}
	dev, err := b.Opener().Open(context.Background())
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer dev.Close()
	if d := dev.(*backends.NATSConn).Subject(); d != "chartee.app1.console0" {
		t.Fatalf("subject = %q, want chartee.app1.console0", d)
	}
}

// TestReservedBackendNames: a backend may not take the name a service
// joins its sessions to (the tee would refuse every such session).
func TestReservedBackendNames(t *testing.T) {
	for _, name := range []string{"web", "ssh"} {
		text := "tees:\n  - name: main\n    frontend: {type: null}\n    backends:\n      - {name: " + name + ", type: ringbuf}\n"
		got := parseErrs(t, text)
		want := `test.yaml:5:16: tees[0].backends[0].name: backend name "` + name + `" is reserved for`
		if len(got) != 1 || !strings.HasPrefix(got[0].Error(), want) {
			t.Errorf("errors %q, want one starting %q", got, want)
		}
	}
}
