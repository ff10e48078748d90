package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"chartee/chardev"
)

func execTestStart(t *testing.T, spec *ExecSpec) *Exec {
	t.Helper()
	e, err := StartExec(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// execReadAll reads until EOF, failing the test on another error or after
// serialTestTimeout.
func execReadAll(t *testing.T, dev io.Reader) string {
	t.Helper()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var buf bytes.Buffer
		_, err := io.Copy(&buf, dev)
		done <- result{buf.Bytes(), err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("read %q, then %v; want io.EOF", r.out, r.err)
		}
		return string(r.out)
	case <-time.After(serialTestTimeout):
		t.Fatal("no EOF after the program should have exited")
		return ""
	}
}

func TestExecCatThroughPty(t *testing.T) {
	f, err := chardev.Lookup("exec")
	if err != nil {
		t.Fatal(err)
	}
	spec := f.NewSpec().(*ExecSpec)
	spec.Command = []string{"/bin/cat"}
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := dev.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	// The pty is in its default cooked mode: the kernel echoes the line,
	// then cat prints it, both with NL turned into CRLF.
	serialReadUntil(t, dev, "hello\r\nhello\r\n")
	serialAssertCloseUnblocksRead(t, dev)
}

func TestExecCatThroughPipes(t *testing.T) {
	e := execTestStart(t, &ExecSpec{Command: []string{"cat"}})
	if _, err := e.Write([]byte("raw bytes\x00\x01")); err != nil {
		t.Fatal(err)
	}
	serialReadUntil(t, e, "raw bytes\x00\x01")
	serialAssertCloseUnblocksRead(t, e)
}

// When the program exits, its output is drained and then Read says EOF.
func TestExecEOFAfterExit(t *testing.T) {
	for _, usePty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", usePty), func(t *testing.T) {
			e := execTestStart(t, &ExecSpec{
				Command: []string{"/bin/sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done; echo err >&2"},
				Pty:     usePty,
			})
			out := strings.ReplaceAll(execReadAll(t, e), "\r\n", "\n")
			if !strings.Contains(out, "line 0\n") || !strings.Contains(out, "line 199\nerr\n") {
				t.Errorf("output %q: want all 200 lines then stderr", out)
			}
		})
	}
}

// Arguments reach the program verbatim: nothing is interpreted by a shell.
func TestExecArgvVerbatim(t *testing.T) {
	e := execTestStart(t, &ExecSpec{Command: []string{"/bin/echo", "a  b", "$HOME", ";", "*", "`id`"}})
	if out := execReadAll(t, e); out != "a  b $HOME ; * `id`\n" {
		t.Errorf("output %q", out)
	}
}

func TestExecEnvAndDir(t *testing.T) {
	dir := t.TempDir()
	e := execTestStart(t, &ExecSpec{
		Command: []string{"/bin/sh", "-c", `printf '%s|%s|%s\n' "$CHARTEE_A" "$CHARTEE_B" "$(pwd -P)"`},
		Env:     []string{"CHARTEE_A=one", "CHARTEE_B=two=2"},
		Dir:     dir,
	})
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if out, want := execReadAll(t, e), "one|two=2|"+real+"\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
}

// execProcessGone reports whether pid no longer runs: absent, or a zombie
// waiting for a parent that is not us.
func execProcessGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return err == nil && i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// Close kills the whole process group: the shell and the child it started,
// even though the child ignores the hangup.
func TestExecCloseKillsProcessGroup(t *testing.T) {
	for _, usePty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", usePty), func(t *testing.T) {
			e, err := StartExec(context.Background(), &ExecSpec{
				Command: []string{"/bin/sh", "-c", "trap '' HUP TERM; sleep 100 & echo pids $$ $! end; wait"},
				Pty:     usePty,
			})
			if err != nil {
				t.Fatal(err)
			}
			out := serialReadUntil(t, e, " end")
			m := regexp.MustCompile(`pids (\d+) (\d+) end`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("output %q: no pids", out)
			}
			var pids []int
			for _, s := range m[1:] {
				pid, _ := strconv.Atoi(s)
				pids = append(pids, pid)
				if execProcessGone(pid) {
					t.Fatalf("pid %d not running before Close", pid)
				}
			}
			if err := e.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			deadline := time.Now().Add(serialTestTimeout)
			for _, pid := range pids {
				for !execProcessGone(pid) {
					if time.Now().After(deadline) {
						t.Fatalf("pid %d still running after Close", pid)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

func TestExecStartErrors(t *testing.T) {
	for _, tc := range []struct {
		spec *ExecSpec
		want string
	}{
		{&ExecSpec{Command: []string{"/nonexistent/program", "arg"}, Pty: true}, "exec: start /nonexistent/program arg: "},
		{&ExecSpec{Command: []string{"chartee-no-such-program"}}, "executable file not found"},
		{&ExecSpec{Command: []string{"/bin/cat"}, Dir: "/nonexistent/dir"}, "exec: dir: stat /nonexistent/dir: no such file"},
		{&ExecSpec{Command: []string{"/bin/cat"}, Dir: "/bin/cat"}, "exec: dir: /bin/cat: not a directory"},
	} {
		_, err := StartExec(context.Background(), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want it to contain %q", tc.spec.Command, err, tc.want)
		}
	}
}

func TestExecSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec ExecSpec
		key  string
	}{
		{ExecSpec{}, "command"},
		{ExecSpec{Command: []string{""}}, "command"},
		{ExecSpec{Command: []string{"cat"}, Env: []string{"NOEQUALS"}}, "env"},
		{ExecSpec{Command: []string{"cat"}, Env: []string{"=value"}}, "env"},
	} {
		err := tc.spec.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "exec: "+tc.key+":") {
			t.Errorf("%+v: %v, want an error naming %s", tc.spec, err, tc.key)
		}
	}
	if !NewExecSpec().Pty {
		t.Error("pty should default to true")
	}
	e := &Exec{argv: []string{"ipmitool", "-P", "pass word"}}
	if d := e.Describe(); d != `exec ipmitool -P "pass word"` {
		t.Errorf("Describe() = %q", d)
	}
}
