package config

import (
	"fmt"
	"reflect"
	"strings"

	"chartee/chardev"
)

// KeyDoc describes one key a backend type accepts, for `chartee types
// TYPE`: its name (nested keys with dots), type, default and doc. It is
// read from the same schema the parser checks keys against, and the docs
// from the spec structs' field comments in the sources the binary was
// built from (chardev.FieldDoc), so it cannot drift from what the parser
// takes.
type KeyDoc struct {
	Key     string `json:"key"`
	Type    string `json:"type"`
	Default string `json:"default,omitempty"`
	Doc     string `json:"doc,omitempty"`
}

// typeSummaries is the one line `chartee types` shows per type.
// TestEveryTypeHasASummary keeps it complete.
var typeSummaries = map[string]string{
	"demo":         "a simulated console for trying chartee out (nothing is executed)",
	"exec":         "a program's terminal, e.g. ipmitool … sol activate (argv list, never a shell)",
	"file":         "a capture file: raw, timestamped or asciicast, with rotation",
	"nats":         "publish output to NATS / JetStream, take input from it",
	"null":         "discards output, never types (tests)",
	"pty":          "a pseudo-terminal for minicom, picocom or screen",
	"ringbuf":      "in-memory scrollback, read by offset (chartee ctl tail)",
	"serial":       "a serial port",
	"stdio":        "chartee's own stdin and stdout (foreground use)",
	"tcp-connect":  "one TCP connection to a server (a console server, QEMU on TCP)",
	"tcp-listen":   "a TCP port: every client is a leg (raw, telnet, RFC 2217; TLS)",
	"udp":          "UDP: every remote peer a leg, and/or a fixed peer",
	"unix-connect": "one connection to a unix socket server (QEMU -chardev socket,server=on)",
	"unix-listen":  "a unix socket: every client is a leg",
	"ssh-listen":   "an SSH server: every session is a leg",
	"web-listen":   "a browser console: every page is a leg",
}

// TypeSummary is the one-line description of a backend type.
func TypeSummary(typ string) string { return typeSummaries[typ] }

// legKeyDocs are the keys every backend has, outside its type's spec.
var legKeyDocs = []KeyDoc{
	{Key: "name", Type: "string", Doc: "the backend's name, unique in its tee (required for a backend)"},
	{Key: "input", Type: "bool", Doc: "whether its legs type into the frontend (default: true for interactive types, false for captures and ring buffers)"},
	{Key: "queue", Type: "size", Default: "256KiB", Doc: "bound on the bytes waiting for each leg"},
	{Key: "on_overflow", Type: "drop|block|disconnect", Default: "drop", Doc: "what a full queue does: drop and count, block the frontend (lossless), or disconnect the leg"},
	{Key: "replay", Type: "size", Default: "0", Doc: "bytes of recent output a new leg gets first"},
}

// LegKeyDocs lists the keys every backend has.
func LegKeyDocs() []KeyDoc { return legKeyDocs }

// TypeDocs lists the keys of backend type typ.
func TypeDocs(typ string) ([]KeyDoc, error) {
	f, err := chardev.Lookup(typ)
	if err != nil {
		return nil, err
	}
	spec := f.NewSpec()
	v := reflect.ValueOf(spec)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	var out []KeyDoc
	keyDocs(&out, "", schemaOfSpec(spec), v)
	return out, nil
}

// keyDocs appends the keys of sch, whose values are in v (a struct, or
// the zero Value when the section is unset), under prefix.
func keyDocs(out *[]KeyDoc, prefix string, sch *schema, v reflect.Value) {
	if sch == nil {
		return
	}
	for _, k := range sch.keys {
		f := sch.fields[k]
		owner, field := fieldAt(v.Type(), f.index)
		d := KeyDoc{Key: prefix + k, Type: typeName(f.typ), Doc: chardev.FieldDoc(owner, field.Name)}
		fv, err := v.FieldByIndexErr(f.index)
		if err == nil {
			d.Default = defaultString(fv)
		}
		*out = append(*out, d)
		if f.sub != nil {
			st := f.typ
			for st.Kind() == reflect.Pointer || st.Kind() == reflect.Slice {
				st = st.Elem()
			}
			sv := reflect.New(st).Elem()
			if err == nil && fv.Kind() == reflect.Struct {
				sv = fv
			} else if err == nil && fv.Kind() == reflect.Pointer && !fv.IsNil() {
				sv = fv.Elem()
			}
			if f.typ.Kind() == reflect.Slice {
				keyDocs(out, prefix+k+"[].", f.sub, sv)
			} else {
				keyDocs(out, prefix+k+".", f.sub, sv)
			}
		}
	}
}

// fieldAt follows index through (embedded) structs and returns the struct
// that declares the last field, and that field.
func fieldAt(t reflect.Type, index []int) (reflect.Type, reflect.StructField) {
	var f reflect.StructField
	for i, x := range index {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		f = t.Field(x)
		if i < len(index)-1 {
			t = f.Type
		}
	}
	return t, f
}

var (
	sizeType     = reflect.TypeFor[chardev.Size]()
	durationType = reflect.TypeFor[chardev.Duration]()
)

// typeName names a key's type the way a config author writes it.
func typeName(t reflect.Type) string {
	switch t {
	case sizeType:
		return "size (4KiB, 1MiB)"
	case durationType:
		return "duration (100ms, 5s)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct || t.Elem().Kind() == reflect.Pointer {
			return "list of sections"
		}
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Elem())
	case reflect.Struct:
		return "section"
	}
	return t.String()
}

// defaultString writes a default value; "" for none.
func defaultString(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if s, ok := v.Interface().(fmt.Stringer); ok && (v.Type() == sizeType || v.Type() == durationType) {
		if v.IsZero() {
			return ""
		}
		return s.String()
	}
	switch v.Kind() {
	case reflect.Struct:
		return ""
	case reflect.Slice, reflect.Map:
		if v.Len() == 0 {
			return ""
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return strings.Join(parts, ", ")
	case reflect.String:
		return v.String()
	case reflect.Bool:
		if !v.Bool() {
			return "false"
		}
		return "true"
	}
	if v.IsZero() {
		return ""
	}
	return fmt.Sprint(v.Interface())
}
