package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"chartee/e2e/internal/harness"
)

// Issue 12 from outside: the real OpenSSH client against chartee's SSH
// service, with keys made by ssh-keygen and a known_hosts file written from
// the host key chartee reports.

// sshRig is a running chartee with users alice (operate on c0 and lk), bob
// (view on c0) and root (admin on lk), their keys, and a known_hosts file.
type sshRig struct {
	c        *harness.Chartee
	dir      string
	addr     string
	link     string // c0's pty frontend
	known    string
	auditLog string
	capTS    string
	capCast  string
}

func sshKey(t *testing.T, dir, name string) string {
	t.Helper()
	keygen := harness.RequireProgram(t, "ssh-keygen", "openssh-client")
	p := filepath.Join(dir, name)
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", name+"@test", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	return p
}

func keyFingerprint(t *testing.T, key string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-l", "-E", "sha256", "-f", key+".pub").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[1]
}

func newSSHRig(t *testing.T) *sshRig { return newSSHRigExtra(t, "", false) }

// newSSHRigExtra is newSSHRig with more top-level config (metrics:),
// running the daemon built without the race detector when plain.
func newSSHRigExtra(t *testing.T, extra string, plain bool) *sshRig {
	t.Helper()
	harness.Begin(t)
	harness.RequireProgram(t, "ssh", "openssh-client")
	dir := t.TempDir()
	r := &sshRig{dir: dir, addr: harness.FreeAddr(t), link: filepath.Join(dir, "console"),
		known: filepath.Join(dir, "known_hosts"), auditLog: filepath.Join(dir, "audit.jsonl"),
		capTS: filepath.Join(dir, "c0.log"), capCast: filepath.Join(dir, "c0.cast")}
	for _, u := range []string{"alice", "bob", "root", "mallory"} {
		sshKey(t, dir, u)
	}
	r.c = harness.NewChartee(t, dir)
	r.c.Plain = plain
	r.c.WriteConfig(t, extra+fmt.Sprintf(`
control:
  socket: %[1]q
access:
  users:
    - {name: alice, authorized_keys_file: %[2]q}
    - {name: bob, authorized_keys_file: %[3]q}
    - {name: root, authorized_keys_file: %[4]q, groups: [admins]}
  audit:
    path: %[5]q
ssh:
  listen: %[6]s
  host_key: %[7]q
  keepalive: 5s
tees:
  - name: c0
    frontend: {type: pty, link: %[8]q}
    access:
      operate: [alice]
      view: [bob]
    backends:
      - {name: raw, type: tcp-listen, listen: "127.0.0.1:0"}
      - {name: log, type: file, path: %[9]q, format: timestamped, direction: both}
      - {name: cast, type: file, path: %[10]q, format: asciicast, direction: both}
  - name: lk
    input: exclusive
    frontend:
      type: null
      failover: [{type: null}]
    access:
      operate: [alice]
      admin: ["@admins"]
  - name: secret
    frontend: {type: null}
    access:
      admin: [root]
`, r.c.Socket, filepath.Join(dir, "alice.pub"), filepath.Join(dir, "bob.pub"), filepath.Join(dir, "root.pub"),
		r.auditLog, r.addr, filepath.Join(dir, "hostkey"), r.link, r.capTS, r.capCast))
	r.c.Start(t)
	var info struct {
		SSH struct {
			KnownHosts  string `json:"known_hosts_line"`
			Fingerprint string `json:"host_key_fingerprint"`
		} `json:"ssh"`
	}
	if err := r.c.Request("GET", "/v1/access", nil, &info); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.SSH.Fingerprint, "SHA256:") {
		t.Fatalf("host key fingerprint %q", info.SSH.Fingerprint)
	}
	if err := os.WriteFile(r.known, []byte(info.SSH.KnownHosts+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "hostkey")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key file: %v %v", fi, err)
	}
	return r
}

