package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// mode is where the text being walked came from, which decides how an
// error says where it is.
type mode uint8

const (
	// modeFile: a YAML file; errors carry file:line:col.
	modeFile mode = iota
	// modeJSON: an API body; errors name the key path ("tls.cert: ...").
	modeJSON
	// modeCLI: a command-line spec; errors name the key and its column
	// in the spec string.
	modeCLI
)

// maxVisits bounds the nodes one walk looks at. Aliases let a small file
// name the same subtree over and over (the "billion laughs"); past the
// bound the walk stops with an error instead of running for ever.
const maxVisits = 200_000

// walker checks a yaml.Node tree against the config's shape and decodes it,
// collecting every problem rather than stopping at the first.
type walker struct {
	file   string
	mode   mode
	errs   ErrorList
	warns  ErrorList
	visits int
	// count is every error found, including those past maxErrors that
	// errs no longer holds, so a step can tell whether it added any.
	count int
	// claims maps a chardev.Claim's ID to where it was first claimed.
	claims map[string]*yaml.Node
}

// pos is where n is, for an error.
func (w *walker) pos(n *yaml.Node) Pos {
	if w.mode != modeFile {
		return Pos{}
	}
	if n == nil {
		return Pos{File: w.file}
	}
	return Pos{File: w.file, Line: n.Line, Col: n.Column}
}

// message puts path (the dotted key) in front of msg the way the mode
// wants it.
func (w *walker) message(n *yaml.Node, path, msg string) string {
	switch w.mode {
	case modeCLI:
		if path == "" {
			return "spec: " + msg
		}
		if n != nil && n.Column > 0 {
			return fmt.Sprintf("spec: key %q (at column %d): %s", path, n.Column, msg)
		}
		return "spec: " + path + ": " + msg
	default:
		if path == "" {
			return msg
		}
		return path + ": " + msg
	}
}

// errf records a problem at n, under the key path.
func (w *walker) errf(n *yaml.Node, path, format string, args ...any) {
	w.count++
	w.errs.add(w.pos(n), "%s", w.message(n, path, fmt.Sprintf(format, args...)))
}

// warnf records a non-fatal problem at n.
func (w *walker) warnf(n *yaml.Node, path, format string, args ...any) {
	w.warns.add(w.pos(n), "%s", w.message(n, path, fmt.Sprintf(format, args...)))
}

// firstAt points back at an earlier key n: " (first at line 3)", or ""
// when positions are not known (JSON).
func (w *walker) firstAt(n *yaml.Node) string {
	switch {
	case w.mode == modeCLI:
		return fmt.Sprintf(" (first at column %d)", n.Column)
	case w.mode == modeFile && n.Line > 0:
		return fmt.Sprintf(" (first at line %d)", n.Line)
	}
	return ""
}

