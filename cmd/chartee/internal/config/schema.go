package config

import (
	"encoding"
	"reflect"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// schema is the set of keys a struct accepts in YAML, read from its yaml
// tags the way go-yaml reads them (`,inline` embeds a struct's keys, "-"
// hides a field, an untagged field's key is its lower-cased name).
//
// The config layer needs it because go-yaml cannot be trusted to refuse
// unknown keys: KnownFields(true) is lost as soon as a node is decoded with
// Node.Decode, so a typo in a backend option would be accepted silently.
// With the schema every key is checked, at every depth, by this package,
// and each value is decoded on its own into its field, so even a type error
// carries the value's line and column.
type schema struct {
	fields map[string]schemaField
	keys   []string // sorted, for "known: ..." in messages
}

// schemaField is one key of a schema.
type schemaField struct {
	index []int        // for reflect.Value.FieldByIndex, through inlined structs
	typ   reflect.Type // the field's type
	// sub is the schema of a nested options struct (tls, rotate,
	// reconnect), or of the element of a list of them; nil for values
	// decoded whole (strings, numbers, sizes, durations, lists of those).
	sub *schema
}

var schemaCache sync.Map // reflect.Type -> *schema

// schemaOf returns the schema of struct type t.
func schemaOf(t reflect.Type) *schema {
	if s, ok := schemaCache.Load(t); ok {
		return s.(*schema)
	}
	s := &schema{fields: map[string]schemaField{}}
	s.collect(t, nil, map[reflect.Type]bool{t: true})
	for k := range s.fields {
		s.keys = append(s.keys, k)
	}
	slices.Sort(s.keys)
	actual, _ := schemaCache.LoadOrStore(t, s)
	return actual.(*schema)
}

// collect adds the keys of struct t, reached through index, to s. seen
// guards against a struct that contains itself.
func (s *schema) collect(t reflect.Type, index []int, seen map[reflect.Type]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(slices.Clip(index), i)
		if slices.Contains(strings.Split(opts, ","), "inline") {
			if f.Type.Kind() == reflect.Struct {
				s.collect(f.Type, idx, seen)
			}
			// go-yaml also inlines a map (a catch-all for unknown
			// keys); no spec uses one, and it would defeat strictness.
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		s.fields[name] = schemaField{index: idx, typ: f.Type, sub: subSchema(f.Type, seen)}
	}
}

// subSchema returns the schema to check key by key for a field of type t:
// a struct, a pointer to one, or a list of either. Types that decode
// themselves (Size, Duration, anything with UnmarshalYAML or
// UnmarshalText) are values, not sections.
func subSchema(t reflect.Type, seen map[reflect.Type]bool) *schema {
	if t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || decodesItself(t) || seen[t] {
		return nil
	}
	seen[t] = true
	defer delete(seen, t)
	sub := &schema{fields: map[string]schemaField{}}
	sub.collect(t, nil, seen)
	for k := range sub.fields {
		sub.keys = append(sub.keys, k)
	}
	slices.Sort(sub.keys)
	return sub
}

// obsoleteUnmarshaler is go-yaml's older hook, used by chardev.Size and
// chardev.Duration so that package chardev needs no YAML import.
type obsoleteUnmarshaler interface {
	UnmarshalYAML(unmarshal func(any) error) error
}

var (
	yamlUnmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteUnmarshalerType = reflect.TypeFor[obsoleteUnmarshaler]()
	textUnmarshalerType     = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodesItself reports whether values of t are decoded by their own
// method rather than field by field.
func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(yamlUnmarshalerType) || p.Implements(obsoleteUnmarshalerType) ||
		p.Implements(textUnmarshalerType)
}
