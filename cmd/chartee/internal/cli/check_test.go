package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
)

// configsDir is the repository's example configs.
const configsDir = "../../../../configs"

// Every shipped config is valid, and checking it opens nothing: the serial
// ports, sockets and files it names do not exist here, and check still
// passes without creating any of them.
func TestCheckShippedConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(configsDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"automation-watches.yaml", "capture-alongside.yaml", "chartee.reference.yaml", "qemu-shared.yaml", "serial-failover.yaml"}
	if len(files) < len(want) {
		t.Fatalf("configs: %v, want at least %v", files, want)
	}
	for _, name := range want {
		if _, err := os.Stat(filepath.Join(configsDir, name)); err != nil {
			t.Errorf("missing config: %v", err)
		}
	}
	// What the configs name and this machine lacks must still be missing
	// afterwards: check creates no capture file, socket or directory.
	var absent []string
	for _, p := range []string{"/var/log/chartee", "/run/chartee", "/run/qemu", "/etc/chartee", "/dev/ttyACM0"} {
		if _, err := os.Lstat(p); err != nil {
			absent = append(absent, p)
		}
	}
	for _, f := range files {
		r := runCmd(context.Background(), nil, "check", "-c", f)
		if r.code != exitOK {
			t.Errorf("check %s: exit %d\n%s", f, r.code, r.stderr)
			continue
		}
		if !strings.HasPrefix(r.stdout, f+": ok (") {
			t.Errorf("check %s: stdout %q", f, r.stdout)
		}
		// The cli's own examples are warning-free but for what this
		// machine lacks (host warnings: their devices and directories);
		// others may show a deliberate choice (metrics on every address,
		// say) as a warning.
		var other []string
		for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
			if line != "" && !strings.Contains(line, " does not exist") {
				other = append(other, line)
			}
		}
		if len(other) > 0 && slices.Contains(want, filepath.Base(f)) {
			t.Errorf("check %s: unexpected warnings:\n%s", f, strings.Join(other, "\n"))
		}
		// The first-run trap: a capture directory that does not exist is
		// reported, with the fix.
		if filepath.Base(f) == "serial-failover.yaml" && slices.Contains(absent, "/var/log/chartee") {
			mustContain(t, "check serial-failover.yaml", r.stderr,
				"backend capture (file): path: the directory /var/log/chartee does not exist", "mkdir -p /var/log/chartee", "LogsDirectory=")
		}
		if strings.Contains(r.stderr, "error") {
			t.Errorf("check %s: errors on stderr:\n%s", f, r.stderr)
		}
	}
	for _, p := range absent {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("check created %s", p)
		}
	}
	// The positional form works too.
	if r := runCmd(context.Background(), nil, "check", files[0]); r.code != exitOK {
		t.Errorf("check FILE: exit %d: %s", r.code, r.stderr)
	}
}

// The reference config documents every key: each key a backend type
// accepts appears in it.
func TestReferenceConfigCoversEveryType(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(configsDir, "chartee.reference.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, typ := range []string{"serial", "tcp-listen", "unix-listen", "tcp-connect", "unix-connect", "udp", "file", "ringbuf", "pty", `"null"`, "exec", "stdio", "demo"} {
		if !strings.Contains(text, "type: "+typ+"\n") {
			t.Errorf("type %s has no example", typ)
		}
	}
	for _, key := range []string{
		"socket:", "listen:", "token_file:", "level:", "format:", "input:", "exclusive_idle:", "input_buffer:",
		"scrollback:", "drain_timeout:", "reconnect:", "initial:", "max:", "failover:", "queue:", "on_overflow:",
		"replay:", "allow:", "protocol:", "control:", "max_clients:", "on_full:", "escape:", "banner:",
		"idle_timeout:", "tls:", "cert:", "key:", "client_ca:", "ca:", "server_name:", "connect_timeout:",
		"remote:", "max_datagram:", "path:", "direction:", "append:", "rotate:", "max_size:", "keep:",
		"compress:", "width:", "height:", "size:", "link:", "mode:", "command:", "env:", "dir:", "pty:",
		"hostname:", "heartbeat:", "baud:", "data_bits:", "parity:", "stop_bits:", "flow:", "dtr:", "rts:", "exclusive:",
	} {
		if !strings.Contains(text, " "+key) {
			t.Errorf("key %s is not in the reference", key)
		}
	}
}

