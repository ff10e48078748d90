package telnet

import (
	"encoding/binary"
	"errors"
	"fmt"

	"chartee/chardev"
)

// RFC 2217 COM-PORT-OPTION commands as a client sends them. The access
// server answers and notifies with the same code plus ServerOffset.
const (
	ComSignature         byte = 0
	ComSetBaudRate       byte = 1
	ComSetDataSize       byte = 2
	ComSetParity         byte = 3
	ComSetStopSize       byte = 4
	ComSetControl        byte = 5
	ComNotifyLineState   byte = 6
	ComNotifyModemState  byte = 7
	ComFlowSuspend       byte = 8
	ComFlowResume        byte = 9
	ComSetLineStateMask  byte = 10
	ComSetModemStateMask byte = 11
	ComPurgeData         byte = 12

	// ServerOffset is added to a command code in the server's messages.
	ServerOffset byte = 100
)

// SET-CONTROL values (RFC 2217).
const (
	CtlFlowRequest    byte = 0
	CtlFlowNone       byte = 1
	CtlFlowXonXoff    byte = 2
	CtlFlowHardware   byte = 3
	CtlBreakRequest   byte = 4
	CtlBreakOn        byte = 5
	CtlBreakOff       byte = 6
	CtlDTRRequest     byte = 7
	CtlDTROn          byte = 8
	CtlDTROff         byte = 9
	CtlRTSRequest     byte = 10
	CtlRTSOn          byte = 11
	CtlRTSOff         byte = 12
	CtlInFlowRequest  byte = 13
	CtlInFlowNone     byte = 14
	CtlInFlowXonXoff  byte = 15
	CtlInFlowHardware byte = 16
	CtlFlowDCD        byte = 17
	CtlInFlowDTR      byte = 18
	CtlFlowDSR        byte = 19
)

// PURGE-DATA values. The receive buffer holds what the port received from
// the line; the transmit buffer what is waiting to go out on it.
const (
	PurgeReceive  byte = 1
	PurgeTransmit byte = 2
	PurgeBoth     byte = 3
)

// NOTIFY-MODEMSTATE bits.
const (
	ModemCD       byte = 0x80
	ModemRI       byte = 0x40
	ModemDSR      byte = 0x20
	ModemCTS      byte = 0x10
	ModemDeltaCD  byte = 0x08
	ModemTrailRI  byte = 0x04
	ModemDeltaDSR byte = 0x02
	ModemDeltaCTS byte = 0x01
)

// ErrComPort is wrapped by ParseComPort errors.
var ErrComPort = errors.New("malformed COM-PORT-OPTION subnegotiation")

// ComPortMsg is one RFC 2217 command, from client or server.
type ComPortMsg struct {
	// Code is the command code as sent: 0-12 from a client, 100-112 from
	// a server.
	Code byte
	// Value is the baud rate for SET-BAUDRATE and the single value byte
	// of the other commands that carry one (0 when absent).
	Value uint32
	// Text is SIGNATURE's text.
	Text []byte
}

// Command is the code without the server offset.
func (m ComPortMsg) Command() byte {
	if m.Code >= ServerOffset {
		return m.Code - ServerOffset
	}
	return m.Code
}

// FromServer reports whether the message uses the server's codes.
func (m ComPortMsg) FromServer() bool { return m.Code >= ServerOffset }

// ParseComPort parses the payload of an IAC SB COM-PORT-OPTION ... IAC SE
// subnegotiation (the bytes after the option byte). Text is copied, so the
// result outlives payload.
func ParseComPort(payload []byte) (ComPortMsg, error) {
	if len(payload) == 0 {
		return ComPortMsg{}, fmt.Errorf("%w: empty", ErrComPort)
	}
	m := ComPortMsg{Code: payload[0]}
	cmd := m.Command()
	if cmd > ComPurgeData || (m.Code > ComPurgeData && m.Code < ServerOffset) {
		return ComPortMsg{}, fmt.Errorf("%w: unknown command %d", ErrComPort, m.Code)
	}
	val := payload[1:]
	switch cmd {
	case ComSignature:
		m.Text = append([]byte(nil), val...)
	case ComSetBaudRate:
		// Some servers send 8 bytes; the first 4 are the rate.
		if len(val) < 4 {
			return ComPortMsg{}, fmt.Errorf("%w: SET-BAUDRATE with %d value bytes, want 4", ErrComPort, len(val))
		}
		m.Value = binary.BigEndian.Uint32(val)
	case ComFlowSuspend, ComFlowResume:
		// No value.
	case ComNotifyLineState, ComNotifyModemState:
		// A client's poll carries no value; a server's notification one.
		if m.FromServer() {
			if len(val) < 1 {
				return ComPortMsg{}, fmt.Errorf("%w: notification %d without a value", ErrComPort, m.Code)
			}
			m.Value = uint32(val[0])
		}
	default:
		if len(val) < 1 {
			return ComPortMsg{}, fmt.Errorf("%w: command %d without a value", ErrComPort, m.Code)
		}
		m.Value = uint32(val[0])
	}
	return m, nil
}

