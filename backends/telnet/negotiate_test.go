package telnet

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

func TestNegotiatorRefusesUnsupported(t *testing.T) {
	n := NewNegotiator([]byte{OptBinary}, []byte{OptSGA})
	tests := []struct {
		cmd, opt byte
		want     []byte
	}{
		{DO, 24, []byte{IAC, WONT, 24}},         // terminal type: we won't
		{WILL, 31, []byte{IAC, DONT, 31}},       // NAWS: please don't
		{DONT, 24, nil},                         // already off: no answer, no loop
		{WONT, 31, nil},                         // already off
		{DO, OptBinary, []byte{IAC, WILL, 0}},   // supported
		{DO, OptBinary, nil},                    // already on: no answer
		{WILL, OptSGA, []byte{IAC, DO, 3}},      // supported
		{WONT, OptSGA, []byte{IAC, DONT, 3}},    // peer turns it off: acknowledge
		{WONT, OptSGA, nil},                     // and not again
		{WILL, OptBinary, []byte{IAC, DONT, 0}}, // we don't let the peer do binary
	}
	for _, tt := range tests {
		if got := n.Receive(nil, tt.cmd, tt.opt); !bytes.Equal(got, tt.want) {
			t.Errorf("Receive(%d, %d) = %v, want %v", tt.cmd, tt.opt, got, tt.want)
		}
	}
	if n.Refused != 3 {
		t.Errorf("Refused = %d, want 3", n.Refused)
	}
	if !n.Enabled(Local, OptBinary) || n.Enabled(Remote, OptSGA) {
		t.Errorf("states wrong: local binary %v remote SGA %v", n.Enabled(Local, OptBinary), n.Enabled(Remote, OptSGA))
	}
}

func TestNegotiatorRequest(t *testing.T) {
	n := NewNegotiator([]byte{OptEcho}, nil)
	if got := n.Request(nil, Local, OptEcho, true); !bytes.Equal(got, []byte{IAC, WILL, 1}) {
		t.Fatalf("request = %v", got)
	}
	if got := n.Request(nil, Local, OptEcho, true); got != nil {
		t.Fatalf("second request sent %v", got)
	}
	if !n.Pending(Local, OptEcho) {
		t.Fatal("not pending")
	}
	if got := n.Receive(nil, DO, OptEcho); got != nil {
		t.Fatalf("answer to our request answered: %v", got)
	}
	if !n.Enabled(Local, OptEcho) {
		t.Fatal("not enabled after DO")
	}
	// Peer refuses a request: no answer to the refusal.
	if got := n.Request(nil, Remote, OptSGA, true); !bytes.Equal(got, []byte{IAC, DO, 3}) {
		t.Fatalf("request = %v", got)
	}
	if got := n.Receive(nil, WONT, OptSGA); got != nil {
		t.Fatalf("refusal answered: %v", got)
	}
	if n.Enabled(Remote, OptSGA) || n.Pending(Remote, OptSGA) {
		t.Fatal("refused option still on or pending")
	}
}

// TestNegotiationTerminatesProperty runs two negotiators against each
// other with random requests and random message interleaving: the
// exchange always ends, bounded, with both sides agreeing on every option
// and no option on that either side refuses.
func TestNegotiationTerminatesProperty(t *testing.T) {
	opts := []byte{0, 1, 3, 44}
	rapid.Check(t, func(t *rapid.T) {
		pick := func(label string) []byte {
			var s []byte
			for _, o := range opts {
				if rapid.Bool().Draw(t, label) {
					s = append(s, o)
				}
			}
			return s
		}
		peers := [2]*Negotiator{
			NewNegotiator(pick("aLocal"), pick("aRemote")),
			NewNegotiator(pick("bLocal"), pick("bRemote")),
		}
		var wire [2][]byte            // wire[i]: bytes in flight to peer i
		var requested [2][2][256]bool // by peer, side, option: asked to enable
		steps := rapid.IntRange(0, 40).Draw(t, "steps")
		messages := 0
		deliver := func(to int) {
			if len(wire[to]) < 3 {
				return
			}
			msg := wire[to][:3]
			wire[to] = wire[to][3:]
			wire[1-to] = peers[to].Receive(wire[1-to], msg[1], msg[2])
			messages++
		}
		for i := 0; i < steps; i++ {
			who := rapid.IntRange(0, 1).Draw(t, "who")
			switch rapid.IntRange(0, 2).Draw(t, "action") {
			case 0:
				side := Side(rapid.IntRange(0, 1).Draw(t, "side"))
				opt := rapid.SampledFrom(opts).Draw(t, "opt")
				enable := rapid.Bool().Draw(t, "enable")
				requested[who][side][opt] = requested[who][side][opt] || enable
				wire[1-who] = peers[who].Request(wire[1-who], side, opt, enable)
			default:
				deliver(who)
			}
		}
		for len(wire[0])+len(wire[1]) > 0 {
			deliver(rapid.IntRange(0, 1).Draw(t, "drain"))
			if messages > 10*steps+100 {
				t.Fatalf("negotiation loops: %d messages after %d steps", messages, steps)
			}
		}
		for _, o := range opts {
			for i := 0; i < 2; i++ {
				a, b := peers[i], peers[1-i]
				if a.Enabled(Local, o) != b.Enabled(Remote, o) {
					t.Fatalf("option %d: peer %d local %v, peer %d remote %v", o, i, a.Enabled(Local, o), 1-i, b.Enabled(Remote, o))
				}
				// An option is on only if each side either accepts it or
				// asked for it itself.
				aOK := a.allow[Local][o] || requested[i][Local][o]
				bOK := b.allow[Remote][o] || requested[1-i][Remote][o]
				if a.Enabled(Local, o) && !(aOK && bOK) {
					t.Fatalf("option %d on peer %d enabled against policy", o, i)
				}
			}
		}
	})
}
