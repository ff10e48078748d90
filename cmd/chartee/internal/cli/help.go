package cli

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// commands are the subcommands, for dispatch, help and completion (set in
// init: help and completion refer to it).
var commands map[string]func(*app, []string) int

func init() {
	commands = map[string]func(*app, []string) int{
		"run":        (*app).run,
		"check":      (*app).check,
		"ctl":        (*app).ctl,
		"console":    (*app).console,
		"passwd":     (*app).passwd,
		"types":      (*app).types,
		"completion": (*app).completion,
	}
}

// commandNames lists the subcommands in the order help shows them.
func commandNames() []string {
	names := make([]string, 0, len(commands)+2)
	for n := range commands {
		names = append(names, n)
	}
	slices.Sort(names)
	return append(names, "help", "version")
}

// helpRequested reports whether args ask for help (-h, -help, --help,
// before any "--").
func helpRequested(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// help is `chartee help [COMMAND]`: the general help, or the command's.
func (a *app) help(args []string) int {
	if len(args) == 0 {
		a.usage(a.stdout)
		return exitOK
	}
	if _, ok := commands[args[0]]; ok && len(args) == 1 {
		return a.commandHelp(args[0])
	}
	if args[0] == "--man" && len(args) == 1 {
		writeMan(a.stdout, a)
		return exitOK
	}
	fmt.Fprintf(a.stderr, "chartee help: unknown command %q (one of: %s)\n", strings.Join(args, " "), strings.Join(commandNames(), ", "))
	return exitUsage
}

// commandHelp prints a command's help to stdout: the command itself
// prints it, with -h, to what it takes as its error stream.
func (a *app) commandHelp(cmd string) int {
	h := *a
	h.stderr = a.stdout
	commands[cmd](&h, []string{"--help"})
	return exitOK
}

// printFlags lists fs's flags in one style: --name for words, -c for
// single letters, with the value's name and the default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		name, usage := flag.UnquoteUsage(f)
		line := "  " + dash + f.Name
		if name != "" {
			line += " " + name
		}
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.DefValue != "0s" {
			usage += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		if len(line) <= 22 {
			fmt.Fprintf(w, "%-24s%s\n", line, usage)
		} else {
			fmt.Fprintf(w, "%s\n%24s%s\n", line, "", usage)
		}
	})
}

// flagName writes a flag the way help lists it: --word, -c.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}
