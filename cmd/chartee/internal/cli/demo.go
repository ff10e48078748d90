package cli

import (
	"crypto/rand"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"chartee/access"
)

// demoYAML is the built-in demo config; see the comments in the file.
//
//go:embed demo.yaml
var demoYAML string

// demoFile names the embedded config in messages.
const demoFile = "<embedded demo>"

// demoDefaultPort is the demo's telnet port when --port is not given:
// fixed, so the instructions are the same every time.
const demoDefaultPort = 7000

// demoSetup is the built-in demo, made ready to parse.
type demoSetup struct {
	Dir     string // fresh temporary directory, kept after exit
	Capture string // capture file in Dir
	Socket  string // control socket
	Telnet  string // 127.0.0.1:PORT as configured (PORT may be 0)
	Web     string // the browser console's 127.0.0.1:PORT as configured
	// User and Password are the browser console's demo login.
	User, Password string
	YAML           []byte // the config with every placeholder filled in
	Notes          []string
	// fixedPort: a port is the demo's fixed default, found free but not
	// held; another program may bind it before the daemon does, and the
	// demo then starts again on free ports (see app.run).
	fixedPort bool
}

// prepareDemo fills in the demo config: a telnet listener on 127.0.0.1
// (port, or demoDefaultPort when port < 0), a capture file in a fresh
// temporary directory, and a control socket where `chartee ctl` looks for
// it (see demoSocketPath).
// With anyPort, the fixed default ports are not tried: free ones are
// taken at once.
func prepareDemo(port int, getenv func(string) string, anyPort bool) (*demoSetup, error) {
	dir, err := os.MkdirTemp("", "chartee-demo-")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	s := &demoSetup{Dir: dir, Capture: filepath.Join(dir, "console.log")}

	if port < 0 {
		port = demoDefaultPort
		// The default port may be taken, by another demo say; a free
		// port beats a failure here, since the real one is printed.
		if anyPort || !tcpPortFree(port) {
			s.Notes = append(s.Notes, fmt.Sprintf("127.0.0.1:%d is in use (another chartee demo?); the telnet listener takes a free port instead", port))
			port = 0
		} else {
			s.fixedPort = true
		}
	}
	s.Telnet = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	s.Socket = filepath.Join(dir, "control.sock")
	if well, err := demoSocketPath(getenv, true); err != nil {
		s.Notes = append(s.Notes, "control socket: "+err.Error()+"; using one in the demo directory")
	} else if socketLive(well) {
		s.Notes = append(s.Notes, "another chartee demo serves "+well+"; this one's control socket is in its own directory")
	} else {
		s.Socket = well
	}

	if err := s.webLogin(getenv, anyPort); err != nil {
		return nil, err
	}
	hash, err := access.HashPassword(s.Password, "argon2id")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	s.YAML = []byte(substitute(demoYAML, map[string]string{
		"SOCKET":   s.Socket,
		"TELNET":   s.Telnet,
		"CAPTURE":  s.Capture,
		"WEB":      s.Web,
		"DEMOHASH": hash,
	}))
	return s, nil
}

// demoWebPort is the browser console's port in the demo, when free.
const demoWebPort = 8080

// webLogin picks the browser console's address and the demo login: user
// demo, a random password unless CHARTEE_DEMO_PASSWORD sets one.
func (s *demoSetup) webLogin(getenv func(string) string, anyPort bool) error {
	port := demoWebPort
	if anyPort || !tcpPortFree(port) {
		s.Notes = append(s.Notes, fmt.Sprintf("127.0.0.1:%d is in use; the browser console takes a free port instead", port))
		port = 0
	} else {
		s.fixedPort = true
	}
	s.Web = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	s.User, s.Password = "demo", getenv("CHARTEE_DEMO_PASSWORD")
	if s.Password == "" {
		b := make([]byte, 9)
		if _, err := rand.Read(b); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		s.Password = base64.RawURLEncoding.EncodeToString(b)
	}
	return nil
}

// substitute replaces every @@NAME@@ with vars[NAME] as a double-quoted
// YAML string, so that a path with spaces, colons or quotes stays one
// plain string value.
func substitute(text string, vars map[string]string) string {
	for name, v := range vars {
		text = strings.ReplaceAll(text, "@@"+name+"@@", yamlQuote(v))
	}
	return text
}

// yamlQuote writes s as a YAML double-quoted scalar, escaping what YAML
// does not keep as is: quotes, backslashes, line breaks, and everything
// outside its printable set (control characters, DEL, C1 controls, BOM,
// U+FFFE/U+FFFF; invalid UTF-8 becomes U+FFFD).
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == 0x2028 || r == 0x2029:
			// Line breaks to YAML 1.1: they would fold with the spaces
			// around them.
			fmt.Fprintf(&b, "\\u%04X", r)
		case r == 0x20 || r >= 0x21 && r <= 0x7E || r >= 0xA0 && r <= 0xD7FF ||
			r >= 0xE000 && r <= 0xFFFD && r != 0xFEFF || r >= 0x10000 && r <= 0x10FFFF:
			b.WriteRune(r)
		case r <= 0xFFFF:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			fmt.Fprintf(&b, "\\U%08X", r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tcpPortFree reports whether port can be bound on 127.0.0.1 now (a
// variable: tests make it see a port free that is not).
var tcpPortFree = func(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// socketLive reports whether something accepts connections on the unix
// socket at path.
func socketLive(path string) bool {
	c, err := net.DialTimeout("unix", path, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// demoSocketPath is where the demo puts its control socket, so that `chartee
// ctl` finds it without --socket: $XDG_RUNTIME_DIR/chartee-demo.sock, or
// else $TMPDIR/chartee-UID/demo.sock. The second lives in a shared
// directory, so its parent must be ours alone (0700, owned by us, not a
// symlink); with create it is made so when missing.
func demoSocketPath(getenv func(string) string, create bool) (string, error) {
	if xdg := getenv("XDG_RUNTIME_DIR"); xdg != "" && filepath.IsAbs(xdg) {
		if fi, err := os.Stat(xdg); err == nil && fi.IsDir() {
			return filepath.Join(xdg, "chartee-demo.sock"), nil
		}
	}
	dir := filepath.Join(os.TempDir(), "chartee-"+strconv.Itoa(os.Getuid()))
	if create {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	if err := checkPrivateDir(dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, "demo.sock"), nil
}

// checkPrivateDir refuses a directory others could plant a socket in.
func checkPrivateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case fi.Mode().Perm()&0o077 != 0:
		return fmt.Errorf("%s is open to other users (mode %v)", dir, fi.Mode().Perm())
	case !ok || int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to another user", dir)
	}
	return nil
}
