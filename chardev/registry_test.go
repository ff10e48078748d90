package chardev

import (
	"context"
	"strings"
	"testing"
)

type testSpec struct{ single bool }

func (testSpec) Validate() error                          { return nil }
func (s testSpec) SingleStream() bool                     { return s.single }
func openNothing(context.Context, Spec) (Chardev, error)  { return nil, nil }
func listenNothing(context.Context, Spec) (Source, error) { return nil, nil }

func mustPanic(t *testing.T, want string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), want) {
			t.Fatalf("panic %v, want one mentioning %q", r, want)
		}
	}()
	f()
}

func TestRegister(t *testing.T) {
	newSpec := func() Spec { return testSpec{} }
	Register("test-reg", Factory{NewSpec: newSpec, Open: openNothing})
	mustPanic(t, "twice", func() { Register("test-reg", Factory{NewSpec: newSpec, Open: openNothing}) })
	mustPanic(t, "nil NewSpec", func() { Register("test-nil", Factory{Open: openNothing}) })
	mustPanic(t, "neither", func() { Register("test-none", Factory{NewSpec: newSpec}) })
	mustPanic(t, "empty", func() { Register("", Factory{NewSpec: newSpec, Open: openNothing}) })
	if _, err := Lookup("test-reg"); err != nil {
		t.Fatal(err)
	}
	if _, err := Lookup("no-such-type"); err == nil || !strings.Contains(err.Error(), "test-reg") {
		t.Fatalf("unknown type error should list known types: %v", err)
	}
}

func TestFactoryIsSource(t *testing.T) {
	both := Factory{NewSpec: func() Spec { return testSpec{} }, Open: openNothing, Listen: listenNothing}
	if !both.IsSource(testSpec{single: false}) || both.IsSource(testSpec{single: true}) {
		t.Fatal("a spec with both forms must choose")
	}
	if (Factory{Open: openNothing}).IsSource(testSpec{}) || !(Factory{Listen: listenNothing}).IsSource(testSpec{}) {
		t.Fatal("single-form factories")
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]Size{"4096": 4096, "4KiB": 4096, "1MiB": 1 << 20, "2 GiB": 2 << 30, "10KB": 10000, "1k": 1024} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "4XB", "1.5MiB", "99999999999999999999"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	var d Duration
	if err := d.UnmarshalText([]byte("5")); err == nil {
		t.Error("a bare number was accepted as a duration")
	}
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.String() != "1m30s" {
		t.Errorf("duration %v %v", d, err)
	}
	var s Size
	if err := s.UnmarshalJSON([]byte(`"256KiB"`)); err != nil || s != 256<<10 {
		t.Errorf("json string size %v %v", s, err)
	}
	if err := s.UnmarshalJSON([]byte(`1024`)); err != nil || s != 1024 {
		t.Errorf("json number size %v %v", s, err)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4096", "4KiB", "1MiB", "x", "", "9223372036854775807GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("negative size %d from %q", v, s)
		}
		// What String prints parses back to the same value.
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("%q -> %d -> %q -> %d, %v", s, v, v.String(), back, err)
		}
	})
}
