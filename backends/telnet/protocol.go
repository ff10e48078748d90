package telnet

// Telnet commands (RFC 854). Each follows an IAC byte on the wire.
const (
	SE   byte = 240 // end of subnegotiation
	NOP  byte = 241 // no operation
	DM   byte = 242 // data mark
	BRK  byte = 243 // break
	IP   byte = 244 // interrupt process
	AO   byte = 245 // abort output
	AYT  byte = 246 // are you there
	EC   byte = 247 // erase character
	EL   byte = 248 // erase line
	GA   byte = 249 // go ahead
	SB   byte = 250 // start of subnegotiation
	WILL byte = 251
	WONT byte = 252
	DO   byte = 253
	DONT byte = 254
	IAC  byte = 255 // interpret as command
)

// Telnet options this package negotiates.
const (
	OptBinary  byte = 0  // RFC 856 binary transmission
	OptEcho    byte = 1  // RFC 857 echo
	OptSGA     byte = 3  // RFC 858 suppress go ahead
	OptComPort byte = 44 // RFC 2217 COM-PORT-OPTION
)

// AppendData appends p to dst escaped for the wire: every IAC is doubled.
// When binary is false the stream is an NVT (RFC 854): a CR not followed by
// LF in p is sent as CR NUL, so the receiver can tell a bare carriage return
// from an end of line. A CR ending p is sent as CR NUL too, which decodes
// the same whatever the next write starts with.
func AppendData(dst, p []byte, binary bool) []byte {
	for i, b := range p {
		switch {
		case b == IAC:
			dst = append(dst, IAC, IAC)
		case b == '\r' && !binary && (i+1 == len(p) || p[i+1] != '\n'):
			dst = append(dst, '\r', 0)
		default:
			dst = append(dst, b)
		}
	}
	return dst
}

// AppendCommand appends IAC cmd (BRK, AYT, NOP, ...).
func AppendCommand(dst []byte, cmd byte) []byte {
	return append(dst, IAC, cmd)
}

// AppendNegotiation appends IAC cmd opt, where cmd is WILL, WONT, DO or
// DONT.
func AppendNegotiation(dst []byte, cmd, opt byte) []byte {
	return append(dst, IAC, cmd, opt)
}

// AppendSubnegotiation appends IAC SB opt payload IAC SE with IAC bytes in
// the payload doubled.
func AppendSubnegotiation(dst []byte, opt byte, payload []byte) []byte {
	dst = append(dst, IAC, SB, opt)
	dst = AppendData(dst, payload, true)
	return append(dst, IAC, SE)
}
