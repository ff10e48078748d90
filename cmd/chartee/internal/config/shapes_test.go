package config

import (
	"context"
	"errors"
	"strings"
	"testing"

	"chartee/chardev"
)

// The test type "config-test" has the shapes no real backend has (yet): a
// list of sections, a pointer to a number, unsigned and float numbers, a
// hidden field, an untagged field and a section inside a list element. It
// is registered in the test binary only.

type shapesSpec struct {
	Routes   []shapesRoute `yaml:"routes" json:"routes"`
	Opt      *shapesOpt    `yaml:"opt" json:"opt"`
	Ratio    float64       `yaml:"ratio" json:"ratio"`
	Count    uint8         `yaml:"count" json:"count"`
	Limit    *int          `yaml:"limit" json:"limit"`
	Hidden   string        `yaml:"-" json:"-"`
	Untagged string
	Control  bool `yaml:"control" json:"control"`
}

type shapesRoute struct {
	Host string     `yaml:"host" json:"host"`
	Port int        `yaml:"port" json:"port"`
	TLS  *shapesOpt `yaml:"tls" json:"tls"`
}

type shapesOpt struct {
	Level int `yaml:"level" json:"level"`
}

func (s *shapesSpec) Validate() error {
	if s.Count == 13 {
		return errors.New("config-test: count: 13 is unlucky")
	}
	return nil
}

func (s *shapesSpec) GrantsControl() bool { return s.Control }

func init() {
	chardev.Register("config-test", chardev.Factory{
		NewSpec: func() chardev.Spec { return &shapesSpec{Opt: &shapesOpt{Level: 1}} },
		Open: func(context.Context, chardev.Spec) (chardev.Chardev, error) {
			return nil, errors.New("config-test: not a device")
		},
		Input: true,
	})
}