// Append appends the message as a complete, escaped IAC SB
// COM-PORT-OPTION ... IAC SE to dst.
func (m ComPortMsg) Append(dst []byte) []byte {
	payload := make([]byte, 1, 8+len(m.Text))
	payload[0] = m.Code
	switch m.Command() {
	case ComSignature:
		payload = append(payload, m.Text...)
	case ComSetBaudRate:
		payload = binary.BigEndian.AppendUint32(payload, m.Value)
	case ComFlowSuspend, ComFlowResume:
	case ComNotifyLineState, ComNotifyModemState:
		if m.FromServer() {
			payload = append(payload, byte(m.Value))
		}
	default:
		payload = append(payload, byte(m.Value))
	}
	return AppendSubnegotiation(dst, OptComPort, payload)
}

// ParityCode is the RFC 2217 SET-PARITY value for p.
func ParityCode(p chardev.Parity) byte {
	if p > chardev.ParitySpace {
		return 0
	}
	return byte(p) + 1 // none 1, odd 2, even 3, mark 4, space 5
}

// ParityFromCode maps a SET-PARITY value back; ok is false for 0 (a
// request) and unknown values.
func ParityFromCode(v byte) (p chardev.Parity, ok bool) {
	if v < 1 || v > 5 {
		return 0, false
	}
	return chardev.Parity(v - 1), true
}

// StopSizeCode is the RFC 2217 SET-STOPSIZE value for s: 1, 2, or 3 for
// one and a half.
func StopSizeCode(s chardev.StopBits) byte {
	switch s {
	case chardev.StopBits1:
		return 1
	case chardev.StopBits2:
		return 2
	case chardev.StopBits1Half:
		return 3
	}
	return 0
}

// StopBitsFromCode maps a SET-STOPSIZE value back.
func StopBitsFromCode(v byte) (s chardev.StopBits, ok bool) {
	switch v {
	case 1:
		return chardev.StopBits1, true
	case 2:
		return chardev.StopBits2, true
	case 3:
		return chardev.StopBits1Half, true
	}
	return 0, false
}

// FlowCode is the SET-CONTROL value selecting f (outbound or both
// directions).
func FlowCode(f chardev.Flow) byte {
	switch f {
	case chardev.FlowXONXOFF:
		return CtlFlowXonXoff
	case chardev.FlowRTSCTS:
		return CtlFlowHardware
	}
	return CtlFlowNone
}

// FlowFromCode maps the SET-CONTROL flow values, outbound (1-3) and
// inbound (14-16), to a flow mode.
func FlowFromCode(v byte) (f chardev.Flow, ok bool) {
	switch v {
	case CtlFlowNone, CtlInFlowNone:
		return chardev.FlowNone, true
	case CtlFlowXonXoff, CtlInFlowXonXoff:
		return chardev.FlowXONXOFF, true
	case CtlFlowHardware, CtlInFlowHardware:
		return chardev.FlowRTSCTS, true
	}
	return 0, false
}

// ModemStateByte encodes the far-end modem lines for NOTIFY-MODEMSTATE,
// without the delta bits.
func ModemStateByte(ms chardev.ModemStatus) byte {
	var b byte
	if ms.DCD {
		b |= ModemCD
	}
	if ms.RI {
		b |= ModemRI
	}
	if ms.DSR {
		b |= ModemDSR
	}
	if ms.CTS {
		b |= ModemCTS
	}
	return b
}

// ModemStatusFromByte decodes a NOTIFY-MODEMSTATE value. DTR and RTS are
// ours, not reported by the server, and left false.
func ModemStatusFromByte(b byte) chardev.ModemStatus {
	return chardev.ModemStatus{
		DCD: b&ModemCD != 0,
		RI:  b&ModemRI != 0,
		DSR: b&ModemDSR != 0,
		CTS: b&ModemCTS != 0,
	}
}
