package handover

import (
	"bufio"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"pgregory.net/rapid"
)

// FuzzMessage: any line the new process may send parses into a known
// message or fails with errBadMessage, never panics, and what parses
// formats back to the same line.
func FuzzMessage(f *testing.F) {
	for _, seed := range []string{"prepared v1.2.3", "ready devel", "running received=1ms adopted=3ms", "fail config.yaml:3:5: unknown key",
		"fail", "commit", "state 3 10", "prepared", "ready \x00", "", " ", "prepared  two  spaces"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseMessage(line)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v is not errBadMessage", err)
			}
			return
		}
		if got := formatMessage(m.kind, m.arg); got != line+"\n" && !(m.arg == "" && got == m.kind+"\n") {
			t.Fatalf("%q parsed to %+v, which formats to %q", line, m, got)
		}
	})
}

// FuzzStateHeader: any header the old process may send parses into
// counts within the limits or fails with errBadMessage; what parses
// formats back to the same line.
func FuzzStateHeader(f *testing.F) {
	for _, seed := range []string{"state 0 0", "state 1000 123456", "state 01 2", "state -1 2", "state 1 2 3", "state 1048577 0",
		"state 0 268435457", "state  1 2", "state 1 +2", "commit", "state 99999999999999999999 1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		files, size, err := parseStateHeader(line)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error %v is not errBadMessage", err)
			}
			return
		}
		if files < 0 || files > maxFiles || size < 0 || size > maxState {
			t.Fatalf("%q parsed to %d files, %d bytes: outside the limits", line, files, size)
		}
		if got := formatStateHeader(files, size); got != line+"\n" {
			t.Fatalf("%q parsed to %d %d, which formats to %q", line, files, size, got)
		}
	})
}

// FuzzPrepared: whatever an old process sends after "prepared", the new
// process's Prepared returns the state or an error, never panics, and
// never claims files that did not come.
func FuzzPrepared(f *testing.F) {
	for _, seed := range []string{"state 0 2\n{}", "state 0 5\n{}", "state 2 0\nFF", "state 0 0\n", "commit\n", "state 0 3\nabc trailing", "\n", ""} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		old := os.NewFile(uintptr(pair[0]), "old")
		conn, err := unixConn(os.NewFile(uintptr(pair[1]), "new"))
		if err != nil {
			t.Fatal(err)
		}
		in := newInherited(conn)
		defer conn.Close()
		go func() {
			old.Write(stream)
			old.Close()
		}()
		err = in.Prepared("v")
		if err != nil {
			return
		}
		line, _, _ := strings.Cut(string(stream), "\n")
		files, size, perr := parseStateHeader(line)
		if perr != nil || files != 0 || len(in.Files) != 0 || len(in.State) != size {
			t.Fatalf("Prepared accepted %q: %d files, %d bytes of state", stream, len(in.Files), len(in.State))
		}
	})
}

// TestMessageRoundTrip: any kind the new process sends and any info
// survive formatting and parsing (made one line).
func TestMessageRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		kind := rapid.SampledFrom([]string{msgPrepared, msgReady, msgRunning, msgFail}).Draw(t, "kind")
		arg := rapid.String().Draw(t, "arg")
		line := formatMessage(kind, arg)
		rd := bufio.NewReader(strings.NewReader(line))
		got, err := readLine(rd)
		if err != nil {
			t.Fatalf("readLine(%q): %v", line, err)
		}
		m, err := parseMessage(got)
		if err != nil {
			t.Fatalf("parseMessage(%q): %v", got, err)
		}
		want := strings.NewReplacer("\n", "; ", "\x00", "").Replace(arg)
		if m.kind != kind || m.arg != want && len(want) <= maxLine-len(kind)-1 {
			t.Fatalf("%q -> %+v, want %s %q", line, m, kind, want)
		}
	})
}

// TestStateHeaderRoundTrip: counts within the limits survive.
func TestStateHeaderRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		files := rapid.IntRange(0, maxFiles).Draw(t, "files")
		size := rapid.IntRange(0, maxState).Draw(t, "size")
		f, s, err := parseStateHeader(strings.TrimSuffix(formatStateHeader(files, size), "\n"))
		if err != nil || f != files || s != size {
			t.Fatalf("%d %d -> %d %d %v", files, size, f, s, err)
		}
		if batches(files)*fdBatch < files || files > 0 && (batches(files)-1)*fdBatch >= files {
			t.Fatalf("batches(%d) = %d", files, batches(files))
		}
	})
}
