package telnet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// telnetStream draws a byte stream rich in protocol: data (CR, NUL and
// IAC IAC among it), commands, negotiations, subnegotiations short and
// oversize, unterminated ones, COM-PORT messages, and stray bytes.
func telnetStream(t *rapid.T, label string) []byte {
	opts := []byte{OptBinary, OptEcho, OptSGA, OptComPort, 24, 31, 200}
	var out []byte
	for range rapid.IntRange(0, 40).Draw(t, label+"-parts") {
		switch rapid.IntRange(0, 9).Draw(t, "kind") {
		case 0, 1:
			out = append(out, rapid.SliceOfN(rapid.SampledFrom([]byte("ab\r\n\x00\x05?sx\xff")), 0, 8).Draw(t, "data")...)
		case 2:
			out = append(out, IAC, rapid.SampledFrom([]byte{NOP, BRK, AYT, IP, GA, DM, SE, IAC}).Draw(t, "cmd"))
		case 3, 4:
			out = AppendNegotiation(out, rapid.SampledFrom([]byte{WILL, WONT, DO, DONT}).Draw(t, "verb"),
				rapid.SampledFrom(opts).Draw(t, "opt"))
		case 5:
			m := ComPortMsg{Code: rapid.SampledFrom([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 100, 101, 102, 105, 107, 108, 109}).Draw(t, "code"),
				Value: uint32(rapid.IntRange(0, 20).Draw(t, "value")), Text: []byte(rapid.StringMatching(`[a-z\xff]{0,5}`).Draw(t, "text"))}
			if m.Command() == ComSetBaudRate {
				m.Value = uint32(rapid.SampledFrom([]int{0, 9600, 19200, 115200}).Draw(t, "baud"))
			}
			out = m.Append(out)
		case 6:
			out = AppendSubnegotiation(out, rapid.SampledFrom(opts).Draw(t, "sbopt"),
				rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "payload"))
		case 7:
			// Unterminated, or cut short by a command.
			out = append(out, IAC, SB, rapid.SampledFrom(opts).Draw(t, "sbopt"))
			out = append(out, rapid.SliceOfN(rapid.Byte(), 0, 4).Draw(t, "payload")...)
		default:
			out = append(out, rapid.SliceOfN(rapid.Byte(), 1, 4).Draw(t, "bytes")...)
		}
	}
	return out
}

// drawCuts draws sorted cut positions in [0, n].
func drawCuts(t *rapid.T, n int) []int {
	cuts := rapid.SliceOfN(rapid.IntRange(0, n), 0, 6).Draw(t, "cuts")
	slices.Sort(cuts)
	return cuts
}

// viaJSON passes v through its JSON form into a fresh value of its type.
func viaJSON[T any](t interface{ Fatalf(string, ...any) }, v T) T {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var out T
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return out
}

// TestDecoderStateCarried: decoding a stream with the decoder exported
// to JSON and imported into a new one at any cuts gives exactly what one
// decoder gives.
func TestDecoderStateCarried(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := telnetStream(t, "in")
		binary := rapid.Bool().Draw(t, "binary")
		const limit = 16
		whole := decodeChunks(&Decoder{Binary: binary, MaxSubneg: limit}, in, nil)
		var got decoded
		d := &Decoder{Binary: binary, MaxSubneg: limit}
		prev := 0
		for _, c := range append(drawCuts(t, len(in)), len(in)) {
			part := decodeChunks(d, in[prev:c], nil)
			got.events = append(got.events, shiftEvents(part.events, len(got.data))...)
			got.data = append(got.data, part.data...)
			prev = c
			st := viaJSON(t, d.State())
			d = &Decoder{MaxSubneg: limit}
			if err := d.SetState(st); err != nil {
				t.Fatalf("import %+v: %v", st, err)
			}
		}
		if !bytes.Equal(whole.data, got.data) || fmt.Sprint(whole.events) != fmt.Sprint(got.events) {
			t.Fatalf("carried decoding differs:\nwhole   %q %v\ncarried %q %v", whole.data, whole.events, got.data, got.events)
		}
	})
}

