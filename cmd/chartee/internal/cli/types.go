package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
)

const typesUsage = `Usage: chartee types [--json] [TYPE]

Without TYPE, lists every backend type with one line about it. With TYPE,
lists its keys: name, type, default and what it does, read from the same
schema the config parser checks keys against. Keys with dots are nested
(tls.cert is "tls: {cert: ...}"); every backend also takes the keys shown
under "every backend".
`

func (a *app) types(args []string) int {
	fs := newFlagSet("chartee types", a.stderr, typesUsage)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	switch len(pos) {
	case 0:
		return a.listTypes(*asJSON)
	case 1:
		return a.showType(pos[0], *asJSON)
	}
	fmt.Fprintf(a.stderr, "chartee types: want at most one TYPE, got %d arguments\n", len(pos))
	return exitUsage
}

func (a *app) listTypes(asJSON bool) int {
	var types []string
	for _, t := range chardev.Types() {
		if !strings.HasSuffix(t, "-test") {
			types = append(types, t)
		}
	}
	if asJSON {
		out := map[string]string{}
		for _, t := range types {
			out[t] = config.TypeSummary(t)
		}
		return a.printJSON(out)
	}
	tw := newTable(a.stdout)
	for _, t := range types {
		fmt.Fprintf(tw, "%s\t%s\n", t, config.TypeSummary(t))
	}
	tw.Flush()
	fmt.Fprintln(a.stdout, "\nchartee types TYPE lists a type's keys.")
	return exitOK
}

func (a *app) showType(typ string, asJSON bool) int {
	docs, err := config.TypeDocs(typ)
	if err != nil {
		fmt.Fprintf(a.stderr, "chartee types: unknown type %q (chartee types lists them)\n", typ)
		return exitUsage
	}
	if asJSON {
		return a.printJSON(map[string]any{"type": typ, "summary": config.TypeSummary(typ), "keys": docs, "backend_keys": config.LegKeyDocs()})
	}
	fmt.Fprintf(a.stdout, "%s: %s\n\n", typ, config.TypeSummary(typ))
	writeKeyDocs(a, docs)
	fmt.Fprintln(a.stdout, "\nevery backend:")
	writeKeyDocs(a, config.LegKeyDocs())
	return exitOK
}

func writeKeyDocs(a *app, docs []config.KeyDoc) {
	if len(docs) == 0 {
		fmt.Fprintln(a.stdout, "  (no keys)")
		return
	}
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "  KEY\tTYPE\tDEFAULT\tWHAT")
	for _, d := range docs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", d.Key, d.Type, orDash(d.Default), d.Doc)
	}
	tw.Flush()
}

func (a *app) printJSON(v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(a.stderr, "chartee: %v\n", err)
		return exitError
	}
	return exitOK
}
