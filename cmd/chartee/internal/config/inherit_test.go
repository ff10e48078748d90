package config

import (
	"strings"
	"testing"

	"chartee/tee"
)

func TestInheritKeepsWhatTheSpecDoesNotGive(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`tees:
  - name: board
    frontend: {type: serial, path: /dev/ttyUSB0, baud: 115200}
    backends:
      - {name: raw, type: file, path: /var/log/b.raw, format: raw, direction: both, queue: 4MiB, on_overflow: block, rotate: {max_size: 1MiB, keep: 3}}
`))
	if err != nil {
		t.Fatal(err)
	}
	old := cfg.Tees[0].Backends[0]
	spec, err := ParseSpec("file,name=raw,path=/var/log/b2.raw")
	if err != nil {
		t.Fatal(err)
	}
	nb, err := Inherit(old, spec)
	if err != nil {
		t.Fatal(err)
	}
	if nb.Leg.Overflow != tee.Block || nb.Leg.Queue != 4<<20 || nb.Leg.Input {
		t.Errorf("leg options %+v, want the old ones", nb.Leg)
	}
	if got, want := nb.Describe(), "file /var/log/b2.raw (raw, both)"; got != want {
		t.Errorf("Describe %q, want %q", got, want)
	}
	if want := `"rotate":{"max_size":"1MiB","keep":3`; !strings.Contains(nb.Canonical, want) {
		t.Errorf("canonical %s lacks the inherited %s", nb.Canonical, want)
	}
	// A backend from a config file (no Given list) is taken whole.
	if same, _ := Inherit(old, old); same != old {
		t.Error("a whole backend was changed")
	}
	if got := cfg.Tees[0].Frontend.Describe(); got != "serial /dev/ttyUSB0 115200 8N1" {
		t.Errorf("frontend described %q", got)
	}
}