// shiftEvents renumbers decodeChunks' "@offset" events by base.
func shiftEvents(events []string, base int) []string {
	out := make([]string, len(events))
	for i, e := range events {
		var at int
		var rest string
		fmt.Sscanf(e, "@%d", &at)
		rest = e[len(fmt.Sprintf("@%d", at)):]
		out[i] = fmt.Sprintf("@%d%s", at+base, rest)
	}
	return out
}

// TestNegotiatorStateCarried: a negotiator exported and imported between
// any two messages answers the rest of a negotiation exactly as one that
// was never interrupted, and ends in the same state.
func TestNegotiatorStateCarried(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		type step struct {
			request  bool
			side     Side
			cmd, opt byte
			enable   bool
		}
		steps := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) step {
			return step{
				request: rapid.Bool().Draw(t, "request"),
				side:    Side(rapid.IntRange(0, 1).Draw(t, "side")),
				cmd:     rapid.SampledFrom([]byte{WILL, WONT, DO, DONT}).Draw(t, "cmd"),
				opt:     rapid.SampledFrom([]byte{OptBinary, OptEcho, OptSGA, OptComPort, 24}).Draw(t, "opt"),
				enable:  rapid.Bool().Draw(t, "enable"),
			}
		}), 0, 40).Draw(t, "steps")
		cut := rapid.IntRange(0, len(steps)).Draw(t, "cut")
		local, remote := []byte{OptBinary, OptEcho, OptSGA}, []byte{OptBinary, OptSGA, OptComPort}
		run := func(n *Negotiator, steps []step) []byte {
			var out []byte
			for _, s := range steps {
				if s.request {
					if !n.allow[s.side][s.opt] {
						continue // chartee only asks for what it allows
					}
					out = n.Request(out, s.side, s.opt, s.enable)
				} else {
					out = n.Receive(out, s.cmd, s.opt)
				}
			}
			return out
		}
		whole := NewNegotiator(local, remote)
		want := run(whole, steps)
		first := NewNegotiator(local, remote)
		got := run(first, steps[:cut])
		second := NewNegotiator(local, remote)
		if err := second.SetState(viaJSON(t, first.State())); err != nil {
			t.Fatalf("import: %v", err)
		}
		got = append(got, run(second, steps[cut:])...)
		if !bytes.Equal(want, got) || fmt.Sprint(whole.State()) != fmt.Sprint(second.State()) {
			t.Fatalf("carried negotiation differs:\nwhole   %x %+v\ncarried %x %+v", want, whole.State(), got, second.State())
		}
	})
}

// FuzzServerState: any document is refused with an error or resumes a
// connection (plain telnet or RFC 2217) that then decodes input without
// panicking; what it accepts, it exports again unchanged.
func FuzzServerState(f *testing.F) {
	f.Add([]byte(`{"greeted":true,"decoder":{"binary":true,"at":"sb","option":44,"payload":"AA=="},"negotiation":{"options":[{"option":0,"local":"yes","remote":"yes"},{"option":44,"remote":"yes"}]},"line_mask":0,"modem_mask":255,"last_modem":48,"dtr":true,"rts":true,"told":{"baud":9600}}`), []byte("\xff\xf0abc"))
	f.Add([]byte(`{"greeted":true,"decoder":{"at":"negotiation","command":251},"negotiation":{"options":[{"option":1,"local":"want-yes","local_queued":true}]},"last_modem":-1,"break_held":1000000,"pending":{"baud":9600,"parity":0,"stop_bits":0,"flow":0}}`), []byte{OptSGA})
	f.Add([]byte(`{"decoder":{"at":"cr"},"last_modem":-1}`), []byte{0, 'x'})
	f.Add([]byte(`{"decoder":{"at":"bogus"}}`), []byte{})
	f.Add([]byte(`{"negotiation":{"options":[{"option":200,"local":"yes"}]}}`), []byte{})
	f.Fuzz(func(t *testing.T, doc, input []byte) {
		st, err := ParseServerState(doc)
		if err != nil {
			if !strings.Contains(err.Error(), ErrState.Error()) {
				t.Fatalf("error %v does not say it is a bad state", err)
			}
			return
		}
		for _, rfc2217 := range []bool{false, true} {
			a, b := net.Pipe()
			s, err := ResumeServer(a, Config{RFC2217: rfc2217, MaxSubneg: 64}, st)
			if err != nil {
				a.Close()
				b.Close()
				continue
			}
			back, err := s.Export()
			if err != nil {
				t.Fatalf("export right after resume: %v", err)
			}
			for _, o := range st.Negotiation.Options {
				if s.neg.Enabled(Local, o.Option) != (o.Local == "yes") || s.neg.Enabled(Remote, o.Option) != (o.Remote == "yes") {
					t.Fatalf("option %d: %+v not in force after resume", o.Option, o)
				}
			}
			if back.Greeted != st.Greeted || back.Decoder.At != st.Decoder.At || back.LastModem != st.LastModem ||
				back.Told != st.Told || back.PeerSignature != st.PeerSignature || (back.BreakHeld == nil) != (st.BreakHeld == nil) {
				t.Fatalf("resumed state exports as %+v, want %+v", back, st)
			}
			// Decode the input as the connection would, without I/O.
			d := s.dec
			for in := input; len(in) > 0; {
				_, in, _ = d.Decode(nil, in)
			}
			b.Close()
			s.Close()
		}
	})
}

