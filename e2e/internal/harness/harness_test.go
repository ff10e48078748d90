package harness

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failer is what readCpio needs of a *testing.T or a *rapid.T.
type failer interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// readCpio parses a newc archive back: the writer's inverse, independent of
// it (fixed offsets straight from the format description).
func readCpio(t failer, b []byte) []CpioEntry {
	t.Helper()
	var out []CpioEntry
	off := 0
	field := func(i int) uint32 {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("offset %d field %d: %v", off, i, err)
		}
		return uint32(v)
	}
	align := func(n int) int { return (n + 3) &^ 3 }
	for {
		if string(b[off:off+6]) != "070701" {
			t.Fatalf("offset %d: bad magic %q", off, b[off:off+6])
		}
		mode, size, rmaj, rmin, nsize := field(1), int(field(6)), field(9), field(10), int(field(11))
		name := string(b[off+110 : off+110+nsize-1])
		if b[off+110+nsize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		data := off + align(110+nsize)
		if name == "TRAILER!!!" {
			if len(b)%4 != 0 {
				t.Errorf("archive length %d not 4-aligned", len(b))
			}
			return out
		}
		out = append(out, CpioEntry{Name: name, Mode: mode, Data: bytes.Clone(b[data : data+size]), Major: rmaj, Minor: rmin})
		off = align(data + size)
	}
}

func TestWriteCpioRoundTrip(t *testing.T) {
	in := []CpioEntry{
		{Name: "bin", Mode: ModeDir | 0o755},
		{Name: "dev/console", Mode: ModeChar | 0o600, Major: 5, Minor: 1},
		{Name: "a", Mode: ModeRegular | 0o644, Data: []byte("x")},
		{Name: "bb", Mode: ModeRegular | 0o644, Data: []byte("four")},
		{Name: "ccc", Mode: ModeRegular | 0o644, Data: []byte{}},
		{Name: "bin/sh", Mode: ModeSymlink | 0o777, Data: []byte("busybox")},
	}
	var buf bytes.Buffer
	if err := WriteCpio(&buf, in); err != nil {
		t.Fatal(err)
	}
	got := readCpio(t, buf.Bytes())
	if len(got) != len(in) {
		t.Fatalf("got %d entries, want %d", len(got), len(in))
	}
	for i := range in {
		if got[i].Name != in[i].Name || got[i].Mode != in[i].Mode || !bytes.Equal(got[i].Data, in[i].Data) ||
			got[i].Major != in[i].Major || got[i].Minor != in[i].Minor {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], in[i])
		}
	}
}

// TestWriteCpioReadByCpio has the real cpio program list the archive: the
// round trip above only proves WriteCpio agrees with this package's own
// reader. cpio is installed by .ci/run; missing, the test fails (or skips,
// loudly, under CHARTEE_E2E=skip).
func TestWriteCpioReadByCpio(t *testing.T) {
	cpio := RequireProgram(t, "cpio", "cpio")
	var buf bytes.Buffer
	if err := WriteCpio(&buf, []CpioEntry{
		{Name: "bin", Mode: ModeDir | 0o755},
		{Name: "bin/hello", Mode: ModeRegular | 0o755, Data: []byte("hello\n")},
		{Name: "init", Mode: ModeSymlink | 0o777, Data: []byte("bin/hello")},
	}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cpio, "-t", "--quiet")
	cmd.Stdin = &buf
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v: %s", err, out)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "bin bin/hello init" {
		t.Errorf("cpio -t lists %q", got)
	}
}

func TestParseStty(t *testing.T) {
	out := `speed 9600 baud; rows 0; columns 0; line = 0;
intr = ^C; quit = ^\; erase = ^?; kill = ^U; eof = ^D; eol = <undef>;
-parenb -parodd -cmspar cs8 hupcl -cstopb cread clocal -crtscts
`
	s := parseStty(out)
	if s.Baud != 9600 || s.DataBits != 8 || s.Parity != "none" || s.StopBits != 1 {
		t.Errorf("got %+v", s)
	}
	s = parseStty("speed 115200 baud; line = 0;\nparenb parodd -cmspar cs7 cstopb\n")
	if s.Baud != 115200 || s.DataBits != 7 || s.Parity != "odd" || s.StopBits != 2 {
		t.Errorf("got %+v", s)
	}
	s = parseStty("speed 19200 baud;\nparenb -parodd cs7 -cstopb\n")
	if s.Parity != "even" {
		t.Errorf("got %+v", s)
	}
}

// TestPtyPairStty checks the socat pair and stty helpers on real ptys:
// settings made on one end read back, bytes cross. (Linux ptys force cs8
// and no parity since 6.x: only speed and stop bits are settable.)
func TestPtyPairStty(t *testing.T) {
	dir := t.TempDir()
	pair := StartPtyPair(t, "socat", filepath.Join(dir, "a"), filepath.Join(dir, "b"))
	stty := RequireProgram(t, "stty", "coreutils")
	if out, err := exec.Command(stty, "-F", pair.A, "57600", "cstopb").CombinedOutput(); err != nil {
		t.Fatalf("stty: %v: %s", err, out)
	}
	s := Stty(t, pair.A)
	if s.Baud != 57600 || s.StopBits != 2 || s.DataBits != 8 {
		t.Errorf("read back %+v", s)
	}
	a, b := OpenTTY(t, pair.A), OpenTTY(t, pair.B)
	rec := Record(t, "b", b)
	defer a.Close()
	if _, err := a.Write([]byte("over the cable")); err != nil {
		t.Fatal(err)
	}
	rec.WaitFor(t, "over the cable", 0, timeoutShort)
}

func TestLookProgramNamesPackage(t *testing.T) {
	_, err := LookProgram("chartee-no-such-program", "chartee-pkg")
	if err == nil || !strings.Contains(err.Error(), `"chartee-pkg"`) || !strings.Contains(err.Error(), "apt-get install -y chartee-pkg") {
		t.Errorf("error does not name the package: %v", err)
	}
	if p, err := LookProgram("sh", "dash"); err != nil || p == "" {
		t.Errorf("sh: %q %v", p, err)
	}
	_ = os.Getenv
}
