package config

// Backend and device specs from the command line and from API bodies; the
// syntax is described in the package doc (doc.go).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"chartee/chardev"
)

// ParseSpec parses a backend given on the command line, "TYPE,key=value,..."
// or "@spec.yaml". The error, when not nil, is an ErrorList.
func ParseSpec(s string) (*Backend, error) {
	b, _, err := parseBackendSpec(s)
	return b, err
}

// ParseDeviceSpec parses a frontend device given on the command line: like
// ParseSpec, but with only the type and its own keys (no name, no leg
// keys), and only a single-stream type.
func ParseDeviceSpec(s string) (*Device, error) {
	d, _, err := parseDeviceSpec(s)
	return d, err
}

// SpecToJSON turns a command-line spec into the JSON object an API request
// takes, after checking it: the keys given, nested as sections, with their
// decoded values (sizes and durations as strings with units).
func SpecToJSON(s string) (json.RawMessage, error) {
	b, root, err := parseBackendSpec(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	writeSpecJSON(&buf, root, b)
	return json.RawMessage(buf.Bytes()), nil
}

// DeviceSpecToJSON is SpecToJSON for a frontend device spec (as
// ParseDeviceSpec reads it): the JSON object a frontend swap takes as its
// "spec".
func DeviceSpecToJSON(s string) (json.RawMessage, error) {
	d, root, err := parseDeviceSpec(s)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	writeSpecJSON(&buf, root, &Backend{Device: *d})
	return json.RawMessage(buf.Bytes()), nil
}

// DecodeBackendJSON decodes an API body describing a backend: a JSON
// object with the keys of a backend in the config file.
func DecodeBackendJSON(data []byte) (*Backend, error) {
	return decodeJSON(data, (*walker).specBackend)
}

// DecodeDeviceJSON decodes an API body describing a frontend device: a JSON
// object with a type and the type's own keys.
func DecodeDeviceJSON(data []byte) (*Device, error) {
	return decodeJSON(data, (*walker).frontendDevice)
}

// decodeJSON decodes an API body with decode, or returns every problem as
// a sorted ErrorList.
func decodeJSON[T any](data []byte, decode func(*walker, *yaml.Node) *T) (*T, error) {
	w := &walker{mode: modeJSON}
	root, err := jsonNode(data)
	if err != nil {
		return nil, ErrorList{{Msg: err.Error()}}
	}
	v := decode(w, root)
	if err := w.failed(); err != nil {
		return nil, err
	}
	return v, nil
}

// parseBackendSpec parses a command-line backend and returns it with the
// node tree it came from.
func parseBackendSpec(s string) (*Backend, *yaml.Node, error) {
	return parseSpec(s, (*walker).specBackend)
}

// parseDeviceSpec is parseBackendSpec for a frontend device spec.
func parseDeviceSpec(s string) (*Device, *yaml.Node, error) {
	return parseSpec(s, (*walker).frontendDevice)
}

// parseSpec reads a command-line spec and decodes it with decode; it
// returns the decoded value and its node, or every problem as a sorted
// ErrorList.
func parseSpec[T any](s string, decode func(*walker, *yaml.Node) *T) (*T, *yaml.Node, error) {
	w, root := specRoot(s)
	if err := w.failed(); err != nil {
		return nil, nil, err
	}
	v := decode(w, root)
	if err := w.failed(); err != nil {
		return nil, nil, err
	}
	return v, root, nil
}

// failed returns the problems found so far, sorted, or nil when there are
// none.
func (w *walker) failed() error {
	if w.count == 0 {
		return nil
	}
	w.errs.sort()
	return w.errs
}

// specBackend decodes a backend given alone (a spec or an API body).
func (w *walker) specBackend(root *yaml.Node) *Backend {
	b, _ := w.backend(root, "")
	if b != nil {
		b.Given = givenKeys(w.deref(root))
	}
	return b
}

// givenKeys lists the top-level keys of a mapping node.
func givenKeys(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	keys := []string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	return keys
}

// frontendDevice decodes a device that is to be a frontend.
func (w *walker) frontendDevice(root *yaml.Node) *Device {
	d, meta := w.device(root, "", "device", nil, nil)
	if d != nil {
		w.checkSingleStream("", "frontend", d, meta)
	}
	return d
}

// specRoot turns a command-line spec into a node tree, reading the file of
// an "@file" spec, and returns the walker to decode it with.
func specRoot(s string) (*walker, *yaml.Node) {
	if file, ok := strings.CutPrefix(s, "@"); ok {
		w := &walker{file: file, mode: modeFile}
		data, err := os.ReadFile(file)
		if err != nil {
			w.errf(nil, "", "%v", err)
			return w, nil
		}
		root := w.parseYAML(data)
		if root == nil && w.count == 0 {
			w.errf(nil, "", "the file is empty: want a mapping with type and its keys")
		}
		return w, root
	}
	w := &walker{mode: modeCLI}
	if !utf8.ValidString(s) {
		// JSON and YAML cannot carry it, so neither could the API.
		w.errf(nil, "", "not valid UTF-8")
		return w, nil
	}
	return w, w.cliNode(s)
}

// cliItem is one comma-separated part of a spec, unescaped, with the
// 1-based column it starts at.
type cliItem struct {
	text string
	col  int
}

// splitCLI splits s at single commas; a doubled comma is a literal one.
func splitCLI(s string) []cliItem {
	var items []cliItem
	var cur strings.Builder
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] != ',' {
			cur.WriteByte(s[i])
			continue
		}
		if i+1 < len(s) && s[i+1] == ',' {
			cur.WriteByte(',')
			i++
			continue
		}
		items = append(items, cliItem{cur.String(), start + 1})
		cur.Reset()
		start = i + 1
	}
	return append(items, cliItem{cur.String(), start + 1})
}

