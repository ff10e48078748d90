package telnet

// DefaultMaxSubneg bounds a subnegotiation's payload when Decoder.MaxSubneg
// is zero. RFC 2217 payloads are a few bytes; a signature string is the
// longest thing a well-behaved peer sends.
const DefaultMaxSubneg = 1024

// EventKind says what protocol element a Decoder met.
type EventKind uint8

// Event kinds.
const (
	// EventCommand is IAC followed by a one-byte command: BRK, AYT, IP, NOP...
	EventCommand EventKind = iota + 1
	// EventNegotiation is IAC WILL/WONT/DO/DONT option.
	EventNegotiation
	// EventSubnegotiation is a complete IAC SB option ... IAC SE.
	EventSubnegotiation
	// EventSubnegDropped is a subnegotiation that was discarded: longer
	// than the limit, or cut short by another command.
	EventSubnegDropped
)

// Event is one protocol element found in the byte stream.
type Event struct {
	Kind EventKind
	// Command is the command byte for EventCommand, and WILL, WONT, DO or
	// DONT for EventNegotiation.
	Command byte
	// Option is the option of a negotiation or subnegotiation.
	Option byte
	// Data is a subnegotiation's payload after the option byte, with IAC
	// IAC unescaped. It belongs to the Decoder and is valid until the next
	// call to Decode.
	Data []byte
}

type decoderState uint8

const (
	stData      decoderState = iota
	stCR                     // NVT mode, the last data byte was CR
	stIAC                    // IAC seen
	stNeg                    // IAC WILL/WONT/DO/DONT seen, option next
	stSBOpt                  // IAC SB seen, option next
	stSB                     // in a subnegotiation payload
	stSBIAC                  // IAC seen inside a subnegotiation
	stSBSkip                 // in an oversize subnegotiation, discarding
	stSBSkipIAC              // IAC seen inside an oversize subnegotiation
)

// Decoder splits a telnet byte stream into data and protocol events. It
// does no I/O and keeps its state between calls, so input may be cut
// anywhere. Its memory is bounded whatever the input: subnegotiations
// longer than MaxSubneg are discarded, not buffered. The zero value is
// ready to use.
type Decoder struct {
	// Binary is whether the peer sends in binary mode (RFC 856). When it
	// does not, the stream is an NVT and CR NUL is decoded as a bare CR.
	Binary bool
	// MaxSubneg bounds a subnegotiation payload; 0 means DefaultMaxSubneg.
	MaxSubneg int

	state decoderState
	cmd   byte
	sbOpt byte
	sb    []byte
	ev    Event
}

// Decode consumes in until it has read one complete protocol event or
// reached the end of in, appending data bytes to dst. It returns the
// extended dst, the input it did not consume, and the event or nil. Call it
// again with rest (after acting on the event) until rest is empty; data
// appended before an event came before it on the wire.
func (d *Decoder) Decode(dst, in []byte) (out, rest []byte, ev *Event) {
	for i := 0; i < len(in); i++ {
		b := in[i]
		switch d.state {
		case stData, stCR:
			if b == IAC {
				d.state = stIAC
				continue
			}
			afterCR := d.state == stCR
			d.state = stData
			if afterCR && b == 0 {
				continue // NVT CR NUL: a bare carriage return
			}
			dst = append(dst, b)
			if b == '\r' && !d.Binary {
				d.state = stCR
			}
		case stIAC:
			d.state = stData
			switch b {
			case IAC:
				dst = append(dst, IAC)
			case WILL, WONT, DO, DONT:
				d.cmd, d.state = b, stNeg
			case SB:
				d.state = stSBOpt
			case SE:
				// A stray end of subnegotiation: nothing to end.
			default:
				return dst, in[i+1:], d.emit(Event{Kind: EventCommand, Command: b})
			}
		case stNeg:
			d.state = stData
			return dst, in[i+1:], d.emit(Event{Kind: EventNegotiation, Command: d.cmd, Option: b})
		case stSBOpt:
			if b == IAC {
				// IAC SB IAC: no option byte. Drop the subnegotiation and
				// read this IAC as the start of a command.
				d.state = stIAC
				return dst, in[i+1:], d.emit(Event{Kind: EventSubnegDropped})
			}
			d.sbOpt, d.sb, d.state = b, d.sb[:0], stSB
		case stSB, stSBSkip:
			if b == IAC {
				d.state++ // stSBIAC or stSBSkipIAC
				continue
			}
			d.sbAppend(b)
		case stSBIAC, stSBSkipIAC:
			skipping := d.state == stSBSkipIAC
			switch b {
			case IAC:
				d.state--
				d.sbAppend(IAC)
			case SE:
				d.state = stData
				if skipping {
					return dst, in[i+1:], d.emit(Event{Kind: EventSubnegDropped, Option: d.sbOpt})
				}
				return dst, in[i+1:], d.emit(Event{Kind: EventSubnegotiation, Option: d.sbOpt, Data: d.sb})
			default:
				// IAC <command> inside a subnegotiation: it was never
				// closed. Drop it and reread the command normally.
				d.state = stIAC
				return dst, in[i:], d.emit(Event{Kind: EventSubnegDropped, Option: d.sbOpt})
			}
		}
	}
	return dst, nil, nil
}

func (d *Decoder) sbAppend(b byte) {
	if d.state == stSBSkip {
		return
	}
	limit := d.MaxSubneg
	if limit <= 0 {
		limit = DefaultMaxSubneg
	}
	if len(d.sb) >= limit {
		d.state = stSBSkip
		d.sb = d.sb[:0]
		return
	}
	d.sb = append(d.sb, b)
}

func (d *Decoder) emit(e Event) *Event {
	d.ev = e
	return &d.ev
}