func TestSpecShapes(t *testing.T) {
	cfg := mustParse(t, withBackend(`name: a
        type: config-test
        routes:
          - {host: h1, port: 1}
          - {host: h2, port: 2, tls: {level: 3}}
        opt: {level: 7}
        ratio: 0.5
        count: 200
        limit: 10
        untagged: yes
        control: true`))
	b := cfg.Tees[0].Backends[0]
	s := b.Spec.(*shapesSpec)
	if len(s.Routes) != 2 || s.Routes[0] != (shapesRoute{Host: "h1", Port: 1}) || s.Routes[1].TLS == nil || s.Routes[1].TLS.Level != 3 {
		t.Errorf("routes = %+v", s.Routes)
	}
	if s.Opt == nil || s.Opt.Level != 7 || s.Ratio != 0.5 || s.Count != 200 || s.Limit == nil || *s.Limit != 10 || s.Untagged != "yes" {
		t.Errorf("spec = %+v", s)
	}
	if !b.Leg.Control || !b.Leg.Input {
		t.Errorf("leg = %+v: control comes from chardev.ControlGranter", b.Leg)
	}

	// opt: null removes the default section; limit: null leaves none.
	cfg = mustParse(t, withBackend("{name: a, type: config-test, opt: null, limit: ~, routes: []}"))
	if s := cfg.Tees[0].Backends[0].Spec.(*shapesSpec); s.Opt != nil || s.Limit != nil || len(s.Routes) != 0 {
		t.Errorf("nulls: %+v", s)
	}

	// The same through JSON, with the canonical form agreeing.
	j, err := DecodeBackendJSON([]byte(`{"name":"a","type":"config-test","routes":[{"host":"h1","port":1},{"host":"h2","port":2,"tls":{"level":3}}],` +
		`"opt":{"level":7},"ratio":0.5,"count":200,"limit":10,"untagged":"yes","control":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if j.Canonical != b.Canonical {
		t.Errorf("JSON canonical %s, YAML %s", j.Canonical, b.Canonical)
	}

	tests := []struct{ backend, want string }{
		{"{name: a, type: config-test, routes: [{host: h, prot: 1}]}", `tees[0].backends[0].routes[0].prot: unknown key for routes[0]; did you mean "port"?`},
		{"{name: a, type: config-test, routes: [{host: h, tls: {levle: 1}}]}", `tees[0].backends[0].routes[0].tls.levle: unknown key for tls; did you mean "level"?`},
		{"{name: a, type: config-test, routes: [h1]}", `tees[0].backends[0].routes[0]: want a mapping (routes[0]), got "h1"`},
		{"{name: a, type: config-test, routes: {host: h}}", `tees[0].backends[0].routes: want a list, got a mapping`},
		{"{name: a, type: config-test, hidden: x}", `tees[0].backends[0].hidden: unknown key for config-test`},
		{"{name: a, type: config-test, Untagged: x}", `tees[0].backends[0].Untagged: unknown key for config-test; did you mean "untagged"?`},
		{"{name: a, type: config-test, count: 256}", `tees[0].backends[0].count: 256 is out of range`},
		{"{name: a, type: config-test, count: -1}", `tees[0].backends[0].count: want a non-negative whole number, got the number -1`},
		{"{name: a, type: config-test, ratio: half}", `tees[0].backends[0].ratio: want a number, got "half"`},
		{"{name: a, type: config-test, ratio: [1]}", `tees[0].backends[0].ratio: want a number, got a list`},
		{"{name: a, type: config-test, limit: lots}", `tees[0].backends[0].limit: want a whole number, got "lots"`},
		{"{name: a, type: config-test, count: 13}", `tees[0].backends[0]: config-test: count: 13 is unlucky`},
		{"{name: a, type: config-test, opt: {level: x}, count: 13}", `tees[0].backends[0].opt.level: want a whole number, got "x"`},
	}
	for _, tc := range tests {
		errs := parseErrs(t, withBackend(tc.backend))
		// A spec with a decoding error is not validated: one error only.
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), ": "+tc.want) {
			t.Errorf("%s:\n got %v\nwant one error ending in %s", tc.backend, errs, tc.want)
		}
	}

	// Lists of sections cannot be spelled on the command line.
	if _, err := ParseSpec("config-test,name=a,routes=h1"); err == nil || !strings.Contains(err.Error(), `key "routes" (at column 20): want a list, got "h1"`) {
		t.Errorf("ParseSpec(routes) = %v", err)
	}
	// A nested key inside a pointer section on the command line.
	b2 := mustSpec(t, "config-test,name=a,opt.level=4,limit=3,ratio=1e3")
	if s := b2.Spec.(*shapesSpec); s.Opt.Level != 4 || *s.Limit != 3 || s.Ratio != 1000 {
		t.Errorf("CLI spec = %+v", s)
	}
	checkRoundTrip(t, "config-test,name=a,opt.level=4,limit=3,ratio=1e3", b2)
}

func TestDeviceOpenAndListen(t *testing.T) {
	ctx := context.Background()
	d, err := ParseDeviceSpec("null")
	if err != nil {
		t.Fatal(err)
	}
	dev, err := d.Opener().Open(ctx)
	if err != nil {
		t.Fatalf("open null: %v", err)
	}
	if err := dev.Close(); err != nil {
		t.Errorf("close null: %v", err)
	}
	if _, err := d.Listen(ctx); err == nil || err.Error() != "null: not a listening backend" {
		t.Errorf("Listen(null) = %v", err)
	}
	if got := d.Describe(); got != "null" {
		t.Errorf("Describe = %q", got)
	}

	b := mustSpec(t, "tcp-listen,name=l,listen=127.0.0.1:0")
	src, err := b.Listen(ctx)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Errorf("close source: %v", err)
	}
	if _, err := b.Opener().Open(ctx); err == nil || !strings.Contains(err.Error(), "cannot be opened as a single stream") {
		t.Errorf("Open(tcp-listen) = %v", err)
	}
	if (&Device{Type: "x"}).Describe() != "x" {
		t.Error("Describe without Canonical must be the type")
	}
}

func TestErrorListErr(t *testing.T) {
	var empty ErrorList
	if empty.Err() != nil {
		t.Error("an empty list must give a nil error")
	}
	l := ErrorList{{Pos: Pos{File: "f", Line: 2, Col: 3}, Msg: "a"}, {Pos: Pos{File: "f", Line: 4}, Msg: "b"}, {Msg: "c"}}
	if err := l.Err(); err == nil || err.Error() != "f:2:3: a\nf:4: b\nc" {
		t.Errorf("Err() = %v", err)
	}
}
