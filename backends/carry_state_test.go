package backends

import (
	"encoding/json"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"chartee/backends/capture"
	"chartee/chardev"
)

// TestCarryStateDecoders: every carried-state decoder reads back what
// its Carry writes, and refuses any other input with an error rather
// than panicking (arbitrary bytes, and valid JSON with wrong fields).
func TestCarryStateDecoders(t *testing.T) {
	type decoder struct {
		name   string
		decode func([]byte) (any, error)
		gen    *rapid.Generator[any]
	}
	str := rapid.StringN(0, 40, -1)
	decoders := []decoder{
		{"file", func(b []byte) (any, error) { return decodeFileState(b) }, rapid.Custom(func(t *rapid.T) any {
			st := fileState{Path: "/" + str.Draw(t, "path"), Direction: FileBoth, Size: rapid.Int64Min(0).Draw(t, "size")}
			switch rapid.IntRange(0, 2).Draw(t, "format") {
			case 0:
				st.Format = FileRaw
			case 1:
				st.Format = FileTimestamped
				st.Timestamped = &capture.TimestampedState{MidLine: rapid.Bool().Draw(t, "mid"), Dir: capture.Input, User: str.Draw(t, "user")}
			default:
				st.Format = FileAsciicast
				st.Asciicast = &capture.AsciicastState{Started: true, Origin: rapid.Int64().Draw(t, "origin"), Last: rapid.Float64Range(0, 1e9).Draw(t, "last"), HeldOut: []byte("\xe2\x82")}
			}
			return st
		})},
		{"pty", func(b []byte) (any, error) { return decodePtyState(b) }, rapid.Custom(func(t *rapid.T) any {
			return ptyState{Slave: "/dev/pts/" + str.Draw(t, "n"), Link: str.Draw(t, "link")}
		})},
		{"serial", func(b []byte) (any, error) { return decodeSerialState(b) }, rapid.Custom(func(t *rapid.T) any {
			return serialState{Path: "/dev/" + str.Draw(t, "path"), Resolved: str.Draw(t, "resolved"), Line: chardev.LineSettings{
				Baud: rapid.IntRange(1, 4000000).Draw(t, "baud"), DataBits: rapid.IntRange(5, 8).Draw(t, "bits"),
				Parity:   rapid.SampledFrom([]chardev.Parity{chardev.ParityNone, chardev.ParityOdd, chardev.ParityEven, chardev.ParityMark, chardev.ParitySpace}).Draw(t, "parity"),
				StopBits: rapid.SampledFrom([]chardev.StopBits{chardev.StopBits1, chardev.StopBits2}).Draw(t, "stop"),
				Flow:     rapid.SampledFrom([]chardev.Flow{chardev.FlowNone, chardev.FlowRTSCTS, chardev.FlowXONXOFF}).Draw(t, "flow"),
			}, Opened: chardev.LineSettings{Baud: rapid.IntRange(1, 4000000).Draw(t, "opened baud"), DataBits: 8}}
		})},
		{"ringbuf", func(b []byte) (any, error) { return decodeRingbufState(b) }, rapid.Custom(func(t *rapid.T) any {
			kept := rapid.Int64Range(0, ringbufMaxSize).Draw(t, "kept")
			return ringbufState{Kept: kept, Written: uint64(kept) + rapid.Uint64Range(0, 1<<40).Draw(t, "more")}
		})},
	}
	for _, d := range decoders {
		t.Run(d.name+"/round trip", func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				want := d.gen.Draw(t, "state")
				doc, err := json.Marshal(want)
				if err != nil {
					t.Fatal(err)
				}
				got, err := d.decode(doc)
				if err != nil {
					t.Fatalf("%s: %v", doc, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("decoded %+v, want %+v", got, want)
				}
			})
		})
		t.Run(d.name+"/garbage", func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				doc := rapid.OneOf(rapid.SliceOf(rapid.Byte()),
					rapid.Map(rapid.MapOf(rapid.StringN(0, 10, -1), rapid.OneOf(rapid.Just[any](nil), rapid.Just[any](-1), rapid.Just[any]("x"), rapid.Just[any](1e300))), func(m map[string]any) []byte {
						b, _ := json.Marshal(m)
						return b
					})).Draw(t, "doc")
				d.decode(doc) // an error or a value; never a panic
			})
		})
	}
}

// FuzzRingbufCarryState: any carried ring buffer state is decoded or
// refused with an error, never a panic, and a decoded one is possible.
func FuzzRingbufCarryState(f *testing.F) {
	f.Add([]byte(`{"written":100,"kept":64}`))
	f.Add([]byte(`{"written":1,"kept":64}`))
	f.Add([]byte(`{"written":-1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeRingbufState(data)
		if err == nil && (st.Kept < 0 || uint64(st.Kept) > st.Written) {
			t.Fatalf("accepted %+v", st)
		}
	})
}
