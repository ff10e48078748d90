package backends

import (
	"io"
	"strings"
	"testing"

	"chartee/chardev"
)

// Telnet clients are interactive legs: they show notices and have the ^E
// escape by default. Raw and RFC 2217 streams are never Noticers, and
// `notices: false` turns notices off.
func TestTCPListenNoticesAndDefaultEscape(t *testing.T) {
	src := tcpTestListen(t, func(s *TCPListenSpec) { s.Protocol = ProtocolTelnet })
	srv := netServe(t, src)
	client := tcpTestConnect(t, func(s *TCPConnectSpec) { s.Address = src.Addr(); s.Protocol = ProtocolTelnet })
	leg := srv.next(t)
	ctl := &netFakeControl{}
	leg.(chardev.ControlAware).SetControl(ctl)
	pump := netStartPump(t, leg)
	if _, err := leg.Write([]byte("ready")); err != nil {
		t.Fatal(err)
	}
	netReadString(t, client, "ready")

	n, ok := leg.(chardev.Noticer)
	if !ok {
		t.Fatalf("telnet leg %T is not a chardev.Noticer", leg)
	}
	n.Notice("console0: now on serial /dev/ttyUSB1 115200 8N1 (failover)\r\n")
	netReadString(t, client, "\r\n[chartee] console0: now on serial /dev/ttyUSB1 115200 8N1 (failover)\r\n")

	if k := leg.(chardev.Escaper).EscapeKey(); k != "^E" {
		t.Fatalf("default escape %q, want ^E", k)
	}
	netWrite(t, client, "a\x05sb")
	netReadString(t, client, "\r\n[chartee] fake tee\r\n")
	pump.waitFor(t, "ab")

	for _, c := range []struct {
		name string
		edit func(*TCPListenSpec)
	}{
		{"raw", func(s *TCPListenSpec) { s.Protocol = ProtocolRaw }},
		{"rfc2217", func(s *TCPListenSpec) { s.Protocol = ProtocolRFC2217 }},
		{"telnet notices off", func(s *TCPListenSpec) { s.Protocol = ProtocolTelnet; off := false; s.Notices = &off }},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := tcpTestListen(t, c.edit)
			srv := netServe(t, src)
			conn := netDial(t, "tcp", src.Addr())
			defer conn.(io.Closer).Close()
			leg := srv.next(t)
			if _, ok := leg.(chardev.Noticer); ok {
				t.Fatalf("%s leg %T is a chardev.Noticer", c.name, leg)
			}
		})
	}
}

func TestTCPListenEscapeAndNoticesValidation(t *testing.T) {
	on := true
	for _, c := range []struct {
		edit func(*TCPListenSpec)
		want string // "" is valid
	}{
		{func(s *TCPListenSpec) { s.Protocol = ProtocolRaw; s.Notices = &on }, "notices: only telnet clients can be shown notices, not protocol raw"},
		{func(s *TCPListenSpec) { s.Protocol = ProtocolRFC2217; s.Notices = &on }, "not protocol rfc2217"},
		{func(s *TCPListenSpec) { s.Protocol = ProtocolTelnet; s.Notices = &on }, ""},
		{func(s *TCPListenSpec) { s.Protocol = ProtocolTelnet; s.Escape = "none" }, ""},
		{func(s *TCPListenSpec) { s.Protocol = ProtocolTelnet; s.Escape = "E" }, "escape"},
	} {
		spec := NewTCPListenSpec()
		spec.Listen = "127.0.0.1:1"
		c.edit(spec)
		err := spec.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", spec.NetServeOptions, err, c.want)
		}
	}
	if k, _ := netEscapeKey("none", ProtocolTelnet); k != 0 {
		t.Fatalf("escape none: %#x", k)
	}
	if k, _ := netEscapeKey("", ProtocolRaw); k != 0 {
		t.Fatalf("raw default escape %#x, want none", k)
	}
	if k, _ := netEscapeKey("", ProtocolTelnet); k != 0x05 {
		t.Fatalf("telnet default escape %#x, want ^E", k)
	}
}
