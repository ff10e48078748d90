package backends

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A capture opened and discarded (a failed start) leaves the disk as it
// was; one that is used writes its header and truncates as configured.
func TestFileDiscardUndoesTheOpen(t *testing.T) {
	dir := t.TempDir()
	spec := func(name string, format FileFormat, appendTo bool) FileSpec {
		s := *NewFileSpec()
		s.Path = filepath.Join(dir, name)
		s.Format = format
		s.Append = appendTo
		return s
	}
	fresh, err := NewFile(spec("fresh.cast", FileAsciicast, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fresh.cast")); !os.IsNotExist(err) {
		t.Fatalf("discarded new capture still exists: %v", err)
	}

	old := filepath.Join(dir, "old.log")
	if err := os.WriteFile(old, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := NewFile(spec("old.log", FileRaw, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Discard(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(old); string(b) != "keep me\n" {
		t.Fatalf("discard truncated an existing file: %q", b)
	}

	// Used: the truncation and the header happen at the first write.
	used, err := NewFile(spec("used.cast", FileAsciicast, false))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := used.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := used.Discard(); err != nil { // too late to undo: it closes
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "used.cast"))
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], `{"version":2`) || !strings.Contains(lines[1], `"hello"`) {
		t.Fatalf("used capture: %q", b)
	}

	// Closed without any output: a valid, empty recording.
	empty, err := NewFile(spec("empty.cast", FileAsciicast, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "empty.cast")); !strings.HasPrefix(string(b), `{"version":2`) {
		t.Fatalf("closed empty capture has no header: %q", b)
	}
}

func TestFileMissingDirectorySaysWhatToDo(t *testing.T) {
	s := *NewFileSpec()
	s.Path = filepath.Join(t.TempDir(), "no", "such", "dir", "c.log")
	_, err := NewFile(s)
	if err == nil || !strings.Contains(err.Error(), "does not exist: create it with mkdir -p ") || !strings.Contains(err.Error(), "LogsDirectory=") {
		t.Fatalf("error %v, want the missing directory and the fix", err)
	}
}
