package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuditFileRotatesAndRecordsInput: the audit file is a rotating file
// device; attach records of every leg and input records naming the leg
// reach it, and with record_input: false only sizes do.
func TestAuditFileRotatesAndRecordsInput(t *testing.T) {
	dir := t.TempDir()
	auditPath := filepath.Join(dir, "audit.jsonl")
	text := func(record bool) string {
		return fmt.Sprintf(`
access:
  users: [{name: alice}]
  audit: {path: %q, record_input: %v, rotate: {max_size: 600, keep: 2}}
tees:
  - name: t
    frontend: {type: null}
    backends:
      - {name: raw, type: tcp-listen, listen: "127.0.0.1:0", input: true}
`, auditPath, record)
	}
	d, _, _ := start(t, parse(t, text(true)))
	tt, _ := d.Tee("t")
	var addr string
	for _, b := range tt.Stats().Backends {
		if b.Name == "raw" {
			addr = b.Source
		}
	}
	for i := 0; i < 8; i++ {
		c := dialTCP(t, addr)
		fmt.Fprintf(c, "typed-%d\n", i)
		waitFor(t, "input written", func() bool { return tt.Stats().Frontend.BytesIn >= uint64(8*(i+1)) })
		c.Close()
	}
	// Read both files inside the wait: a rotation renames .1 to .2
	// before the live file to .1, so .1 is briefly missing.
	var all []byte
	waitFor(t, "rotated audit files holding the input", func() bool {
		old, err1 := os.ReadFile(auditPath + ".1")
		cur, err2 := os.ReadFile(auditPath)
		if err1 != nil || err2 != nil {
			return false
		}
		all = append(old, cur...)
		return bytes.Contains(all, []byte(`"data":"typed-7\n"`)) && bytes.Contains(all, []byte(`"kind":"attach"`))
	})
	sc := bufio.NewScanner(bytes.NewReader(all))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line %q is not JSON: %v", sc.Text(), err)
		}
	}
	// record_input: false by reload: sizes only from now on.
	if _, err := d.Apply(t.Context(), parse(t, text(false))); err != nil {
		t.Fatal(err)
	}
	c := dialTCP(t, addr)
	fmt.Fprintf(c, "secret-password\n")
	waitFor(t, "input written", func() bool { return tt.Stats().Frontend.BytesIn >= 64+16 })
	c.Close()
	waitFor(t, "the size-only record", func() bool {
		return bytes.Contains(readFile(t, auditPath), []byte(`"bytes":16`))
	})
	if b := readFile(t, auditPath); strings.Contains(string(b), "secret-password") {
		t.Fatalf("record_input: false logged the text:\n%s", b)
	}
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