// sshArgs is the ssh command line for login with key.
func (r *sshRig) sshArgs(key, login string, extra ...string) []string {
	_, port, _ := net.SplitHostPort(r.addr)
	args := []string{"-tt", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + r.known,
		"-o", "GlobalKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
		"-F", "/dev/null", "-i", filepath.Join(r.dir, key), "-p", port}
	args = append(args, extra...)
	return append(args, login+"@127.0.0.1")
}

// ssh runs the OpenSSH client in a pty, as a person would.
func (r *sshRig) ssh(t *testing.T, key, login string) *harness.Terminal {
	t.Helper()
	return harness.StartTerminal(t, "ssh "+login, harness.RequireProgram(t, "ssh", "openssh-client"), r.sshArgs(key, login)...)
}

// refused runs ssh and wants it to fail authentication.
func (r *sshRig) refused(t *testing.T, key, login string) {
	t.Helper()
	cmd := exec.Command("ssh", r.sshArgs(key, login)...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Permission denied") {
		t.Fatalf("ssh %s with %s's key: want Permission denied, got %v: %s", login, key, err, out)
	}
}

func auditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestSSHAccessWithOpenSSH(t *testing.T) {
	r := newSSHRig(t)
	waitFor(t, "the pty frontend", func() bool { return r.c.Tee(t, "c0").Frontend.Up })
	tty := harness.OpenTTY(t, r.link)
	device := harness.Record(t, "device", tty)
	raw, err := net.Dial("tcp", r.c.Addr(t, "c0", "raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	rawRec := harness.Record(t, "raw leg", raw)

	// Refusals: a wrong key, an unknown user.
	r.refused(t, "bob", "alice:c0")
	r.refused(t, "mallory", "mallory:c0")

	alice := r.ssh(t, "alice", "alice:c0")
	alice.Screen.WaitFor(t, "alice on c0 as operate", 0, timeoutLong)
	bob := r.ssh(t, "bob", "bob:c0")
	bob.Screen.WaitFor(t, "bob on c0 as view", 0, timeoutLong)
	waitFor(t, "two ssh legs", func() bool { return r.c.Tee(t, "c0").Backend(t, "ssh").Legs == 2 })

	// alice's typing reaches the device; the device's answer reaches
	// every leg: both people and the raw TCP client.
	alice.Type(t, "uname\r")
	device.WaitFor(t, "uname\r", 0, timeoutLong)
	tty.Write([]byte("Linux console 6.1\r\n"))
	for _, s := range []*harness.Recorder{alice.Screen, bob.Screen, rawRec} {
		s.WaitFor(t, "Linux console 6.1", 0, timeoutLong)
	}

	// bob is view only: his typing never reaches the device.
	before := device.Len()
	bob.Type(t, "reboot\r")
	bob.Screen.WaitFor(t, "view only", 0, timeoutLong)
	waitForState(t, "bob's 7 bytes discarded", func() (bool, string) {
		for _, l := range r.c.Tee(t, "c0").Legs {
			if l.User == "bob" {
				return l.Discarded == 7, fmt.Sprintf("%+v", l)
			}
		}
		return false, "no leg for bob"
	})
	alice.Type(t, "id\r") // a marker: once it arrives, bob's bytes would have too
	device.WaitFor(t, "id\r", before, timeoutLong)
	if got := device.Bytes()[before:]; !bytes.Equal(got, []byte("id\r")) {
		t.Fatalf("after bob typed, the device got %q (want only alice's %q): bob's bytes reached it", got, "id\r")
	}

	// ctl show names the people and their roles.
	show, err := r.c.Ctl(t, "show", "c0")
	if err != nil || !strings.Contains(show, "alice") || !strings.Contains(show, "operate") || !strings.Contains(show, "view") {
		t.Fatalf("ctl show: %v\n%s", err, show)
	}
	acc, err := r.c.Ctl(t, "show-access")
	if err != nil || !strings.Contains(acc, "SHA256:") || !strings.Contains(acc, "c0=operate") {
		t.Fatalf("ctl show-access: %v\n%s", err, acc)
	}

	// ^E . detaches; ssh exits 0.
	alice.Type(t, "\x05.")
	if err := alice.Proc.Wait(timeoutLong); err != nil {
		t.Fatalf("ssh after detach: %v\n%s", err, alice.Screen.Bytes())
	}
	bob.Type(t, "\x05.")
	bob.Proc.Wait(timeoutLong)
	waitFor(t, "sessions gone", func() bool { return r.c.Tee(t, "c0").Backend(t, "ssh").Legs == 0 })

	// The audit file names the user of every input chunk, and how each
	// session authenticated.
	aliceFP := keyFingerprint(t, filepath.Join(r.dir, "alice"))
	waitForState(t, "audit records", func() (bool, string) {
		recs := auditRecords(t, r.auditLog)
		var inputs, attach int
		for _, m := range recs {
			switch m["kind"] {
			case "input":
				if m["tee"] == "c0" {
					if m["user"] != "alice" {
						return false, fmt.Sprintf("input chunk without alice: %v", m)
					}
					inputs++
				}
			case "attach":
				if m["user"] == "alice" && m["auth_method"] == "publickey" && m["key_fingerprint"] == aliceFP && m["role"] == "operate" {
					attach++
				}
			}
		}
		return inputs >= 2 && attach == 1, fmt.Sprintf("%d alice inputs, %d attach records: %v", inputs, attach, recs)
	})
	var failed int
	for _, m := range auditRecords(t, r.auditLog) {
		if m["kind"] == "login-failed" {
			failed++
		}
	}
	if failed < 2 {
		t.Fatalf("audit: %d failed logins, want the 2 refused ones", failed)
	}
	// Captures of both directions name the typist.
	ts, _ := os.ReadFile(r.capTS)
	cast, _ := os.ReadFile(r.capCast)
	if !bytes.Contains(ts, []byte("<[alice] uname")) || bytes.Contains(ts, []byte("reboot")) {
		t.Fatalf("timestamped capture:\n%s", ts)
	}
	if !bytes.Contains(cast, []byte(`"m", "input by alice"`)) {
		t.Fatalf("asciicast capture:\n%s", cast)
	}
}

func TestSSHMenuListsOnlyPermittedConsoles(t *testing.T) {
	r := newSSHRig(t)
	alice := r.ssh(t, "alice", "alice")
	alice.Screen.WaitFor(t, "choose", 0, timeoutLong)
	menu := string(alice.Screen.Bytes())
	if !strings.Contains(menu, "c0") || !strings.Contains(menu, "lk") || strings.Contains(menu, "secret") {
		t.Fatalf("alice's menu:\n%s", menu)
	}
	alice.Type(t, "lk\r")
	alice.Screen.WaitFor(t, "alice on lk as operate", 0, timeoutLong)
	// A console alice may not see, asked for by name, is refused like
	// one that does not exist.
	out, err := exec.Command("ssh", r.sshArgs("alice", "alice:secret")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `no console "secret" for alice`) {
		t.Fatalf("alice:secret: %v: %s", err, out)
	}
	// An exec request is refused with a message.
	out, err = exec.Command("ssh", append(r.sshArgs("alice", "alice:c0", "-T"), "reboot")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "runs no commands") {
		t.Fatalf("exec: %v: %s", err, out)
	}
}

func TestSSHAdminStealsExclusiveLock(t *testing.T) {
	r := newSSHRig(t)
	alice := r.ssh(t, "alice", "alice:lk")
	alice.Screen.WaitFor(t, "as operate", 0, timeoutLong)
	alice.Type(t, "\x05l")
	alice.Screen.WaitFor(t, "write lock taken", 0, timeoutLong)
	root := r.ssh(t, "root", "root:lk")
	root.Screen.WaitFor(t, "as admin", 0, timeoutLong)
	alice.Type(t, "\x05!")
	alice.Screen.WaitFor(t, "steal: not permitted", 0, timeoutLong)
	root.Type(t, "\x05!")
	root.Screen.WaitFor(t, "write lock taken from alice", 0, timeoutLong)
	if st := r.c.Tee(t, "lk"); st.WriteLockUser != "root" {
		t.Fatalf("write lock holder %q (%q)", st.WriteLockUser, st.WriteLock)
	}
	// An admin moves the console to its failover device; alice may not.
	alice.Type(t, "\x05f")
	alice.Screen.WaitFor(t, "fail over: not permitted", 0, timeoutLong)
	root.Type(t, "\x05f")
	root.Screen.WaitFor(t, "frontend swapped from null to null", 0, timeoutLong)
	if st := r.c.Tee(t, "lk"); st.Frontend.Candidate != 1 {
		t.Fatalf("after ^E f the frontend is candidate %d, want the failover device (1)", st.Frontend.Candidate)
	}
	waitForState(t, "the steal and the swap in the audit file", func() (bool, string) {
		recs := auditRecords(t, r.auditLog)
		var stole, swapped bool
		for _, m := range recs {
			if m["kind"] == "write-lock" && m["user"] == "root" && m["from_user"] == "alice" {
				stole = true
			}
			if m["kind"] == "admin" && m["user"] == "root" && strings.Contains(fmt.Sprint(m["reason"]), "frontend swapped") {
				swapped = true
			}
		}
		if stole && swapped {
			return true, ""
		}
		return false, fmt.Sprint(recs)
	})
}

// TestSSHReloadRevokesAndDowngrades: a reload that takes bob's access away
// closes his session with a message; alice, downgraded to view, keeps
// watching and can no longer type.
func TestSSHReloadRevokesAndDowngrades(t *testing.T) {
	r := newSSHRig(t)
	waitFor(t, "the pty frontend", func() bool { return r.c.Tee(t, "c0").Frontend.Up })
	tty := harness.OpenTTY(t, r.link)
	device := harness.Record(t, "device", tty)
	alice := r.ssh(t, "alice", "alice:c0")
	alice.Screen.WaitFor(t, "as operate", 0, timeoutLong)
	bob := r.ssh(t, "bob", "bob:c0")
	bob.Screen.WaitFor(t, "as view", 0, timeoutLong)

	cfg, err := os.ReadFile(r.c.Config)
	if err != nil {
		t.Fatal(err)
	}
	grants := "      operate: [alice]\n      view: [bob]\n"
	if !bytes.Contains(cfg, []byte(grants)) {
		t.Fatalf("config lacks %q", grants)
	}
	r.c.WriteConfig(t, strings.Replace(string(cfg), grants, "      view: [alice]\n", 1))
	if out, err := r.c.Ctl(t, "reload"); err != nil {
		t.Fatalf("reload: %v\n%s", err, out)
	}
	bob.Screen.WaitFor(t, "access to c0 revoked for bob", 0, timeoutLong)
	if err := bob.Proc.Wait(timeoutLong); err == nil {
		t.Fatal("bob's ssh exited 0 after his access was revoked, want the session's failure status")
	}
	alice.Screen.WaitFor(t, "from operate to view", 0, timeoutLong)
	alice.Type(t, "halt\r")
	alice.Screen.WaitFor(t, "view only", 0, timeoutLong)
	waitForState(t, "alice's 5 bytes discarded", func() (bool, string) {
		for _, l := range r.c.Tee(t, "c0").Legs {
			if l.User == "alice" {
				return l.Discarded == 5 && l.Role == "view", fmt.Sprintf("%+v", l)
			}
		}
		return false, "no leg for alice"
	})
	tty.Write([]byte("still watching\r\n"))
	alice.Screen.WaitFor(t, "still watching", 0, timeoutLong)
	if n := device.Len(); n != 0 {
		t.Fatalf("alice typed as view and the device got %q", device.Bytes())
	}
}