// cliNode builds the node tree of a "TYPE,key=value,..." spec. Every node
// has Line 1 and, as its Column, the column of its key, which errors name.
// Values keep an empty tag so they resolve like YAML plain scalars.
func (w *walker) cliNode(s string) *yaml.Node {
	root := &yaml.Node{Kind: yaml.MappingNode}
	if strings.TrimSpace(s) == "" {
		w.errf(nil, "", "empty; want TYPE,key=value,... (like file,name=cap,path=/tmp/cap.log)")
		return root
	}
	for i, it := range splitCLI(s) {
		key, val, hasEq := strings.Cut(it.text, "=")
		if !hasEq {
			if i == 0 {
				root.Content = append(root.Content, cliScalar("type", it.col, true), cliScalar(it.text, it.col, false))
				continue
			}
			if it.text == "" {
				w.errf(nil, "", "empty option at column %d (a stray comma? write a comma inside a value as ,,)", it.col)
			} else {
				w.errf(&yaml.Node{Column: it.col}, it.text, "want key=value")
			}
			continue
		}
		if key == "" || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
			w.errf(nil, "", "option %q at column %d: want key=value with a key like path or tls.cert", it.text, it.col)
			continue
		}
		parts := strings.Split(key, ".")
		m := root
		for j, part := range parts {
			if j == len(parts)-1 {
				m.Content = append(m.Content, cliScalar(part, it.col, true), cliScalar(val, it.col, false))
				break
			}
			m = cliSection(m, part, it.col)
		}
	}
	return root
}

// cliSection returns the mapping under key in m, made by an earlier dotted
// key, or adds one. A key already given a plain value gets a second entry,
// which the walk reports as a duplicate.
func cliSection(m *yaml.Node, key string, col int) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.MappingNode {
			return m.Content[i+1]
		}
	}
	sub := &yaml.Node{Kind: yaml.MappingNode, Line: 1, Column: col}
	m.Content = append(m.Content, cliScalar(key, col, true), sub)
	return sub
}

func cliScalar(v string, col int, isKey bool) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Value: v, Line: 1, Column: col}
	if isKey {
		n.Tag = "!!str"
	}
	return n
}

