// Package harness runs the real programs chartee's end-to-end tests drive:
// the chartee binary itself, QEMU booting a Debian kernel with a busybox
// initramfs, telnet in a pty, socat, pyserial. Every process it starts is
// put in its own process group and killed with the group when the test
// ends, so a failed test leaves nothing running.
package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// SkipEnv is the variable a developer sets to "skip" to skip the e2e tests
// locally. CI never sets it (.ci/run unsets it).
const SkipEnv = "CHARTEE_E2E"

// Skipping reports whether the e2e tests are switched off.
func Skipping() bool { return strings.EqualFold(os.Getenv(SkipEnv), "skip") }

// SkipBanner is printed by the e2e TestMain when the tests are switched
// off, so nobody mistakes a skipped run for a passing one.
const SkipBanner = `
######################################################################
##  CHARTEE_E2E=skip: THE END-TO-END TESTS WERE SKIPPED, NOT RUN.   ##
##  Nothing in e2e/ was verified. CI never skips them; unset        ##
##  CHARTEE_E2E to run them (.ci/run lists the Debian packages).    ##
######################################################################
`

// AnnounceSkip prints SkipBanner on stderr and, because go test hides a
// passing package's output unless -v is given, on the controlling terminal
// too when there is one: a developer must not take the skip for a pass.
func AnnounceSkip() {
	fmt.Fprint(os.Stderr, SkipBanner)
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		fmt.Fprint(tty, SkipBanner)
		tty.Close()
	}
}

// Begin starts an e2e test: it skips it (loudly) when CHARTEE_E2E=skip.
func Begin(t testing.TB) {
	t.Helper()
	if Skipping() {
		t.Skip("SKIPPED: CHARTEE_E2E=skip — this end-to-end test did not run")
	}
}

// RequireProgram returns the path of program, or fails the test naming the
// Debian package that provides it. A missing program is never a skip: CI
// installs them all, and a developer sets CHARTEE_E2E=skip explicitly.
func RequireProgram(t testing.TB, program, debianPackage string) string {
	t.Helper()
	Begin(t)
	path, err := LookProgram(program, debianPackage)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// LookProgram finds program on PATH or in the usual system directories
// (sbin is not on every user's PATH; ser2net lives there).
func LookProgram(program, debianPackage string) (string, error) {
	if strings.HasPrefix(program, "/") {
		if _, err := os.Stat(program); err == nil {
			return program, nil
		}
	} else if path, err := exec.LookPath(program); err == nil {
		return path, nil
	} else {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
			if _, err := os.Stat(dir + "/" + program); err == nil {
				return dir + "/" + program, nil
			}
		}
	}
	return "", fmt.Errorf("e2e: required program %s not found: install the Debian package %q "+
		"(apt-get install -y %s), or set %s=skip to skip the end-to-end tests locally",
		program, debianPackage, debianPackage, SkipEnv)
}