// join appends key to a dotted path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// index appends a list index to a path.
func index(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// deref follows aliases and counts the visit. It returns nil once the walk
// has looked at too many nodes.
func (w *walker) deref(n *yaml.Node) *yaml.Node {
	w.visits++
	if w.visits == maxVisits {
		// Past the cap on errors too: this one says why the walk
		// stopped, so it is always kept.
		w.count++
		w.errs = append(w.errs, &Error{Pos: w.pos(n), Msg: w.message(n, "", "too many nodes (aliases expanding too far?); stopping here")})
	}
	if w.visits >= maxVisits {
		return nil
	}
	for depth := 0; n != nil && n.Kind == yaml.AliasNode; depth++ {
		if depth > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an empty or null value.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names what a node holds, for "want X, got Y".
func describe(n *yaml.Node) string {
	switch {
	case n == nil || n.Kind == 0:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.ShortTag() == "!!null":
		return "nothing (null)"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:40] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return strconv.Quote(v)
	case "!!int":
		return "the number " + v
	case "!!float":
		return "the number " + v
	case "!!bool":
		return "the boolean " + v
	}
	return strconv.Quote(v)
}

// pair is one key and its value in a mapping.
type pair struct {
	key, val *yaml.Node
	name     string
}

// pairs returns the entries of mapping n, reporting duplicate keys and keys
// that are not plain strings. what names the mapping for "want a mapping
// (what)". A null n is an empty mapping; ok is false when n is not a mapping.
func (w *walker) pairs(n *yaml.Node, path, what string) (ps []pair, ok bool) {
	n = w.deref(n)
	if isNull(n) {
		return nil, n != nil
	}
	if n.Kind != yaml.MappingNode {
		w.errf(n, path, "want a mapping (%s), got %s", what, describe(n))
		return nil, false
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := w.deref(n.Content[i])
		if k == nil {
			return ps, false
		}
		if k.Kind != yaml.ScalarNode {
			w.errf(k, path, "a key must be a plain name, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			w.errf(k, path, "merge keys (<<) are not supported; write the keys out")
			continue
		}
		name := k.Value
		if first, dup := seen[name]; dup {
			w.errf(k, join(path, name), "duplicate key%s", w.firstAt(first))
			continue
		}
		seen[name] = k
		ps = append(ps, pair{key: k, val: n.Content[i+1], name: name})
	}
	return ps, true
}

// unknownKey reports a key that is not one of known, suggesting the
// closest known one.
func (w *walker) unknownKey(p pair, path, what string, known []string) {
	msg := "unknown key for " + what
	if s := suggest(p.name, known); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	msg += " (known: " + strings.Join(known, ", ") + ")"
	w.errf(p.key, join(path, p.name), "%s", msg)
}

// section decodes mapping n into struct dst by schema s.
func (w *walker) section(n *yaml.Node, path, what string, s *schema, dst reflect.Value) {
	ps, _ := w.pairs(n, path, what)
	for _, p := range ps {
		f, ok := s.fields[p.name]
		if !ok {
			w.unknownKey(p, path, what, s.keys)
			continue
		}
		w.value(p.val, join(path, p.name), f, dst.FieldByIndex(f.index))
	}
}

// value decodes n into dst, a field described by f.
func (w *walker) value(n *yaml.Node, path string, f schemaField, dst reflect.Value) {
	if f.sub == nil {
		w.scalar(n, path, dst)
		return
	}
	n = w.deref(n)
	if n == nil {
		return
	}
	t := dst.Type()
	what := path[strings.LastIndexByte(path, '.')+1:]
	switch t.Kind() {
	case reflect.Slice:
		if isNull(n) {
			dst.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			w.errf(n, path, "want a list, got %s", describe(n))
			return
		}
		out := reflect.MakeSlice(t, 0, len(n.Content))
		for i, item := range n.Content {
			elem := reflect.New(t.Elem()).Elem()
			w.value(item, index(path, i), schemaField{typ: t.Elem(), sub: f.sub}, elem)
			out = reflect.Append(out, elem)
		}
		dst.Set(out)
	case reflect.Pointer:
		if isNull(n) {
			dst.Set(reflect.Zero(t))
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.New(t.Elem()))
		}
		w.section(n, path, what, f.sub, dst.Elem())
	default:
		w.section(n, path, what, f.sub, dst)
	}
}

// scalar decodes a single value (or a list of them) into dst, checking its
// type itself so the message is clear and points at the value.
func (w *walker) scalar(n *yaml.Node, path string, dst reflect.Value) {
	n = w.deref(n)
	if n == nil {
		return
	}
	t := dst.Type()
	if tu, ok := dst.Addr().Interface().(encoding.TextUnmarshaler); ok {
		w.text(n, path, tu)
		return
	}
	if decodesItself(t) {
		if err := n.Decode(dst.Addr().Interface()); err != nil {
			w.errf(n, path, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		w.pointer(n, path, dst)
		return
	case reflect.Slice:
		w.list(n, path, dst)
		return
	}
	if n.Kind != yaml.ScalarNode {
		w.errf(n, path, "want %s, got %s", kindWant(t), describe(n))
		return
	}
	w.plain(n, path, dst)
}

// text decodes a value whose type parses itself from text (a size, a
// duration).
func (w *walker) text(n *yaml.Node, path string, tu encoding.TextUnmarshaler) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		w.errf(n, path, "want a single value, got %s", describe(n))
		return
	}
	if err := tu.UnmarshalText([]byte(n.Value)); err != nil {
		w.errf(n, path, "%v", err)
	}
}

// pointer decodes an optional value: null leaves it nil, and it is set
// only when what it points to decoded without error.
func (w *walker) pointer(n *yaml.Node, path string, dst reflect.Value) {
	t := dst.Type()
	if isNull(n) {
		dst.Set(reflect.Zero(t))
		return
	}
	v := reflect.New(t.Elem())
	before := len(w.errs)
	w.scalar(n, path, v.Elem())
	if len(w.errs) == before {
		dst.Set(v)
	}
}

// list decodes a list of values; on the command line a single
// comma-separated value is a list too.
func (w *walker) list(n *yaml.Node, path string, dst reflect.Value) {
	t := dst.Type()
	if w.mode == modeCLI && n.Kind == yaml.ScalarNode {
		n = cliList(n)
	}
	if isNull(n) {
		dst.Set(reflect.Zero(t))
		return
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list, got %s", describe(n))
		return
	}
	out := reflect.MakeSlice(t, len(n.Content), len(n.Content))
	for i, item := range n.Content {
		w.scalar(item, index(path, i), out.Index(i))
	}
	dst.Set(out)
}

// plain decodes one scalar node into a string, bool or number, by its
// YAML tag: `port: "80"` is not a number and `enabled: yes` not a bool.
func (w *walker) plain(n *yaml.Node, path string, dst reflect.Value) {
	tag := n.ShortTag()
	switch dst.Kind() {
	case reflect.String:
		// Any scalar is a string, as written: `stop_bits: 1` means
		// "1", `mode: 0660` means "0660" and `type: null` is the null
		// backend. Only an empty value (or ~) is empty, which Validate
		// reports where it matters.
		if tag == "!!null" && (n.Value == "" || n.Value == "~") {
			dst.SetString("")
		} else {
			dst.SetString(n.Value)
		}
	case reflect.Bool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			w.errf(n, path, "want true or false, got %s", describe(n))
			return
		}
		dst.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		w.integer(n, path, dst, tag)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		w.unsigned(n, path, dst, tag)
	case reflect.Float32, reflect.Float64:
		var f float64
		if (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			w.errf(n, path, "want a number, got %s", describe(n))
			return
		}
		dst.SetFloat(f)
	default:
		if err := n.Decode(dst.Addr().Interface()); err != nil {
			w.errf(n, path, "%v", err)
		}
	}
}

// integer decodes a whole number that fits dst.
func (w *walker) integer(n *yaml.Node, path string, dst reflect.Value, tag string) {
	var i int64
	if tag != "!!int" || n.Decode(&i) != nil {
		w.errf(n, path, "want a whole number, got %s", describe(n))
		return
	}
	if dst.OverflowInt(i) {
		w.errf(n, path, "%d is out of range", i)
		return
	}
	dst.SetInt(i)
}

// unsigned decodes a non-negative whole number that fits dst.
func (w *walker) unsigned(n *yaml.Node, path string, dst reflect.Value, tag string) {
	var u uint64
	if tag != "!!int" || n.Decode(&u) != nil {
		w.errf(n, path, "want a non-negative whole number, got %s", describe(n))
		return
	}
	if dst.OverflowUint(u) {
		w.errf(n, path, "%d is out of range", u)
		return
	}
	dst.SetUint(u)
}

// kindWant names what a value of type t is written as.
func kindWant(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a single value"
}

// suggest returns the known name closest to name when it is close enough
// to be a typo, or "".
func suggest(name string, known []string) string {
	limit := 2
	if len(name) <= 3 {
		limit = 1
	}
	best, bestD := "", limit+1
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b:
// Levenshtein plus the swap of two neighbours, the commonest typo ("kye").
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
