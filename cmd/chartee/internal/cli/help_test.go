package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every command's help goes to stdout, exit 0, whether asked with
// --help, -h or `chartee help COMMAND`, and every flag is written one way.
func TestHelpIsConsistent(t *testing.T) {
	ctx := context.Background()
	singleDashWord := regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+`)
	for _, cmd := range []string{"run", "check", "ctl", "console", "passwd", "types", "completion"} {
		want := runCmd(ctx, nil, cmd, "--help")
		if want.code != exitOK || want.stderr != "" || !strings.HasPrefix(want.stdout, "Usage: chartee "+cmd) {
			t.Errorf("%s --help: exit %d, stdout %.60q, stderr %q", cmd, want.code, want.stdout, want.stderr)
			continue
		}
		for _, args := range [][]string{{cmd, "-h"}, {"help", cmd}, {cmd, "extra", "-h"}} {
			r := runCmd(ctx, nil, args...)
			if r.code != exitOK || r.stdout != want.stdout || r.stderr != "" {
				t.Errorf("%q: exit %d, stderr %q, same stdout as --help: %v", args, r.code, r.stderr, r.stdout == want.stdout)
			}
		}
		if m := singleDashWord.FindString(want.stdout); m != "" {
			t.Errorf("%s --help lists a word flag with one dash: %q", cmd, m)
		}
	}
	if r := runCmd(ctx, nil, "help", "bogus"); r.code != exitUsage || !strings.Contains(r.stderr, `unknown command "bogus"`) {
		t.Errorf("help bogus: %d %q", r.code, r.stderr)
	}
	r := runCmd(ctx, nil, "--help")
	if r.code != exitOK || !strings.Contains(r.stdout, "chartee help [COMMAND]") || !strings.Contains(r.stdout, "go install ./cmd/chartee") {
		t.Errorf("--help: %d %q", r.code, r.stdout)
	}
}

func TestTypesCommand(t *testing.T) {
	ctx := context.Background()
	r := runCmd(ctx, nil, "types")
	if r.code != exitOK {
		t.Fatalf("types: %d %s", r.code, r.stderr)
	}
	for _, want := range []string{"serial", "tcp-listen", "file", "ringbuf", "demo"} {
		if !regexp.MustCompile(`(?m)^` + want + `\s+\S`).MatchString(r.stdout) {
			t.Errorf("types: no line for %s:\n%s", want, r.stdout)
		}
	}
	r = runCmd(ctx, nil, "types", "tcp-listen")
	mustContain(t, "types tcp-listen", r.stdout, "tcp-listen: ", "KEY", "listen", "protocol", "escape", "notices", "tls.cert", "every backend:", "on_overflow")
	if !regexp.MustCompile(`(?m)^\s+max_clients\s+integer\s+-\s+MaxClients caps`).MatchString(r.stdout) {
		t.Errorf("types tcp-listen: max_clients line:\n%s", r.stdout)
	}
	r = runCmd(ctx, nil, "types", "file")
	if !regexp.MustCompile(`(?m)^\s+rotate\.max_size\s+size`).MatchString(r.stdout) {
		t.Errorf("types file: no rotate.max_size:\n%s", r.stdout)
	}
	r = runCmd(ctx, nil, "types", "sereal")
	if r.code != exitUsage || !strings.Contains(r.stderr, `unknown type "sereal"`) {
		t.Errorf("unknown type: %d %q", r.code, r.stderr)
	}
}

// The bash script completes subcommands, ctl commands and types in a
// real bash. (zsh and fish are not installed here: their scripts are
// checked for the same words.)
func TestCompletion(t *testing.T) {
	ctx := context.Background()
	r := runCmd(ctx, nil, "completion", "bash")
	if r.code != exitOK {
		t.Fatalf("completion bash: %d %s", r.code, r.stderr)
	}
	script := filepath.Join(t.TempDir(), "c.bash")
	writeFile(t, script, r.stdout)
	complete := func(words ...string) string {
		t.Helper()
		prog := `source ` + script + `; COMP_WORDS=(` + strings.Join(quoteAll(words), " ") + `); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _chartee; echo "${COMPREPLY[@]}"`
		out, err := exec.Command("bash", "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := complete("chartee", "ty"); got != "types" {
		t.Errorf("chartee ty<TAB>: %q", got)
	}
	if got := complete("chartee", "ctl", "sw"); got != "swap swap-frontend" {
		t.Errorf("chartee ctl sw<TAB>: %q", got)
	}
	if got := complete("chartee", "types", "tcp-"); got != "tcp-connect tcp-listen" {
		t.Errorf("chartee types tcp-<TAB>: %q", got)
	}
	for _, sh := range []string{"zsh", "fish"} {
		r := runCmd(ctx, nil, "completion", sh)
		mustContain(t, sh, r.stdout, "chartee", "swap-frontend", "tcp-listen", "completion")
	}
	if r := runCmd(ctx, nil, "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: exit %d", r.code)
	}
}

func quoteAll(words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = "'" + w + "'"
	}
	return out
}

// docs/chartee.1 is what `chartee help --man` writes (make man), and man
// renders it.
func TestManPageIsCurrent(t *testing.T) {
	r := runCmd(context.Background(), nil, "help", "--man")
	if r.code != exitOK {
		t.Fatalf("help --man: %d %s", r.code, r.stderr)
	}
	cur, err := os.ReadFile("../../../../docs/chartee.1")
	if err != nil {
		t.Fatal(err)
	}
	if string(cur) != r.stdout {
		t.Fatal("docs/chartee.1 differs from `chartee help --man`: run make man")
	}
	if _, err := exec.LookPath("man"); err == nil {
		out, err := exec.Command("man", "-l", "-P", "cat", "../../../../docs/chartee.1").CombinedOutput()
		if err != nil {
			t.Fatalf("man: %v\n%s", err, out)
		}
		mustContain(t, "man output", string(out), "CHARTEE RUN", "chartee ctl", "swap TEE NAME SPEC")
	}
}

// The demo prints commands that work as printed: "chartee" when $PATH finds
// this very binary, "go run ./cmd/chartee" for a go-run build, else the
// binary's own path.
func TestSelfCommand(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "chartee")
	writeFile(t, exe, "")
	other := filepath.Join(t.TempDir(), "chartee")
	writeFile(t, other, "")
	found := func(p string) func(string) (string, error) {
		return func(string) (string, error) { return p, nil }
	}
	notFound := func(string) (string, error) { return "", exec.ErrNotFound }
	if cmd, _ := selfCommandFor(exe, found(exe)); cmd != "chartee" {
		t.Errorf("on PATH: %q", cmd)
	}
	if cmd, _ := selfCommandFor(exe, found(other)); cmd != exe {
		t.Errorf("another chartee on PATH: %q, want %s", cmd, exe)
	}
	if cmd, _ := selfCommandFor(exe, notFound); cmd != exe {
		t.Errorf("not on PATH: %q", cmd)
	}
	gorun := filepath.Join(t.TempDir(), "go-build123", "b001", "exe", "chartee")
	if cmd, note := selfCommandFor(gorun, notFound); cmd != "go run ./cmd/chartee" || !strings.Contains(note, "go install ./cmd/chartee") {
		t.Errorf("go run build: %q %q", cmd, note)
	}
}

// Every example uses the project's escape key, ^E, and the repository
// says its license.
func TestExamplesUseCtrlEAndLicenseIsThere(t *testing.T) {
	files, _ := filepath.Glob("../../../../configs/*.yaml")
	files = append(files, "../../../../README.md", "../../../../docs/FLEET.md")
	bad := regexp.MustCompile(`escape:\s*"?\^\]|--escape \^\]|\^\]\*\* then`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if m := bad.Find(b); m != nil {
			t.Errorf("%s uses ^] as the escape key: %q", f, m)
		}
	}
	lic, err := os.ReadFile("../../../../LICENSE")
	if err != nil || !strings.HasPrefix(string(lic), "MIT License") {
		t.Fatalf("LICENSE: %v %.40q", err, lic)
	}
	readme, _ := os.ReadFile("../../../../README.md")
	mustContain(t, "README", string(readme), "[LICENSE](LICENSE)", "go install ./cmd/chartee", "make build", "bin/chartee", "`^E`")
}
