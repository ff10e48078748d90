package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"chartee/access"
)

const passwdUsage = `Usage: chartee passwd [--bcrypt]

Reads a password (twice, without echo, on a terminal; one line otherwise)
and prints its hash for the password key of a user in the access section.
The hash is argon2id unless --bcrypt is given. The password itself is
never stored.
`

func (a *app) passwd(args []string) int {
	fs := newFlagSet("chartee passwd", a.stderr, passwdUsage)
	useBcrypt := fs.Bool("bcrypt", false, "make a bcrypt hash instead of argon2id")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprint(a.stderr, "chartee passwd: takes no arguments (the password is read from the terminal or stdin)\n")
		return exitUsage
	}
	pw, err := a.readPassword()
	if err != nil {
		fmt.Fprintf(a.stderr, "chartee passwd: %v\n", err)
		return exitError
	}
	algo := "argon2id"
	if *useBcrypt {
		algo = "bcrypt"
	}
	h, err := access.HashPassword(pw, algo)
	if err != nil {
		fmt.Fprintf(a.stderr, "chartee %v\n", err)
		return exitError
	}
	fmt.Fprintln(a.stdout, h)
	return exitOK
}

// readPassword reads the password: from a terminal twice with echo off,
// else the first line of stdin.
func (a *app) readPassword() (string, error) {
	f, ok := a.stdin.(*os.File)
	if ok {
		if old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			noEcho := *old
			noEcho.Lflag &^= unix.ECHO
			unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &noEcho)
			defer unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old)
			r := bufio.NewReader(f)
			fmt.Fprint(a.stderr, "password: ")
			p1, err := readLine(r)
			fmt.Fprint(a.stderr, "\nagain: ")
			p2, err2 := readLine(r)
			fmt.Fprintln(a.stderr)
			if err != nil || err2 != nil {
				return "", fmt.Errorf("reading the password: %v", firstErr(err, err2))
			}
			if p1 != p2 {
				return "", fmt.Errorf("the passwords differ")
			}
			return p1, nil
		}
	}
	return readLine(bufio.NewReader(a.stdin))
}

func readLine(r *bufio.Reader) (string, error) {
	s, err := r.ReadString('\n')
	if err != nil && (err != io.EOF || s == "") {
		if err == io.EOF {
			return "", fmt.Errorf("no password given")
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
