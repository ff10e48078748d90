package telnet

import (
	"bytes"
	"fmt"
	"testing"

	"pgregory.net/rapid"
)

// decoded is what a Decoder made of a stream: data, and events with the
// data offset each came at.
type decoded struct {
	data   []byte
	events []string
}

// decodeChunks feeds in to d cut at the given lengths (the rest in one
// piece) and records data and events in order.
func decodeChunks(d *Decoder, in []byte, cuts []int) decoded {
	var out decoded
	feed := func(chunk []byte) {
		for len(chunk) > 0 {
			var ev *Event
			out.data, chunk, ev = d.Decode(out.data, chunk)
			if ev != nil {
				out.events = append(out.events, fmt.Sprintf("@%d %s", len(out.data), eventString(ev)))
			}
		}
	}
	for _, c := range cuts {
		if c > len(in) {
			c = len(in)
		}
		feed(in[:c])
		in = in[c:]
	}
	feed(in)
	return out
}

func eventString(ev *Event) string {
	switch ev.Kind {
	case EventCommand:
		return fmt.Sprintf("cmd %d", ev.Command)
	case EventNegotiation:
		return fmt.Sprintf("neg %d %d", ev.Command, ev.Option)
	case EventSubnegotiation:
		return fmt.Sprintf("sb %d %x", ev.Option, ev.Data)
	case EventSubnegDropped:
		return fmt.Sprintf("dropped %d", ev.Option)
	}
	return fmt.Sprintf("kind %d", ev.Kind)
}

func TestDecodeExamples(t *testing.T) {
	tests := []struct {
		name   string
		binary bool
		in     string
		data   string
		events []string
	}{
		{"plain", true, "hello", "hello", nil},
		{"escaped IAC", true, "a\xff\xffb", "a\xffb", nil},
		{"negotiation", true, "a\xff\xfb\x01b", "ab", []string{"@1 neg 251 1"}},
		{"break", true, "x\xff\xf3y", "xy", []string{"@1 cmd 243"}},
		{"subneg with escaped IAC", true, "\xff\xfa\x2c\x01\xff\xff\x00\xff\xf0z", "z",
			[]string{"@0 sb 44 01ff00"}},
		{"stray SE ignored", true, "a\xff\xf0b", "ab", nil},
		{"binary keeps CR NUL", true, "a\r\x00b", "a\r\x00b", nil},
		{"NVT CR NUL is CR", false, "a\r\x00b", "a\rb", nil},
		{"NVT CR LF kept", false, "a\r\nb", "a\r\nb", nil},
		{"NVT NUL alone kept", false, "a\x00b", "a\x00b", nil},
		{"command inside SB drops it", true, "\xff\xfa\x18abc\xff\xf3d", "d",
			[]string{"@0 dropped 24", "@0 cmd 243"}},
		{"SB without option", true, "\xff\xfa\xff\xf1x", "x",
			[]string{"@0 dropped 0", "@0 cmd 241"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for cut := 0; cut <= len(tt.in); cut++ {
				d := &Decoder{Binary: tt.binary}
				got := decodeChunks(d, []byte(tt.in), []int{cut})
				if string(got.data) != tt.data {
					t.Errorf("cut %d: data %q, want %q", cut, got.data, tt.data)
				}
				if fmt.Sprint(got.events) != fmt.Sprint(tt.events) {
					t.Errorf("cut %d: events %v, want %v", cut, got.events, tt.events)
				}
			}
		})
	}
}

func TestEncodeExamples(t *testing.T) {
	tests := []struct {
		in     string
		binary bool
		want   string
	}{
		{"a\xffb", true, "a\xff\xffb"},
		{"a\rb", true, "a\rb"},
		{"a\rb", false, "a\r\x00b"},
		{"a\r\nb", false, "a\r\nb"},
		{"a\r", false, "a\r\x00"},
		{"\xff\xff", false, "\xff\xff\xff\xff"},
	}
	for _, tt := range tests {
		if got := AppendData(nil, []byte(tt.in), tt.binary); string(got) != tt.want {
			t.Errorf("AppendData(%q, %v) = %q, want %q", tt.in, tt.binary, got, tt.want)
		}
	}
	if got := AppendSubnegotiation(nil, OptComPort, []byte{1, 0xff}); !bytes.Equal(got, []byte{IAC, SB, 44, 1, IAC, IAC, IAC, SE}) {
		t.Errorf("AppendSubnegotiation = %x", got)
	}
}

// TestRoundTripProperty: any byte sequence, encoded and decoded in any
// chunking, comes back identical and produces no events, in binary and in
// NVT mode.
func TestRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		data := rapid.SliceOf(rapid.SampledFrom([]byte{0, '\r', '\n', IAC, SB, SE, 'a', 0x80})).Draw(t, "data")
		if rapid.Bool().Draw(t, "arbitrary") {
			data = rapid.SliceOf(rapid.Byte()).Draw(t, "bytes")
		}
		binary := rapid.Bool().Draw(t, "binary")
		cuts := rapid.SliceOfN(rapid.IntRange(0, 8), 0, 8).Draw(t, "cuts")
		wire := AppendData(nil, data, binary)
		got := decodeChunks(&Decoder{Binary: binary}, wire, cuts)
		if !bytes.Equal(got.data, data) {
			t.Fatalf("round trip: got %x, want %x (wire %x)", got.data, data, wire)
		}
		if len(got.events) != 0 {
			t.Fatalf("round trip produced events %v", got.events)
		}
	})
}

