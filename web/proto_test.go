package web

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseClientMsg(t *testing.T) {
	good := map[string]clientMsg{
		`{"t":"resize","cols":80,"rows":24}`: {T: "resize", Cols: 80, Rows: 24},
		`{"t":"break"}`:                      {T: "break"},
		`{"t":"status"}`:                     {T: "status"},
		`{"t":"lock","take":false}`:          {T: "lock", Take: new(bool)},
		` {"t":"flow","pause":true} `:        {T: "flow", Pause: ptr(true)},
	}
	for in, want := range good {
		got, err := parseClientMsg([]byte(in))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, %v", in, got, err)
		}
	}
	bad := map[string]string{
		`{"t":"resize","cols":0,"rows":24}`: "resize 0x24",
		`{"t":"resize","cols":80}`:          "resize 80x0",
		`{"t":"lock"}`:                      `want {"t":"lock"`,
		`{"t":"flow","pause":"yes"}`:        "cannot unmarshal",
		`{"t":"break","cols":3}`:            "takes no fields",
		`{"t":"reboot"}`:                    `unknown control message "reboot"`,
		`{"t":"break","extra":1}`:           "unknown field",
		`{"cols":1}`:                        `without "t"`,
		`{"t":"break"}{"t":"break"}`:        "trailing data",
		`[1,2]`:                             "cannot unmarshal",
		``:                                  "EOF",
		`{"t":"status"` + strings.Repeat(" ", 2000) + `}`: "at most 1024",
	}
	for in, want := range bad {
		if _, err := parseClientMsg([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40s: error %v, want one containing %q", in, err, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestClientMsgRoundTrip: every valid message the page can build parses
// back to itself.
func TestClientMsgRoundTrip(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		m := clientMsg{T: rapid.SampledFrom([]string{msgResize, msgBreak, msgLock, msgStatus, msgFlow}).Draw(rt, "t")}
		switch m.T {
		case msgResize:
			m.Cols = rapid.IntRange(1, 4096).Draw(rt, "cols")
			m.Rows = rapid.IntRange(1, 4096).Draw(rt, "rows")
		case msgLock:
			m.Take = ptr(rapid.Bool().Draw(rt, "take"))
		case msgFlow:
			m.Pause = ptr(rapid.Bool().Draw(rt, "pause"))
		}
		b, _ := json.Marshal(m)
		got, err := parseClientMsg(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			rt.Fatalf("%s: %+v, %v", b, got, err)
		}
	})
}

// FuzzParseClientMsg: no input crashes the parser, and whatever it
// accepts is a valid message that survives a round trip.
func FuzzParseClientMsg(f *testing.F) {
	for _, s := range []string{`{"t":"resize","cols":80,"rows":24}`, `{"t":"break"}`, `{"t":"lock","take":true}`,
		`{"t":"flow","pause":false}`, `{"t":"status"}`, `{"t":"x"}`, `{`, `null`, `{"t":"resize","cols":1e9,"rows":-1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseClientMsg(b)
		if err != nil {
			return
		}
		if err := m.check(); err != nil {
			t.Fatalf("accepted an invalid message: %v", err)
		}
		out, _ := json.Marshal(m)
		again, err := parseClientMsg(out)
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("round trip of %q: %+v, %v", out, again, err)
		}
	})
}
