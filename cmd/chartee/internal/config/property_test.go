package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"pgregory.net/rapid"
)

// genSpec is a random valid backend: its type and its keys (dotted for
// sections) with typed values: string, int, bool, []string, or a size or
// duration written as a string.
type genSpec struct {
	typ  string
	keys []genKV
}

type genKV struct {
	key string
	val any
}

// text is a string value that survives every spelling: not empty and not
// "~" (which YAML plain scalars, and so the CLI, read as empty).
func text(t *rapid.T, label string) string {
	return rapid.StringMatching(`[a-zA-Z0-9/._:=, ;~-]{0,10}[a-zA-Z0-9/._:=, ;-]`).Draw(t, label)
}

// listItem is a list element: also not starting with ';', which the CLI
// would read as an escaped ';' ending the previous item.
func listItem(t *rapid.T, label string) string {
	return rapid.StringMatching(`[a-zA-Z0-9/._:=, -][a-zA-Z0-9/._:=, ;-]{0,8}`).Draw(t, label)
}

func sizeVal(t *rapid.T, label string, max int) any {
	unit := rapid.SampledFrom([]string{"", "KiB", "MiB"}).Draw(t, label+"_unit")
	switch unit {
	case "KiB":
		return strconv.Itoa(rapid.IntRange(0, max>>10).Draw(t, label)) + "KiB"
	case "MiB":
		if max>>20 > 0 {
			return strconv.Itoa(rapid.IntRange(0, max>>20).Draw(t, label)) + "MiB"
		}
	}
	return rapid.IntRange(0, max).Draw(t, label)
}

func durVal(t *rapid.T, label string) any {
	return strconv.Itoa(rapid.IntRange(0, 100000).Draw(t, label)) + rapid.SampledFrom([]string{"ms", "s", "m", "h"}).Draw(t, label+"_unit")
}

