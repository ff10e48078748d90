package telnet

import (
	"bytes"
	"errors"
	"testing"

	"chartee/chardev"
	"pgregory.net/rapid"
)

func TestParseComPort(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    ComPortMsg
		wantErr bool
	}{
		{"baud", []byte{1, 0, 1, 0xc2, 0}, ComPortMsg{Code: 1, Value: 115200}, false},
		{"server baud with sredird's extra bytes", []byte{101, 0, 0, 0x25, 0x80, 0, 0, 0, 0}, ComPortMsg{Code: 101, Value: 9600}, false},
		{"short baud", []byte{1, 0, 1}, ComPortMsg{}, true},
		{"datasize", []byte{2, 7}, ComPortMsg{Code: 2, Value: 7}, false},
		{"control without value", []byte{5}, ComPortMsg{}, true},
		{"signature request", []byte{0}, ComPortMsg{Code: 0, Text: []byte{}}, false},
		{"signature", []byte{100, 'h', 'i'}, ComPortMsg{Code: 100, Text: []byte("hi")}, false},
		{"modemstate poll", []byte{7}, ComPortMsg{Code: 7}, false},
		{"modemstate notification", []byte{107, 0x30}, ComPortMsg{Code: 107, Value: 0x30}, false},
		{"notification without value", []byte{107}, ComPortMsg{}, true},
		{"suspend", []byte{8}, ComPortMsg{Code: 8}, false},
		{"unknown", []byte{13, 1}, ComPortMsg{}, true},
		{"unknown server", []byte{113, 1}, ComPortMsg{}, true},
		{"between", []byte{50}, ComPortMsg{}, true},
		{"empty", nil, ComPortMsg{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseComPort(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrComPort) {
					t.Fatalf("err = %v, want ErrComPort", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != tt.want.Code || got.Value != tt.want.Value || !bytes.Equal(got.Text, tt.want.Text) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// comPortMsgGen draws a well-formed message.
func comPortMsgGen() *rapid.Generator[ComPortMsg] {
	return rapid.Custom(func(t *rapid.T) ComPortMsg {
		cmd := rapid.ByteRange(0, ComPurgeData).Draw(t, "cmd")
		m := ComPortMsg{Code: cmd}
		if rapid.Bool().Draw(t, "server") {
			m.Code += ServerOffset
		}
		switch cmd {
		case ComSignature:
			m.Text = rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "text")
		case ComSetBaudRate:
			m.Value = rapid.Uint32().Draw(t, "baud")
		case ComFlowSuspend, ComFlowResume:
		case ComNotifyLineState, ComNotifyModemState:
			if m.FromServer() {
				m.Value = uint32(rapid.Byte().Draw(t, "value"))
			}
		default:
			m.Value = uint32(rapid.Byte().Draw(t, "value"))
		}
		return m
	})
}

// TestComPortRoundTripProperty: a message built with Append decodes and
// parses back to itself, whatever IAC bytes its value holds.
func TestComPortRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := comPortMsgGen().Draw(t, "msg")
		wire := m.Append(nil)
		var d Decoder
		data, rest, ev := d.Decode(nil, wire)
		if len(data) != 0 || len(rest) != 0 || ev == nil || ev.Kind != EventSubnegotiation || ev.Option != OptComPort {
			t.Fatalf("decode %x: data %x rest %x ev %+v", wire, data, rest, ev)
		}
		got, err := ParseComPort(ev.Data)
		if err != nil {
			t.Fatalf("parse %x: %v", ev.Data, err)
		}
		if got.Code != m.Code || got.Value != m.Value || !bytes.Equal(got.Text, m.Text) {
			t.Fatalf("got %+v, want %+v", got, m)
		}
	})
}

func TestValueMappings(t *testing.T) {
	for p := chardev.ParityNone; p <= chardev.ParitySpace; p++ {
		if got, ok := ParityFromCode(ParityCode(p)); !ok || got != p {
			t.Errorf("parity %v round trip: %v %v", p, got, ok)
		}
	}
	if ParityCode(chardev.ParityEven) != 3 {
		t.Errorf("even parity code %d, want 3 (RFC 2217)", ParityCode(chardev.ParityEven))
	}
	for s := chardev.StopBits1; s <= chardev.StopBits2; s++ {
		if got, ok := StopBitsFromCode(StopSizeCode(s)); !ok || got != s {
			t.Errorf("stop bits %v round trip: %v %v", s, got, ok)
		}
	}
	if StopSizeCode(chardev.StopBits1Half) != 3 {
		t.Error("1.5 stop bits must be code 3")
	}
	for f := chardev.FlowNone; f <= chardev.FlowXONXOFF; f++ {
		if got, ok := FlowFromCode(FlowCode(f)); !ok || got != f {
			t.Errorf("flow %v round trip: %v %v", f, got, ok)
		}
	}
	ms := chardev.ModemStatus{CTS: true, DCD: true}
	if b := ModemStateByte(ms); b != ModemCTS|ModemCD {
		t.Errorf("modem byte %#x", b)
	}
	if got := ModemStatusFromByte(ModemCTS | ModemCD | ModemDeltaCTS); got != ms {
		t.Errorf("modem status %+v", got)
	}
	if d := modemDeltas(ModemCTS|ModemRI, ModemDSR); d != ModemDeltaCTS|ModemDeltaDSR|ModemTrailRI {
		t.Errorf("deltas %#x", d)
	}
}
