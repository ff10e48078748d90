// Command chartee is the character-device T-adapter daemon: one frontend
// device fanned out to many backends, with hotswap of any of them.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "chartee: the daemon is under construction; see README.md")
	os.Exit(1)
}