// cliList splits a command-line list value, "a;b;c", into a sequence; a
// doubled ';' is a literal one. An empty value is an empty list.
func cliList(n *yaml.Node) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode, Line: n.Line, Column: n.Column}
	if n.Value == "" {
		return seq
	}
	var cur strings.Builder
	flush := func() {
		seq.Content = append(seq.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: cur.String(), Line: n.Line, Column: n.Column})
		cur.Reset()
	}
	s := n.Value
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == ';' && i+1 < len(s) && s[i+1] == ';':
			cur.WriteByte(';')
			i++
		case s[i] == ';':
			flush()
		default:
			cur.WriteByte(s[i])
		}
	}
	flush()
	return seq
}

// jsonNode parses a JSON object into a node tree for the walk. It is built
// from encoding/json's tokens rather than by the YAML parser so that only
// JSON is accepted and strings stay strings (a JSON "1" never becomes a
// number).
func jsonNode(data []byte) (*yaml.Node, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := jsonValue(dec, 0)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("want a JSON object, got %s", describe(n))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: data after the object")
	}
	return n, nil
}

// maxJSONDepth bounds the nesting of a body: a spec is a few levels deep,
// and the recursion below must not follow a hostile body down a million.
const maxJSONDepth = 32

func jsonValue(dec *json.Decoder, depth int) (*yaml.Node, error) {
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				val, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Style: yaml.DoubleQuotedStyle}, val)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				val, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", v)
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: yaml.DoubleQuotedStyle}, nil
	case json.Number:
		tag := "!!float"
		if _, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// writeSpecJSON writes the keys of root, a backend's node tree, as a JSON
// object with the values b decoded them to.
func writeSpecJSON(buf *bytes.Buffer, root *yaml.Node, b *Backend) {
	buf.WriteByte('{')
	first := true
	spec := reflect.ValueOf(b.Spec).Elem()
	sch := schemaOf(spec.Type())
	forEachPair(root, func(name string, val *yaml.Node) {
		var v any
		switch name {
		case "name":
			v = b.Name
		case "type":
			v = b.Type
		case "input":
			v = b.Leg.Input
		case "queue":
			v = chardev.Size(b.Leg.Queue)
		case "on_overflow":
			v = b.Leg.Overflow
		case "replay":
			v = chardev.Size(b.Leg.Replay)
		default:
			f, ok := sch.fields[name]
			if !ok {
				return
			}
			writeKey(buf, &first, name)
			writeFieldJSON(buf, val, f, spec.FieldByIndex(f.index))
			return
		}
		writeKey(buf, &first, name)
		writeJSONValue(buf, v)
	})
	buf.WriteByte('}')
}

// writeFieldJSON writes a spec field: a section key by key as given, any
// other value whole.
func writeFieldJSON(buf *bytes.Buffer, n *yaml.Node, f schemaField, v reflect.Value) {
	n = derefPlain(n)
	if f.sub != nil && n != nil && n.Kind == yaml.MappingNode {
		if v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() == reflect.Struct {
			buf.WriteByte('{')
			first := true
			forEachPair(n, func(name string, val *yaml.Node) {
				sf, ok := f.sub.fields[name]
				if !ok {
					return
				}
				writeKey(buf, &first, name)
				writeFieldJSON(buf, val, sf, v.FieldByIndex(sf.index))
			})
			buf.WriteByte('}')
			return
		}
	}
	writeJSONValue(buf, v.Interface())
}

func writeKey(buf *bytes.Buffer, first *bool, name string) {
	if !*first {
		buf.WriteByte(',')
	}
	*first = false
	k, _ := json.Marshal(name)
	buf.Write(k)
	buf.WriteByte(':')
}

func writeJSONValue(buf *bytes.Buffer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte("null")
	}
	buf.Write(b)
}

// forEachPair calls fn for each entry of mapping n.
func forEachPair(n *yaml.Node, fn func(name string, val *yaml.Node)) {
	n = derefPlain(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := derefPlain(n.Content[i]); k != nil {
			fn(k.Value, n.Content[i+1])
		}
	}
}

// derefPlain follows aliases of a tree already walked (and so bounded).
func derefPlain(n *yaml.Node) *yaml.Node {
	for depth := 0; n != nil && n.Kind == yaml.AliasNode && depth < 100; depth++ {
		n = n.Alias
	}
	return n
}
