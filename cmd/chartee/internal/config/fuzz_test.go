package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The seed corpora are in testdata/fuzz/<Fuzz target>/: valid and broken
// config files, CLI specs and API bodies.

// FuzzParse checks that any config text gives either a config or a
// non-empty list of errors, each with a message, and never panics.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.Msg == "" || e.Pos.File != "fuzz.yaml" || e.Pos.Line < 0 || e.Pos.Col < 0 {
					t.Fatalf("bad error %+v", e)
				}
			}
			if cfg != nil {
				t.Fatal("config returned with an error")
			}
			return
		}
		if len(cfg.Tees) == 0 {
			t.Fatal("a config without tees parsed")
		}
		for _, tt := range cfg.Tees {
			if tt.Name == "" || tt.Frontend.Canonical == "" || tt.Frontend.IsSource() {
				t.Fatalf("bad tee %+v", tt)
			}
			for _, b := range tt.Backends {
				if b.Name == "" || b.Canonical == "" || b.Spec.Validate() != nil {
					t.Fatalf("bad backend %+v", b)
				}
			}
		}
	})
}

// FuzzParseSpec checks that any CLI spec parses or fails cleanly, and that
// one that parses round-trips through SpecToJSON and DecodeBackendJSON.
func FuzzParseSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		if strings.HasPrefix(s, "@") {
			return // names a file: not what this target is about
		}
		b, err := ParseSpec(s)
		if err == nil {
			checkRoundTrip(t, s, b)
		} else if !strings.HasPrefix(err.Error(), "spec: ") {
			t.Fatalf("ParseSpec(%q): error without the spec: prefix: %v", s, err)
		}
		if d, err := ParseDeviceSpec(s); err == nil && (d.Canonical == "" || d.IsSource()) {
			t.Fatalf("ParseDeviceSpec(%q) = %+v", s, d)
		}
	})
}

// FuzzDecodeBackendJSON checks that any API body decodes or fails cleanly,
// and that only valid JSON is ever accepted.
func FuzzDecodeBackendJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := DecodeBackendJSON(data)
		if err == nil {
			if !json.Valid(data) {
				t.Fatalf("accepted invalid JSON %q", data)
			}
			if b.Canonical == "" || b.Name == "" || b.Spec.Validate() != nil {
				t.Fatalf("bad backend %+v", b)
			}
		} else if err.Error() == "" {
			t.Fatal("empty error")
		}
		if d, err := DecodeDeviceJSON(data); err == nil && (!json.Valid(data) || d.IsSource()) {
			t.Fatalf("DecodeDeviceJSON(%q) = %+v", data, d)
		}
	})
}
