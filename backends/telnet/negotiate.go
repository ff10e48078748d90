package telnet

// Side names who performs an option: Local options are ones we perform
// (we send WILL/WONT, the peer DO/DONT); Remote options are ones the peer
// performs (it sends WILL/WONT, we DO/DONT).
type Side uint8

// Sides of an option.
const (
	Local Side = iota
	Remote
)

// qState is an RFC 1143 option state.
type qState uint8

const (
	qNo qState = iota
	qYes
	qWantNo
	qWantYes
)

type qOption struct {
	state    [2]qState // by Side
	opposite [2]bool   // RFC 1143 queue bit: the opposite request is queued
}

// Negotiator runs the RFC 1143 "Q method" option state machine for both
// sides of every option, so that negotiation can never loop however the
// peer answers. It does no I/O: its methods append the bytes to send to
// dst. The zero value refuses every option.
type Negotiator struct {
	allow [2][256]bool
	opts  [256]qOption
	// Refused counts the peer's requests we refused.
	Refused int
}

// NewNegotiator returns a Negotiator that agrees to perform the local
// options and lets the peer perform the remote ones.
func NewNegotiator(local, remote []byte) *Negotiator {
	n := &Negotiator{}
	for _, o := range local {
		n.allow[Local][o] = true
	}
	for _, o := range remote {
		n.allow[Remote][o] = true
	}
	return n
}

// Enabled reports whether opt is in effect on side.
func (n *Negotiator) Enabled(side Side, opt byte) bool {
	return n.opts[opt].state[side] == qYes
}

// Pending reports whether a request of ours about opt on side awaits the
// peer's answer.
func (n *Negotiator) Pending(side Side, opt byte) bool {
	s := n.opts[opt].state[side]
	return s == qWantYes || s == qWantNo
}

// verbs returns the commands we send to enable and disable an option on
// side.
func verbs(side Side) (yes, no byte) {
	if side == Local {
		return WILL, WONT
	}
	return DO, DONT
}

// Request asks the peer to enable (or disable) opt on side, appending the
// request to dst if one has to be sent. Asking for what is already in
// effect or already asked sends nothing.
func (n *Negotiator) Request(dst []byte, side Side, opt byte, enable bool) []byte {
	o := &n.opts[opt]
	yes, no := verbs(side)
	st, q := &o.state[side], &o.opposite[side]
	if enable {
		switch *st {
		case qNo:
			*st = qWantYes
			return AppendNegotiation(dst, yes, opt)
		case qWantNo:
			*q = true
		case qWantYes:
			*q = false
		}
		return dst
	}
	switch *st {
	case qYes:
		*st = qWantNo
		return AppendNegotiation(dst, no, opt)
	case qWantNo:
		*q = false
	case qWantYes:
		*q = true
	}
	return dst
}

// Receive applies the peer's cmd (WILL, WONT, DO or DONT) about opt and
// appends our answer, if any, to dst.
func (n *Negotiator) Receive(dst []byte, cmd, opt byte) []byte {
	var side Side
	var enable bool
	switch cmd {
	case WILL:
		side, enable = Remote, true
	case WONT:
		side, enable = Remote, false
	case DO:
		side, enable = Local, true
	case DONT:
		side, enable = Local, false
	default:
		return dst
	}
	o := &n.opts[opt]
	yes, no := verbs(side)
	st, q := &o.state[side], &o.opposite[side]
	if enable {
		switch *st {
		case qNo:
			if n.allow[side][opt] {
				*st = qYes
				return AppendNegotiation(dst, yes, opt)
			}
			n.Refused++
			return AppendNegotiation(dst, no, opt)
		case qWantNo:
			// The peer answered our disable with an enable: an error in
			// its state machine. Take the answer; act on a queued request.
			if *q {
				*st, *q = qYes, false
			} else {
				*st = qNo
			}
		case qWantYes:
			if *q {
				*st, *q = qWantNo, false
				return AppendNegotiation(dst, no, opt)
			}
			*st = qYes
		}
		return dst
	}
	switch *st {
	case qYes:
		*st = qNo
		return AppendNegotiation(dst, no, opt)
	case qWantNo:
		if *q {
			*st, *q = qWantYes, false
			return AppendNegotiation(dst, yes, opt)
		}
		*st = qNo
	case qWantYes:
		*st, *q = qNo, false
	}
	return dst
}
