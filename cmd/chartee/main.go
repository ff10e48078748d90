// Command chartee is the character-device T-adapter daemon: one frontend
// device fanned out to many backends, with hotswap of any of them. All of
// it lives in package cli so that it can be tested in-process; this file
// only hands over the arguments and the exit code.
package main

import (
	"os"

	"chartee/cmd/chartee/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