// A broken file gets every problem, each at its file:line:col, and exit 1.
func TestCheckBrokenConfig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broken.yaml")
	writeFile(t, path, `tees:
  - name: t1
    frontend:
      type: demo
      heartbaet: 1s
    backends:
      - name: a
        type: fille
        path: /tmp/x
      - name: b
        type: ringbuf
        size: lots
      - name: c
        type: file
        path: /tmp/y
        on_overflow: explode
`)
	r := runCmd(context.Background(), nil, "check", "-c", path)
	if r.code != exitError {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q", r.stdout)
	}
	for _, want := range []struct {
		line, text string
	}{
		{"5", "heartbaet"},
		{"8", `"fille"`},
		{"12", "lots"},
		{"16", "explode"},
	} {
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(path) + `:` + want.line + `:\d+: .*` + regexp.QuoteMeta(want.text))
		if !re.MatchString(r.stderr) {
			t.Errorf("no error at line %s about %s:\n%s", want.line, want.text, r.stderr)
		}
	}
	mustContain(t, "summary", r.stderr, "the config has 4 errors")

	// A file that is not there is one plain error.
	r = runCmd(context.Background(), nil, "check", "-c", filepath.Join(dir, "nope.yaml"))
	if r.code != exitError || !strings.Contains(r.stderr, "no such file") {
		t.Errorf("missing file: exit %d: %s", r.code, r.stderr)
	}
}

func TestCheckWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warn.yaml")
	writeFile(t, path, `metrics:
  listen: 0.0.0.0:9733
tees:
  - name: t1
    frontend: {type: demo}
`)
	r := runCmd(context.Background(), nil, "check", "-c", path)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^warning: ` + regexp.QuoteMeta(path) + `:2:\d+: .*0\.0\.0\.0:9733`).MatchString(r.stderr) {
		t.Errorf("warning: %q", r.stderr)
	}
}

// check warns about what this host lacks now — a serial port that is not
// plugged in, a capture directory never made — without failing, and says
// so in its summary.
func TestCheckHostWarnings(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	writeFile(t, cfg, `tees:
  - name: fw1
    frontend:
      type: serial
      path: /dev/ttyUSB-chartee-absent
      failover:
        - {type: serial, path: /dev/null}
    backends:
      - {name: cap, type: file, path: `+dir+`/missing/fw1.log}
      - {name: ok, type: file, path: `+dir+`/fw1.log}
`)
	r := runCmd(context.Background(), nil, "check", cfg)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr,
		"warning: "+cfg+":4:7: tee fw1 frontend (serial): path: /dev/ttyUSB-chartee-absent does not exist now; chartee keeps retrying it",
		"warning: "+cfg+":9:9: tee fw1 backend cap (file): path: the directory "+dir+"/missing does not exist", "mkdir -p "+dir+"/missing")
	if n := strings.Count(r.stderr, "warning:"); n != 2 {
		t.Errorf("%d warnings, want 2 (the present failover and capture are fine):\n%s", n, r.stderr)
	}
	mustContain(t, "stdout", r.stdout, cfg+": ok (1 tee, 2 backends; 2 warnings above)")
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("check made the directory")
	}
}

// The systemd unit makes the directories the shipped configs use.
func TestSystemdUnitMakesItsDirectories(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(configsDir, "chartee.service"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "chartee.service", string(b), "\nLogsDirectory=chartee\n", "\nRuntimeDirectory=chartee\n")
	for _, f := range []string{"serial-failover.yaml", "capture-alongside.yaml"} {
		c, err := os.ReadFile(filepath.Join(configsDir, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(c), "\n") {
			line = strings.TrimSpace(line)
			if strings.HasPrefix(line, "#") {
				continue
			}
			for _, field := range strings.Fields(line) {
				field = strings.Trim(field, `"',{}`)
				if strings.HasPrefix(field, "/var/") && !strings.HasPrefix(field, "/var/log/chartee/") {
					t.Errorf("%s: %s is outside /var/log/chartee, which the unit does not make", f, field)
				}
				if strings.HasPrefix(field, "/run/") && !strings.HasPrefix(field, "/run/chartee/") {
					t.Errorf("%s: %s is outside /run/chartee, which the unit does not make", f, field)
				}
			}
		}
	}
}

// The example configs can run side by side (but for the control socket,
// which is where ctl looks by default): no two bind the same TCP address,
// the metrics port included.
func TestExampleConfigsBindDistinctAddresses(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(configsDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	owner := map[string]string{}
	for _, f := range files {
		cfg, err := config.Load(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var claims []chardev.Claim
		claims = append(claims, cfg.Metrics.Claims()...)
		for _, tc := range cfg.Tees {
			for _, b := range tc.Backends {
				if c, ok := b.Spec.(chardev.Claimer); ok {
					claims = append(claims, c.Claims()...)
				}
			}
		}
		for _, c := range claims {
			if c.Space != "tcp" || c.Address == "" {
				continue
			}
			_, port, _ := net.SplitHostPort(c.Address)
			if port == "0" {
				continue
			}
			if prev, ok := owner[port]; ok && prev != filepath.Base(f) {
				t.Errorf("port %s is bound by both %s and %s", port, prev, filepath.Base(f))
			}
			owner[port] = filepath.Base(f)
		}
	}
	if len(owner) < 5 {
		t.Fatalf("found only %d TCP ports in the configs: %v", len(owner), owner)
	}
}
