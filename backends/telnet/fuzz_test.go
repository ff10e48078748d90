package telnet

import (
	"bytes"
	"fmt"
	"testing"
)

// FuzzDecode checks the decoder on arbitrary input: it never panics, its
// buffer stays bounded, and how the input is cut does not change what it
// decodes to.
func FuzzDecode(f *testing.F) {
	f.Add([]byte("plain text"), uint8(3), true)
	f.Add([]byte("a\xff\xffb\xff\xfb\x01\xff\xf3c"), uint8(1), true)
	f.Add([]byte("\xff\xfa\x2c\x01\x00\x01\xc2\x00\xff\xf0"), uint8(2), false)
	f.Add([]byte("x\r\x00y\r\nz\r"), uint8(4), false)
	f.Add([]byte("\xff\xfa\x18abc\xff\xf3d\xff\xfa\xff\xf0"), uint8(5), true)
	f.Fuzz(func(t *testing.T, in []byte, step uint8, binary bool) {
		const limit = 32
		whole := decodeChunks(&Decoder{Binary: binary, MaxSubneg: limit}, in, nil)
		n := int(step%16) + 1
		var cuts []int
		for i := 0; i < len(in); i += n {
			cuts = append(cuts, n)
		}
		d := &Decoder{Binary: binary, MaxSubneg: limit}
		pieces := decodeChunks(d, in, cuts)
		if !bytes.Equal(whole.data, pieces.data) || fmt.Sprint(whole.events) != fmt.Sprint(pieces.events) {
			t.Fatalf("cutting changed the result:\nwhole  %x %v\npieces %x %v", whole.data, whole.events, pieces.data, pieces.events)
		}
		if len(whole.data) > len(in) {
			t.Fatalf("decoded %d data bytes from %d input bytes", len(whole.data), len(in))
		}
		if cap(d.sb) > 2*limit {
			t.Fatalf("subnegotiation buffer %d over limit %d", cap(d.sb), limit)
		}
	})
}

// FuzzParseComPort checks the RFC 2217 parser: no panic, and whatever it
// accepts it can build again into something that parses the same.
func FuzzParseComPort(f *testing.F) {
	f.Add([]byte{1, 0, 1, 0xc2, 0})
	f.Add([]byte{105, 8})
	f.Add([]byte{0, 'p', 'y'})
	f.Add([]byte{7})
	f.Add([]byte{112, 3})
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := ParseComPort(payload)
		if err != nil {
			return
		}
		d := Decoder{MaxSubneg: len(payload)}
		_, _, ev := d.Decode(nil, m.Append(nil))
		if ev == nil || ev.Kind != EventSubnegotiation {
			t.Fatalf("rebuilt message did not decode: %+v", ev)
		}
		again, err := ParseComPort(ev.Data)
		if err != nil {
			t.Fatalf("rebuilt %+v does not parse: %v", m, err)
		}
		if again.Code != m.Code || again.Value != m.Value || !bytes.Equal(again.Text, m.Text) {
			t.Fatalf("rebuilt %+v parses as %+v", m, again)
		}
	})
}