func genBackend(t *rapid.T) genSpec {
	g := genSpec{}
	add := func(key string, val any) { g.keys = append(g.keys, genKV{key, val}) }
	maybe := func(key string, f func() any) {
		if rapid.Bool().Draw(t, "has_"+key) {
			add(key, f())
		}
	}
	enum := func(opts ...string) func() any {
		return func() any { return rapid.SampledFrom(opts).Draw(t, "enum") }
	}
	g.typ = rapid.SampledFrom([]string{"file", "tcp-listen", "serial", "exec", "udp", "ringbuf", "null", "tcp-connect"}).Draw(t, "type")
	add("name", rapid.StringMatching(`[a-z0-9][a-z0-9_.-]{0,10}`).Draw(t, "name"))
	maybe("input", func() any { return rapid.Bool().Draw(t, "input") })
	maybe("queue", func() any { return sizeVal(t, "queue", 64<<20) })
	maybe("on_overflow", enum("drop", "block", "disconnect"))
	maybe("replay", func() any { return sizeVal(t, "replay", 64<<10) })
	switch g.typ {
	case "file":
		add("path", text(t, "path"))
		maybe("format", enum("raw", "timestamped", "asciicast"))
		maybe("direction", enum("out", "in", "both"))
		maybe("append", func() any { return rapid.Bool().Draw(t, "append") })
		maybe("rotate.max_size", func() any { return sizeVal(t, "max_size", 1<<30) })
		maybe("rotate.keep", func() any { return rapid.IntRange(0, 20).Draw(t, "keep") })
		maybe("width", func() any { return rapid.IntRange(1, 500).Draw(t, "width") })
		maybe("height", func() any { return rapid.IntRange(1, 200).Draw(t, "height") })
	case "tcp-listen":
		add("listen", "127.0.0.1:"+strconv.Itoa(rapid.IntRange(0, 65535).Draw(t, "port")))
		maybe("allow", func() any {
			return rapid.SliceOfN(rapid.SampledFrom([]string{"10.0.0.0/8", "127.0.0.1/32", "::1", "192.168.1.7"}), 0, 3).Draw(t, "allow")
		})
		maybe("max_clients", func() any { return rapid.IntRange(0, 1000).Draw(t, "max_clients") })
		maybe("on_full", enum("reject", "kick-oldest"))
		maybe("protocol", enum("raw", "telnet", "rfc2217"))
		maybe("control", func() any { return rapid.Bool().Draw(t, "control") })
		maybe("banner", func() any { return text(t, "banner") })
		maybe("idle_timeout", func() any { return durVal(t, "idle") })
		if rapid.Bool().Draw(t, "tls") {
			add("tls.cert", text(t, "cert"))
			add("tls.key", text(t, "key"))
		}
	case "serial":
		add("path", text(t, "path"))
		maybe("baud", func() any { return rapid.IntRange(1, 4000000).Draw(t, "baud") })
		maybe("data_bits", func() any { return rapid.IntRange(5, 8).Draw(t, "data_bits") })
		maybe("parity", enum("none", "odd", "even", "mark", "space"))
		maybe("stop_bits", enum("1", "2"))
		maybe("flow", enum("none", "rtscts", "xonxoff"))
		maybe("dtr", func() any { return rapid.Bool().Draw(t, "dtr") })
		maybe("exclusive", func() any { return rapid.Bool().Draw(t, "exclusive") })
	case "exec":
		add("command", rapid.SliceOfN(rapid.Custom(func(t *rapid.T) string { return listItem(t, "arg") }), 1, 4).Draw(t, "command"))
		maybe("env", func() any {
			return rapid.SliceOfN(rapid.StringMatching(`[A-Z][A-Z0-9_]{0,5}=[a-z0-9 ,;=]{0,5}`), 0, 3).Draw(t, "env")
		})
		maybe("dir", func() any { return text(t, "dir") })
		maybe("pty", func() any { return rapid.Bool().Draw(t, "pty") })
	case "udp":
		add("remote", "127.0.0.1:"+strconv.Itoa(rapid.IntRange(1, 65535).Draw(t, "port")))
		maybe("max_datagram", func() any { return rapid.IntRange(1, 65507).Draw(t, "max_datagram") })
	case "ringbuf":
		maybe("size", func() any { return sizeVal(t, "size", 1<<30) })
	case "tcp-connect":
		add("address", "127.0.0.1:"+strconv.Itoa(rapid.IntRange(1, 65535).Draw(t, "port")))
		maybe("protocol", enum("raw", "telnet", "rfc2217"))
		maybe("connect_timeout", func() any { return durVal(t, "timeout") })
		maybe("tls.server_name", func() any { return text(t, "server_name") })
	}
	// Order does not matter to any spelling: shuffle it.
	keys := rapid.Permutation(g.keys).Draw(t, "order")
	g.keys = keys
	return g
}

// cli renders g in the command-line syntax.
func (g genSpec) cli() string {
	parts := []string{g.typ}
	for _, kv := range g.keys {
		var v string
		switch x := kv.val.(type) {
		case []string:
			items := make([]string, len(x))
			for i, it := range x {
				items[i] = strings.ReplaceAll(it, ";", ";;")
			}
			v = strings.Join(items, ";")
		default:
			v = fmt.Sprint(x)
		}
		parts = append(parts, kv.key+"="+strings.ReplaceAll(v, ",", ",,"))
	}
	return strings.Join(parts, ",")
}

// tree nests g's dotted keys into maps, for JSON and YAML.
func (g genSpec) tree() map[string]any {
	m := map[string]any{"type": g.typ}
	for _, kv := range g.keys {
		cur := m
		parts := strings.Split(kv.key, ".")
		for _, p := range parts[:len(parts)-1] {
			sub, ok := cur[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				cur[p] = sub
			}
			cur = sub
		}
		cur[parts[len(parts)-1]] = kv.val
	}
	return m
}

