// Package telnet speaks the telnet protocol (RFC 854/855) with the options
// a serial console needs: binary transmission (RFC 856), echo (RFC 857),
// suppress-go-ahead (RFC 858) and the RFC 2217 COM-PORT-OPTION that lets a
// client set a remote serial port's baud rate, framing, flow control and
// modem lines.
//
// The package has two layers. The codec (Decoder, Negotiator, the Append*
// builders and ComPortMsg) is pure: bytes in, data bytes and events out, no
// I/O, so it can be fuzzed and property-tested in isolation. The I/O layer
// wraps a net.Conn: ServerConn is a leg of the tee (a telnet or RFC 2217
// client connected to us), ClientConn is chartee reaching out to a remote
// port server such as ser2net.
//
// It is written here rather than taken from a library because the Go telnet
// packages available either mix I/O into the parser or lack RFC 2217 and the
// RFC 1143 option state machine, and a serial console server needs all of
// them together with bounded memory for hostile input.
package telnet