func viaJSONString(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// FuzzClientState: any document is refused with an error or resumes a
// client connection; what it accepts, it exports again unchanged once
// frozen.
func FuzzClientState(f *testing.F) {
	f.Add([]byte(`{"decoder":{"binary":true,"at":"iac"},"negotiation":{"options":[{"option":0,"local":"yes","remote":"yes"},{"option":44,"local":"yes"}]},"line":{"baud":19200,"data_bits":7,"parity":2,"stop_bits":0,"flow":0},"modem":{"dtr":true,"rts":false,"cts":true,"dsr":true,"dcd":true,"ri":false},"modem_seen":true,"server_signature":"ser2net"}`))
	f.Add([]byte(`{"decoder":{"at":"sb-skip","option":44},"line":{"parity":9}}`))
	f.Add([]byte(`{"decoder":{},"negotiation":{"options":[{"option":1,"remote":"want-no","remote_queued":true}]}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		st, err := ParseClientState(doc)
		if err != nil {
			if !strings.Contains(err.Error(), ErrState.Error()) {
				t.Fatalf("error %v does not say it is a bad state", err)
			}
			return
		}
		for _, rfc2217 := range []bool{false, true} {
			a, b := net.Pipe()
			c, err := ResumeClient(a, Config{RFC2217: rfc2217}, st)
			if err != nil {
				a.Close()
				b.Close()
				continue
			}
			c.mu.Lock()
			c.parked = true // as if frozen at once
			c.mu.Unlock()
			back, err := c.Export()
			if err != nil {
				t.Fatalf("export right after resume: %v", err)
			}
			b.Close()
			c.Close()
			// Exported again, the state is the same (up to options
			// listed in their initial state, which export leaves out).
			a, b = net.Pipe()
			c, err = ResumeClient(a, Config{RFC2217: rfc2217}, back)
			if err != nil {
				t.Fatalf("an exported state does not resume: %v", err)
			}
			c.mu.Lock()
			c.parked = true
			c.mu.Unlock()
			again, _ := c.Export()
			if x, y := viaJSONString(t, again), viaJSONString(t, back); x != y {
				t.Fatalf("resumed state exports as\n%s\nwant\n%s", x, y)
			}
			for _, o := range st.Negotiation.Options {
				if c.neg.Enabled(Local, o.Option) != (o.Local == "yes") || c.neg.Enabled(Remote, o.Option) != (o.Remote == "yes") {
					t.Fatalf("option %d: %+v not in force after resume", o.Option, o)
				}
			}
			b.Close()
			c.Close()
		}
	})
}

// TestWriteCutCarried: a write the peer stopped reading in the middle of
// is cut (FreezeWrite) anywhere, even inside a doubled IAC or an NVT CR
// NUL; the connection is carried through JSON and the rest of the data
// written by the new one: the peer gets exactly the uninterrupted
// write's bytes. Both sides: a client connected to chartee, and chartee
// as a client.
func TestWriteCutCarried(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := rapid.SliceOfN(rapid.SampledFrom([]byte{'a', IAC, '\r', '\n', 0}), 1, 40).Draw(t, "p")
		binary := rapid.Bool().Draw(t, "binary")
		server := rapid.Bool().Draw(t, "server")
		want := AppendData(nil, p, binary)
		k := rapid.IntRange(0, len(want)).Draw(t, "k")
		var neg NegotiatorState
		if binary {
			neg.Options = []OptionState{{Option: OptBinary, Local: "yes"}}
		}
		a, b := net.Pipe()
		defer b.Close()
		type writer interface {
			Write([]byte) (int, error)
			FreezeWrite() error
			Close() error
		}
		resume := func(owed []byte) writer {
			if server {
				s, err := ResumeServer(a, Config{}, ServerState{Greeted: true, Negotiation: neg, LastModem: -1, OwedWire: owed})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			c, err := ResumeClient(a, Config{}, ClientState{Negotiation: neg, OwedWire: owed})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		export := func(w writer) []byte {
			var doc []byte
			if s, ok := w.(*ServerConn); ok {
				st, err := s.Export()
				if err != nil {
					t.Fatal(err)
				}
				doc, _ = json.Marshal(st)
				back, err := ParseServerState(doc)
				if err != nil {
					t.Fatal(err)
				}
				return back.OwedWire
			}
			c := w.(*ClientConn)
			c.mu.Lock()
			c.parked = true // its reader never started: nothing to stop
			c.mu.Unlock()
			st, err := c.Export()
			if err != nil {
				t.Fatal(err)
			}
			doc, _ = json.Marshal(st)
			back, err := ParseClientState(doc)
			if err != nil {
				t.Fatal(err)
			}
			return back.OwedWire
		}
		old := resume(nil)
		type result struct {
			n   int
			err error
		}
		done := make(chan result, 1)
		go func() {
			n, err := old.Write(p)
			done <- result{n, err}
		}()
		got := make([]byte, len(want))
		if _, err := io.ReadFull(b, got[:k]); err != nil {
			t.Fatal(err)
		}
		if err := old.FreezeWrite(); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil && !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("cut write: %v", r.err)
		}
		owed := export(old)
		a.SetWriteDeadline(time.Time{}) // the new process's descriptor
		next := resume(owed)
		go func() {
			n, err := next.Write(p[r.n:])
			done <- result{n, err}
		}()
		if _, err := io.ReadFull(b, got[k:]); err != nil {
			t.Fatal(err)
		}
		if r2 := <-done; r2.err != nil || r2.n != len(p)-r.n {
			t.Fatalf("rest written: %d, %v", r2.n, r2.err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cut after %d of %d wire bytes (%d of %d data bytes written, %q owed): peer got %q, want %q",
				k, len(want), r.n, len(p), owed, got, want)
		}
		next.Close()
	})
}

// TestSuspendedWriteCut: a write waiting because the peer suspended our
// output (RFC 2217 FLOWCONTROL-SUSPEND, carried as state) returns at
// FreezeWrite having sent nothing, on both sides.
func TestSuspendedWriteCut(t *testing.T) {
	for _, server := range []bool{true, false} {
		a, b := net.Pipe()
		var w interface {
			Write([]byte) (int, error)
			FreezeWrite() error
			Close() error
		}
		var err error
		if server {
			w, err = ResumeServer(a, Config{RFC2217: true}, ServerState{Greeted: true, Suspended: true, LastModem: -1})
		} else {
			w, err = ResumeClient(a, Config{RFC2217: true}, ClientState{Suspended: true})
		}
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			n, err := w.Write([]byte("held"))
			if n != 0 {
				err = fmt.Errorf("wrote %d bytes while suspended", n)
			}
			done <- err
		}()
		if err := w.FreezeWrite(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("server %v: suspended write cut: %v", server, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("server %v: the suspended write did not return at FreezeWrite", server)
		}
		b.Close()
		w.Close()
	}
}

// TestTextKeepsAnyBytes: a signature of any bytes comes back from the
// state document unchanged (a plain JSON string turns invalid UTF-8 into
// U+FFFD).
func TestTextKeepsAnyBytes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := Text(rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "sig"))
		b, err := json.Marshal(ServerState{PeerSignature: in})
		if err != nil {
			t.Fatal(err)
		}
		var back ServerState
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.PeerSignature != in {
			t.Fatalf("signature %q came back as %q (%s)", in, back.PeerSignature, b)
		}
	})
	var back Text
	for _, bad := range []string{`[256]`, `[-1]`, `{}`, `3`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