// TestPropertySpellingsAgree checks that one random backend written as a
// CLI spec, as a JSON body, as YAML in a config file, and as the JSON that
// SpecToJSON makes of the CLI spec, decodes to the same thing every time.
func TestPropertySpellingsAgree(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := genBackend(t)
		cli := g.cli()
		b1, err := ParseSpec(cli)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", cli, err)
		}
		body, err := json.Marshal(g.tree())
		if err != nil {
			t.Fatal(err)
		}
		b2, err := DecodeBackendJSON(body)
		if err != nil {
			t.Fatalf("DecodeBackendJSON(%s): %v", body, err)
		}
		j, err := SpecToJSON(cli)
		if err != nil {
			t.Fatalf("SpecToJSON(%q): %v", cli, err)
		}
		b3, err := DecodeBackendJSON(j)
		if err != nil {
			t.Fatalf("DecodeBackendJSON(SpecToJSON(%q) = %s): %v", cli, j, err)
		}
		doc, err := yaml.Marshal(map[string]any{"tees": []any{map[string]any{
			"name": "t", "frontend": map[string]any{"type": "null"}, "backends": []any{g.tree()},
		}}})
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := Parse("prop.yaml", doc)
		if err != nil {
			t.Fatalf("Parse:\n%s\n%v", doc, err)
		}
		b4 := cfg.Tees[0].Backends[0]
		for i, b := range []*Backend{b2, b3, b4} {
			if b.Canonical != b1.Canonical || b.Name != b1.Name || b.Leg != b1.Leg || b.Type != b1.Type {
				t.Fatalf("spelling %d differs from CLI %q:\n%s %s %+v\n%s %s %+v", i+2, cli,
					b1.Name, b1.Canonical, b1.Leg, b.Name, b.Canonical, b.Leg)
			}
		}
	})
}

// mutate changes s a few times at random: deletes, inserts and repeats
// bytes, biased to the syntax's special characters.
func mutate(t *rapid.T, s string) string {
	b := []byte(s)
	for range rapid.IntRange(1, 4).Draw(t, "mutations") {
		pos := 0
		if len(b) > 0 {
			pos = rapid.IntRange(0, len(b)-1).Draw(t, "pos")
		}
		switch rapid.IntRange(0, 2).Draw(t, "op") {
		case 0:
			if len(b) > 0 {
				b = append(b[:pos], b[pos+1:]...)
			}
		case 1:
			c := rapid.SampledFrom([]byte(",=.;@:{}[]\"\\ \x00\xffa1-~#&*!|>")).Draw(t, "byte")
			b = append(b[:pos], append([]byte{c}, b[pos:]...)...)
		case 2:
			end := min(len(b), pos+rapid.IntRange(0, 8).Draw(t, "len"))
			b = append(b[:end], append(append([]byte{}, b[pos:end]...), b[end:]...)...)
		}
	}
	return string(b)
}

// TestPropertyMutationsNeverPanic feeds mutated valid specs and bodies to
// every parser: each must return a result or an error, and a spec that
// still parses must still round-trip through JSON.
func TestPropertyMutationsNeverPanic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		g := genBackend(t)
		s := mutate(t, g.cli())
		if strings.HasPrefix(s, "@") {
			s = s[1:] // never read files named by chance
		}
		if b, err := ParseSpec(s); err == nil {
			checkRoundTrip(t, s, b)
		} else if err.Error() == "" {
			t.Fatalf("ParseSpec(%q): empty error", s)
		}
		_, _ = ParseDeviceSpec(s)
		body, _ := json.Marshal(g.tree())
		mb := mutate(t, string(body))
		if b, err := DecodeBackendJSON([]byte(mb)); err == nil && b.Canonical == "" {
			t.Fatalf("DecodeBackendJSON(%s): no canonical form", mb)
		}
		_, _ = DecodeDeviceJSON([]byte(mb))
	})
}

// checkRoundTrip checks that a parsed spec's JSON decodes to the same
// backend.
func checkRoundTrip(t interface{ Fatalf(string, ...any) }, s string, b *Backend) {
	j, err := SpecToJSON(s)
	if err != nil {
		t.Fatalf("ParseSpec(%q) succeeded but SpecToJSON failed: %v", s, err)
	}
	b2, err := DecodeBackendJSON(j)
	if err != nil {
		t.Fatalf("DecodeBackendJSON(SpecToJSON(%q) = %s): %v", s, j, err)
	}
	if b2.Canonical != b.Canonical || b2.Name != b.Name || b2.Leg != b.Leg {
		t.Fatalf("round trip of %q via %s differs:\n%s %+v\n%s %+v", s, j, b.Canonical, b.Leg, b2.Canonical, b2.Leg)
	}
}
