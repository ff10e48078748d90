package telnet

// This file exports and imports the codec's state (Decoder, Negotiator) as
// plain values, so that a connection can be handed to another process in
// the middle of anything: a cut may fall inside an IAC sequence, a
// subnegotiation or an NVT CR NUL, and the process that takes over decodes
// the rest exactly as this one would have. Imported state is checked, not
// trusted: a bad document is an error naming what is wrong.

import (
	"errors"
	"fmt"
)

// ErrState is wrapped by every error about a bad state document.
var ErrState = errors.New("bad telnet state")

func stateErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrState}, args...)...)
}

var decoderStateNames = [...]string{
	stData:      "data",
	stCR:        "cr",
	stIAC:       "iac",
	stNeg:       "negotiation",
	stSBOpt:     "sb-option",
	stSB:        "sb",
	stSBIAC:     "sb-iac",
	stSBSkip:    "sb-skip",
	stSBSkipIAC: "sb-skip-iac",
}

// DecoderState is a Decoder's state between two calls to Decode.
type DecoderState struct {
	// Binary is the peer's binary mode (Decoder.Binary).
	Binary bool `json:"binary,omitempty"`
	// At names where in the protocol the last byte left the decoder:
	// "data" (or empty), "cr" (NVT, after a CR), "iac", "negotiation"
	// (after IAC WILL/WONT/DO/DONT), "sb-option" (after IAC SB), "sb",
	// "sb-iac" (an IAC inside a subnegotiation), "sb-skip" and
	// "sb-skip-iac" (discarding an oversize one).
	At string `json:"at,omitempty"`
	// Command is the WILL/WONT/DO/DONT awaiting its option.
	Command byte `json:"command,omitempty"`
	// Option is the open subnegotiation's option.
	Option byte `json:"option,omitempty"`
	// Payload is the open subnegotiation's payload so far.
	Payload []byte `json:"payload,omitempty"`
}

// State exports the decoder's state.
func (d *Decoder) State() DecoderState {
	s := DecoderState{Binary: d.Binary}
	if d.state != stData {
		s.At = decoderStateNames[d.state]
	}
	switch d.state {
	case stNeg:
		s.Command = d.cmd
	case stSB, stSBIAC, stSBSkip, stSBSkipIAC:
		s.Option = d.sbOpt
		if d.state == stSB || d.state == stSBIAC {
			s.Payload = append([]byte(nil), d.sb...)
		}
	}
	return s
}

// SetState makes the decoder continue from s, exported by State. It
// checks s against the decoder's own limit (MaxSubneg).
func (d *Decoder) SetState(s DecoderState) error {
	st, ok := stData, s.At == ""
	for i, name := range decoderStateNames {
		if s.At != "" && name == s.At {
			st, ok = decoderState(i), true
		}
	}
	if !ok {
		return stateErr("decoder at %q: unknown", s.At)
	}
	inSB := st == stSB || st == stSBIAC
	switch {
	case st == stNeg && (s.Command < WILL || s.Command > DONT):
		return stateErr("decoder: negotiation command %d: want WILL, WONT, DO or DONT", s.Command)
	case st != stNeg && s.Command != 0:
		return stateErr("decoder at %q: a command outside a negotiation", s.At)
	case !inSB && len(s.Payload) > 0:
		return stateErr("decoder at %q: a payload outside a subnegotiation", s.At)
	case st < stSB && s.Option != 0:
		return stateErr("decoder at %q: an option outside a subnegotiation", s.At)
	case st == stCR && s.Binary:
		return stateErr("decoder: NVT CR state in binary mode")
	}
	limit := d.MaxSubneg
	if limit <= 0 {
		limit = DefaultMaxSubneg
	}
	if len(s.Payload) > limit {
		return stateErr("decoder: subnegotiation payload of %d bytes over the limit %d", len(s.Payload), limit)
	}
	d.Binary, d.state, d.cmd, d.sbOpt = s.Binary, st, s.Command, s.Option
	d.sb = append(d.sb[:0], s.Payload...)
	return nil
}

var qStateNames = [...]string{qNo: "", qYes: "yes", qWantNo: "want-no", qWantYes: "want-yes"}

// OptionState is one option's RFC 1143 state, both sides.
type OptionState struct {
	Option byte `json:"option"`
	// Local and Remote are "" (no), "yes", "want-no" or "want-yes".
	Local  string `json:"local,omitempty"`
	Remote string `json:"remote,omitempty"`
	// LocalQueued and RemoteQueued are RFC 1143's queue bits: the
	// opposite request is queued behind the one awaiting an answer.
	LocalQueued  bool `json:"local_queued,omitempty"`
	RemoteQueued bool `json:"remote_queued,omitempty"`
}

// NegotiatorState is a Negotiator's state: every option not in its
// initial state (off both sides, nothing asked).
type NegotiatorState struct {
	Options []OptionState `json:"options,omitempty"`
	Refused int           `json:"refused,omitempty"`
}

// State exports the option states.
func (n *Negotiator) State() NegotiatorState {
	s := NegotiatorState{Refused: n.Refused}
	for i, o := range n.opts {
		if o == (qOption{}) {
			continue
		}
		s.Options = append(s.Options, OptionState{
			Option: byte(i),
			Local:  qStateNames[o.state[Local]], Remote: qStateNames[o.state[Remote]],
			LocalQueued: o.opposite[Local], RemoteQueued: o.opposite[Remote],
		})
	}
	return s
}

// SetState makes the negotiator continue from s, exported by State. An
// option enabled or asked for that this negotiator does not allow is an
// error: the state belongs to a connection configured differently.
func (n *Negotiator) SetState(s NegotiatorState) error {
	if s.Refused < 0 {
		return stateErr("negotiation: refused count %d", s.Refused)
	}
	var opts [256]qOption
	seen := [256]bool{}
	for _, o := range s.Options {
		if seen[o.Option] {
			return stateErr("negotiation: option %d given twice", o.Option)
		}
		seen[o.Option] = true
		for side, name := range [2]string{o.Local, o.Remote} {
			q, err := parseQState(o.Option, name)
			if err != nil {
				return err
			}
			queued := [2]bool{o.LocalQueued, o.RemoteQueued}[side]
			if queued && q != qWantNo && q != qWantYes {
				return stateErr("negotiation: option %d: a queued request while nothing is asked", o.Option)
			}
			if (q == qYes || q == qWantYes || queued) && !n.allow[side][o.Option] {
				return stateErr("negotiation: option %d is on or asked for, and this connection does not allow it", o.Option)
			}
			opts[o.Option].state[side], opts[o.Option].opposite[side] = q, queued
		}
	}
	n.opts, n.Refused = opts, s.Refused
	return nil
}

func parseQState(opt byte, name string) (qState, error) {
	for i, n := range qStateNames {
		if n == name {
			return qState(i), nil
		}
	}
	return 0, stateErr("negotiation: option %d: state %q: want yes, want-no, want-yes or empty", opt, name)
}