// TestProtocolNeverLeaksProperty interleaves data with random protocol
// elements and checks that the decoder returns exactly the data, and
// exactly the elements, in order.
func TestProtocolNeverLeaksProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		binary := rapid.Bool().Draw(t, "binary")
		const limit = 16
		var wire, wantData []byte
		var wantEvents []string
		n := rapid.IntRange(0, 12).Draw(t, "elements")
		for i := 0; i < n; i++ {
			seg := rapid.SliceOfN(rapid.Byte(), 0, 10).Draw(t, "data")
			if !binary && len(seg) > 0 && seg[len(seg)-1] == '\r' {
				// A CR ending a segment is encoded CR NUL, decoded CR; a
				// following NUL would be eaten. Keep segments honest.
				seg = append(seg, 'x')
			}
			wire = AppendData(wire, seg, binary)
			wantData = append(wantData, seg...)
			at := len(wantData)
			switch rapid.IntRange(0, 2).Draw(t, "kind") {
			case 0:
				cmd := rapid.SampledFrom([]byte{NOP, DM, BRK, IP, AO, AYT, EC, EL, GA}).Draw(t, "cmd")
				wire = AppendCommand(wire, cmd)
				wantEvents = append(wantEvents, fmt.Sprintf("@%d cmd %d", at, cmd))
			case 1:
				cmd := rapid.SampledFrom([]byte{WILL, WONT, DO, DONT}).Draw(t, "verb")
				opt := rapid.Byte().Draw(t, "opt")
				wire = AppendNegotiation(wire, cmd, opt)
				wantEvents = append(wantEvents, fmt.Sprintf("@%d neg %d %d", at, cmd, opt))
			case 2:
				opt := rapid.Byte().Draw(t, "sbopt")
				if opt == IAC {
					opt = 0
				}
				payload := rapid.SliceOfN(rapid.Byte(), 0, 2*limit).Draw(t, "payload")
				wire = AppendSubnegotiation(wire, opt, payload)
				if len(payload) > limit {
					wantEvents = append(wantEvents, fmt.Sprintf("@%d dropped %d", at, opt))
				} else {
					wantEvents = append(wantEvents, fmt.Sprintf("@%d sb %d %x", at, opt, payload))
				}
			}
		}
		cuts := rapid.SliceOfN(rapid.IntRange(0, 6), 0, 12).Draw(t, "cuts")
		got := decodeChunks(&Decoder{Binary: binary, MaxSubneg: limit}, wire, cuts)
		if !bytes.Equal(got.data, wantData) {
			t.Fatalf("data %x, want %x", got.data, wantData)
		}
		if fmt.Sprint(got.events) != fmt.Sprint(wantEvents) {
			t.Fatalf("events %v, want %v", got.events, wantEvents)
		}
	})
}

// TestEndlessSubnegotiationBounded feeds a subnegotiation that never ends,
// then a flood of escaped IACs inside it: the decoder's buffer must stay
// within its limit, and the stream must recover once it is closed.
func TestEndlessSubnegotiationBounded(t *testing.T) {
	d := &Decoder{MaxSubneg: 64}
	d.Decode(nil, []byte{IAC, SB, OptComPort})
	junk := bytes.Repeat([]byte("0123456789abcdef"), 256)
	iacs := bytes.Repeat([]byte{IAC, IAC}, 2048)
	for i := 0; i < 256; i++ {
		chunk := junk
		if i%2 == 1 {
			chunk = iacs
		}
		data, rest, ev := d.Decode(nil, chunk)
		if len(data) != 0 || len(rest) != 0 || ev != nil {
			t.Fatalf("inside subnegotiation: data %d rest %d ev %v", len(data), len(rest), ev)
		}
		if cap(d.sb) > 2*64 {
			t.Fatalf("subnegotiation buffer grew to %d", cap(d.sb))
		}
	}
	got := decodeChunks(d, []byte{IAC, SE, 'o', 'k'}, nil)
	if string(got.data) != "ok" || fmt.Sprint(got.events) != "[@0 dropped 44]" {
		t.Fatalf("after oversize SB: data %q events %v", got.data, got.events)
	}
}

// TestIACCommandFloodBounded: a flood of commands produces one event each
// and never buffers.
func TestIACCommandFloodBounded(t *testing.T) {
	d := &Decoder{}
	flood := bytes.Repeat([]byte{IAC, NOP, IAC, WILL, 99}, 10000)
	var events int
	for in := flood; len(in) > 0; {
		var data []byte
		var ev *Event
		data, in, ev = d.Decode(nil, in)
		if len(data) != 0 {
			t.Fatalf("flood leaked data %x", data)
		}
		if ev != nil {
			events++
		}
	}
	if events != 20000 {
		t.Fatalf("events %d, want 20000", events)
	}
	if cap(d.sb) != 0 {
		t.Fatalf("buffer allocated: %d", cap(d.sb))
	}
}
