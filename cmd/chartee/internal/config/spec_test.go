package config

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"chartee/backends"
	"chartee/tee"
)

func mustSpec(t *testing.T, s string) *Backend {
	t.Helper()
	b, err := ParseSpec(s)
	if err != nil {
		t.Fatalf("ParseSpec(%q): %v", s, err)
	}
	return b
}

func TestParseSpecExamples(t *testing.T) {
	b := mustSpec(t, "file,name=cap2,path=/tmp/c.log,format=raw")
	if b.Name != "cap2" || b.Type != "file" || b.Spec.(*backends.FileSpec).Path != "/tmp/c.log" || b.Leg.Input {
		t.Errorf("file spec = %+v", b)
	}

	b = mustSpec(t, "tcp-listen,name=ops,listen=127.0.0.1:7000,protocol=telnet")
	if tl := b.Spec.(*backends.TCPListenSpec); tl.Listen != "127.0.0.1:7000" || tl.Protocol != "telnet" || !b.Leg.Input {
		t.Errorf("tcp-listen spec = %+v %+v", tl, b.Leg)
	}

	b = mustSpec(t, "tcp-listen,name=sec,listen=0.0.0.0:7001,tls.cert=/c.pem,tls.key=/k.pem,allow=10.0.0.0/8;127.0.0.1/32,"+
		"banner=hello,, world;x,idle_timeout=90s,max_clients=4,control=true,queue=1MiB,on_overflow=block,replay=4KiB,input=false")
	tl := b.Spec.(*backends.TCPListenSpec)
	if tl.TLS == nil || tl.TLS.Cert != "/c.pem" || tl.TLS.Key != "/k.pem" || len(tl.Allow) != 2 || tl.Allow[1] != "127.0.0.1/32" ||
		tl.Banner != "hello, world;x" || tl.IdleTimeout.D() != 90*time.Second || tl.MaxClients != 4 || !tl.Control {
		t.Errorf("tcp-listen spec = %+v tls %+v", tl, tl.TLS)
	}
	// control=true on a listener is the legs' permission to change the
	// line (chardev.ControlGranter).
	if b.Leg != (tee.LegOptions{Input: false, Control: true, Queue: 1 << 20, Overflow: tee.Block, Replay: 4 << 10}) {
		t.Errorf("leg = %+v", b.Leg)
	}

	// Plain values resolve like YAML: a number for an int, true for a bool;
	// a number given to a string key is that string.
	b = mustSpec(t, "type=serial,name=s,path=/dev/ttyS0,baud=9600,stop_bits=2,dtr=false,rts=true")
	ser := b.Spec.(*backends.SerialSpec)
	if ser.Baud != 9600 || ser.StopBits != "2" || ser.DTR == nil || *ser.DTR || ser.RTS == nil || !*ser.RTS {
		t.Errorf("serial = %+v", ser)
	}

	b = mustSpec(t, "file,name=r,path=/x,rotate.max_size=10MiB,rotate.keep=3,rotate.compress=true")
	if r := b.Spec.(*backends.FileSpec).Rotate; r != (backends.FileRotate{MaxSize: 10 << 20, Keep: 3, Compress: true}) {
		t.Errorf("rotate = %+v", r)
	}

	b = mustSpec(t, "exec,name=e,command=sh;-c;echo a;;b,,c,env=A=1;B=2")
	if ex := b.Spec.(*backends.ExecSpec); len(ex.Command) != 3 || ex.Command[2] != "echo a;b,c" || len(ex.Env) != 2 || ex.Env[0] != "A=1" {
		t.Errorf("exec = %+v", ex)
	}

	// An empty list value is an empty list, an empty string value empty.
	b = mustSpec(t, "tcp-listen,name=x,listen=127.0.0.1:1,allow=,banner=")
	if tl := b.Spec.(*backends.TCPListenSpec); len(tl.Allow) != 0 || tl.Banner != "" {
		t.Errorf("empty values = %+v", tl)
	}
}

func TestParseSpecErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"file,pth=/tmp/c.log", `spec: key "pth" (at column 6): unknown key for file; did you mean "path"?`},
		{"file,name=a,path=/x,rotate.max_sise=1MiB", `spec: key "rotate.max_sise" (at column 21): unknown key for rotate; did you mean "max_size"?`},
		{"tcp-listen,name=a,listen=127.0.0.1:1,tls.crt=/c", `spec: key "tls.crt" (at column 38): unknown key for tls; did you mean "cert"?`},
		{"fil,name=a", `spec: key "type" (at column 1): unknown backend type "fil"; did you mean "file"?`},
		{"", "spec: empty; want TYPE,key=value"},
		{"name=a,path=/x", "spec: type: required (one of: config-test, demo,"},
		{"file,path=/x", "spec: name: required"},
		// A missing required spec key: Validate names it, with no column
		// since it is not in the string.
		{"file,name=a", "spec: file: path: required"},
		{"file,name=a,path=/x,", "spec: empty option at column 21 (a stray comma?"},
		{"file,name=a,path=/x,append", `spec: key "append" (at column 21): want key=value`},
		{"file,name=a,path=/x,path=/y", `spec: key "path" (at column 21): duplicate key (first at column 13)`},
		{"file,name=a,path=/x,type=file", `spec: key "type" (at column 21): duplicate key (first at column 1)`},
		{"file,name=a,path=/x,rotate=1,rotate.keep=2", `spec: key "rotate" (at column 30): duplicate key (first at column 21)`},
		{"file,name=a,path=/x,=3", `spec: option "=3" at column 21: want key=value`},
		{"file,name=a,path=/x,rotate..keep=3", `spec: option "rotate..keep=3" at column 21: want key=value`},
		{"file,name=a,path=/x,width=wide", `spec: key "width" (at column 21): want a whole number, got "wide"`},
		{"file,name=a,path=/x,append=yes", `spec: key "append" (at column 21): want true or false, got "yes"`},
		{"file,name=a,path=/x,queue=lots", `spec: key "queue" (at column 21): size "lots"`},
		{"file,name=a,path=/x,on_overflow=dorp", `spec: key "on_overflow" (at column 21): "dorp" is not one of drop, block, disconnect; did you mean "drop"?`},
		{"file,name=a,path=/x,format=json", `spec: key "format" (at column 21): file: format "json": want raw, timestamped or asciicast`},
		{"file,name=a,path=/x,rotate=big", `spec: key "rotate" (at column 21): want a mapping (rotate), got "big"`},
		{"file,name=a/b,path=/x", `spec: key "name" (at column 6): "a/b": want letters`},
		{"tcp-listen,name=a,listen=:7000", `spec: key "listen" (at column 19): tcp-listen: listen ":7000": give a host`},
		{"null,name=a,input=maybe,queue=-1", `spec: key "input" (at column 13): want true or false, got "maybe"`},
	}
	for _, tc := range tests {
		_, err := ParseSpec(tc.spec)
		if err == nil {
			t.Errorf("ParseSpec(%q): no error", tc.spec)
			continue
		}
		if !strings.HasPrefix(err.Error(), tc.want) && !strings.Contains(err.Error(), "\n"+tc.want) {
			t.Errorf("ParseSpec(%q):\n got %v\nwant %s...", tc.spec, err, tc.want)
		}
		var list ErrorList
		if !errors.As(err, &list) {
			t.Errorf("ParseSpec(%q) error is %T, want ErrorList", tc.spec, err)
		}
	}

	// Every problem is reported, not just the first.
	_, err := ParseSpec("null,name=a,input=maybe,queue=-1,sise=3")
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 3 {
		t.Errorf("want 3 errors, got %v", err)
	}
}

func TestParseDeviceSpec(t *testing.T) {
	d, err := ParseDeviceSpec("serial,path=/dev/ttyUSB1,baud=57600")
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Spec.(*backends.SerialSpec); d.Type != "serial" || s.Baud != 57600 || d.IsSource() {
		t.Errorf("device = %+v %+v", d, s)
	}
	for _, tc := range []struct{ spec, want string }{
		{"serial,name=x,path=/dev/ttyS0", `spec: key "name" (at column 8): unknown key for serial`},
		{"serial,path=/dev/ttyS0,queue=1", `spec: key "queue" (at column 24): unknown key for serial`},
		{"tcp-listen,listen=127.0.0.1:1", `spec: key "type" (at column 1): tcp-listen cannot be a frontend`},
		{"udp,listen=127.0.0.1:1", `spec: key "type" (at column 1): udp cannot be a frontend`},
	} {
		_, err := ParseDeviceSpec(tc.spec)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ParseDeviceSpec(%q) = %v, want %s...", tc.spec, err, tc.want)
		}
	}
	if d, err := ParseDeviceSpec("udp,remote=127.0.0.1:9"); err != nil || d.IsSource() {
		t.Errorf("udp with remote: %v", err)
	}
}

func TestDeviceSpecToJSON(t *testing.T) {
	for _, s := range []string{
		"serial,path=/dev/ttyUSB1,baud=57600,dtr=false",
		"tcp-connect,address=127.0.0.1:7001,protocol=rfc2217,tls.ca=/ca.pem,reconnect.max=5s",
		"udp,remote=127.0.0.1:9,listen=127.0.0.1:0",
	} {
		j, err := DeviceSpecToJSON(s)
		if err != nil {
			t.Errorf("DeviceSpecToJSON(%q): %v", s, err)
			continue
		}
		d1, _ := ParseDeviceSpec(s)
		d2, err := DecodeDeviceJSON(j)
		if err != nil || d2.Canonical != d1.Canonical {
			t.Errorf("round trip of %q via %s: %v\n%s\n%s", s, j, err, d1.Canonical, d2.Canonical)
		}
	}
	j, _ := DeviceSpecToJSON("serial,path=/dev/ttyUSB1,baud=57600")
	if string(j) != `{"type":"serial","path":"/dev/ttyUSB1","baud":57600}` {
		t.Errorf("DeviceSpecToJSON = %s", j)
	}
	for _, s := range []string{"serial,name=x,path=/dev/x", "tcp-listen,listen=127.0.0.1:1", "serial,path=/x,baud=fast"} {
		if _, err := DeviceSpecToJSON(s); err == nil {
			t.Errorf("DeviceSpecToJSON(%q): no error", s)
		}
	}
}

func TestParseSpecInvalidUTF8(t *testing.T) {
	// Found by FuzzParseSpec: JSON cannot carry such a value, so the
	// API could not either.
	_, err := ParseSpec("serial,name=0,path=\xff0")
	if err == nil || err.Error() != "spec: not valid UTF-8" {
		t.Errorf("ParseSpec(invalid UTF-8) = %v", err)
	}
}

func TestParseSpecFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("name: cap\ntype: file\npath: /tmp/cap.log\nrotate:\n  max_size: 1MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := ParseSpec("@" + good)
	if err != nil {
		t.Fatal(err)
	}
	if b.Name != "cap" || b.Spec.(*backends.FileSpec).Rotate.MaxSize != 1<<20 || b.Pos != (Pos{File: good, Line: 1, Col: 1}) {
		t.Errorf("backend = %+v", b)
	}
	cli := mustSpec(t, "file,name=cap,path=/tmp/cap.log,rotate.max_size=1MiB")
	if b.Canonical != cli.Canonical {
		t.Errorf("@file and CLI differ:\n%s\n%s", b.Canonical, cli.Canonical)
	}
	j, err := SpecToJSON("@" + good)
	if err != nil || string(j) != `{"name":"cap","type":"file","path":"/tmp/cap.log","rotate":{"max_size":"1MiB"}}` {
		t.Errorf("SpecToJSON(@file) = %s, %v", j, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: cap\ntype: file\npath: /x\nrotate:\n  max_sise: 1MiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = ParseSpec("@" + bad)
	if err == nil || !strings.HasPrefix(err.Error(), bad+`:5:3: rotate.max_sise: unknown key for rotate; did you mean "max_size"?`) {
		t.Errorf("ParseSpec(@bad) = %v", err)
	}

	dev := filepath.Join(dir, "dev.yaml")
	if err := os.WriteFile(dev, []byte("type: tcp-connect\naddress: 127.0.0.1:5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := ParseDeviceSpec("@" + dev); err != nil || d.Type != "tcp-connect" {
		t.Errorf("ParseDeviceSpec(@dev) = %+v, %v", d, err)
	}

	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseSpec("@" + empty); err == nil || !strings.Contains(err.Error(), "the file is empty") {
		t.Errorf("ParseSpec(@empty) = %v", err)
	}
	if _, err := ParseSpec("@" + filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("ParseSpec(@missing) = %v", err)
	}
}

// TestSpecToJSONRoundTrip checks that a CLI spec and the JSON body made
// from it decode to the same backend.
func TestSpecToJSONRoundTrip(t *testing.T) {
	specs := []string{
		"file,name=cap2,path=/tmp/c.log,format=raw",
		"tcp-listen,name=ops,listen=127.0.0.1:7000,protocol=telnet",
		"tcp-listen,name=sec,listen=0.0.0.0:7001,tls.cert=/c.pem,tls.key=/k.pem,allow=10.0.0.0/8;127.0.0.1/32,banner=a,,b,idle_timeout=1m30s,queue=4KiB,replay=100,on_overflow=disconnect,input=false",
		"serial,name=s,path=/dev/ttyS0,baud=115200,parity=even,stop_bits=2,dtr=true",
		"file,name=r,path=/x,rotate.max_size=10MiB,rotate.compress=true,append=false,width=100",
		"exec,name=e,command=sh;-c;echo hi,pty=false",
		"udp,name=u,remote=127.0.0.1:9,max_datagram=512",
		"ringbuf,name=rb,size=2MiB",
		"tcp-connect,name=up,address=127.0.0.1:8000,reconnect.initial=1s,tls.server_name=x,connect_timeout=3s",
		"demo,name=d,hostname=007,heartbeat=1s",
		"pty,name=p,mode=0660",
		"null,name=n",
		"unix-listen,name=ul,path=/tmp/s.sock,mode=600,tls.cert=a,tls.key=b",
	}
	for _, s := range specs {
		b := mustSpec(t, s)
		j, err := SpecToJSON(s)
		if err != nil {
			t.Errorf("SpecToJSON(%q): %v", s, err)
			continue
		}
		if !json.Valid(j) {
			t.Errorf("SpecToJSON(%q) = %s: invalid JSON", s, j)
			continue
		}
		b2, err := DecodeBackendJSON(j)
		if err != nil {
			t.Errorf("DecodeBackendJSON(%s): %v", j, err)
			continue
		}
		if b.Canonical != b2.Canonical || b.Name != b2.Name || b.Leg != b2.Leg {
			t.Errorf("round trip of %q via %s:\n%s %+v\n%s %+v", s, j, b.Canonical, b.Leg, b2.Canonical, b2.Leg)
		}
	}
	// The JSON holds the keys given, in order, with decoded values.
	j, _ := SpecToJSON("tcp-listen,name=ops,listen=127.0.0.1:7000,queue=4096,allow=10.0.0.0/8,tls.cert=/c,tls.key=/k")
	want := `{"type":"tcp-listen","name":"ops","listen":"127.0.0.1:7000","queue":"4KiB","allow":["10.0.0.0/8"],"tls":{"cert":"/c","key":"/k"}}`
	if string(j) != want {
		t.Errorf("SpecToJSON =\n%s\nwant\n%s", j, want)
	}
	if _, err := SpecToJSON("file,pth=x"); err == nil {
		t.Error("SpecToJSON of an invalid spec: no error")
	}
}

func TestDecodeBackendJSON(t *testing.T) {
	b, err := DecodeBackendJSON([]byte(`{
	"name": "cap", "type": "file", "path": "/tmp/x.log",
	"rotate": {"max_size": 1048576, "keep": 2},
	"queue": "64KiB", "on_overflow": "block", "input": true
}`))
	if err != nil {
		t.Fatal(err)
	}
	if f := b.Spec.(*backends.FileSpec); f.Rotate.MaxSize != 1<<20 || f.Rotate.Keep != 2 || b.Leg != (tee.LegOptions{Input: true, Queue: 64 << 10, Overflow: tee.Block}) {
		t.Errorf("backend = %+v %+v", f, b.Leg)
	}
	if b.Canonical != mustSpec(t, "file,name=cap,path=/tmp/x.log,rotate.max_size=1MiB,rotate.keep=2").Canonical {
		t.Error("JSON and CLI canonical forms differ")
	}
	// null for an optional section is none.
	b, err = DecodeBackendJSON([]byte(`{"name":"n","type":"tcp-listen","listen":"127.0.0.1:1","tls":null,"allow":null}`))
	if err != nil || b.Spec.(*backends.TCPListenSpec).TLS != nil {
		t.Errorf("tls null: %+v %v", b, err)
	}

	tests := []struct{ body, want string }{
		{`{"name":"x","type":"tcp-listen","listen":"127.0.0.1:1","tls":{"cert":"/c","key":"/k","client_ac":"/ca"}}`, `tls.client_ac: unknown key for tls; did you mean "client_ca"?`},
		{`{"name":"x","type":"file","path":"/x","rotate":{"max_sise":1}}`, `rotate.max_sise: unknown key for rotate; did you mean "max_size"?`},
		{`{"name":"x","type":"tcp-connect","address":"127.0.0.1:1","reconnect":{"intial":"1s"}}`, `reconnect.intial: unknown key for reconnect; did you mean "initial"?`},
		{`{"name":"x","type":"serial","path":"/dev/x","baud":"115200"}`, `baud: want a whole number, got "115200"`},
		{`{"name":"x","type":"file","path":"/x","append":"true"}`, `append: want true or false, got "true"`},
		{`{"name":"x","type":"file","path":"/x","width":1.5}`, `width: want a whole number, got the number 1.5`},
		{`{"name":"x","type":"file","path":"/x","path":"/y"}`, `path: duplicate key`},
		{`{"name":"x","type":"file"}`, `file: path: required`},
		{`{"type":"file","path":"/x"}`, `name: required`},
		{`{"name":"x"}`, `type: required`},
		{`{"name":"x","type":"nul"}`, `type: unknown backend type "nul"; did you mean "null"?`},
		{`{"name":"x","type":"null","queue":-1}`, `queue: size "-1"`},
		{`{"name":"x","type":"null","input":null}`, `input: want true or false, got nothing (null)`},
		{`{"name":null,"type":"null"}`, `name: must not be empty`},
		{`{"name":"x","type":"exec","command":"cat"}`, `command: want a list, got "cat"`},
		{`[1]`, `want a JSON object, got a list`},
		{`{"name":"x",}`, `invalid JSON: `},
		{`{"name":"x"} {}`, `invalid JSON: data after the object`},
		{`{"name":"x"`, `invalid JSON: `},
		{``, `invalid JSON: `},
		{`{"name":"x","type":"null","a":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, `invalid JSON: nested more than 32 levels deep`},
	}
	for _, tc := range tests {
		_, err := DecodeBackendJSON([]byte(tc.body))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("DecodeBackendJSON(%s):\n got %v\nwant %s...", tc.body, err, tc.want)
		}
	}
}

func TestDecodeDeviceJSON(t *testing.T) {
	d, err := DecodeDeviceJSON([]byte(`{"type":"tcp-connect","address":"127.0.0.1:7001","protocol":"rfc2217","tls":{"ca":"/ca.pem"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s := d.Spec.(*backends.TCPConnectSpec); s.Protocol != "rfc2217" || s.TLS == nil || s.TLS.CA != "/ca.pem" {
		t.Errorf("device = %+v", s)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"type":"tcp-connect","address":"127.0.0.1:1","tls":{"cert":"/c","kye":"/k"}}`, `tls.kye: unknown key for tls; did you mean "key"?`},
		{`{"type":"tcp-connect","address":"127.0.0.1:1","tls":{"cert":"/c"}}`, `tcp-connect: tls: key: required with cert`},
		{`{"type":"serial","name":"x","path":"/dev/x"}`, `name: unknown key for serial`},
		{`{"type":"tcp-listen","listen":"127.0.0.1:1"}`, `type: tcp-listen cannot be a frontend`},
		{`"serial"`, `want a JSON object, got "serial"`},
	} {
		_, err := DecodeDeviceJSON([]byte(tc.body))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("DecodeDeviceJSON(%s):\n got %v\nwant %s...", tc.body, err, tc.want)
		}
	}
}

func TestSplitCLI(t *testing.T) {
	got := splitCLI("a,b=1,,2,,,c=,,")
	want := []cliItem{{"a", 1}, {"b=1,2,", 3}, {"c=,", 12}}
	if len(got) != len(want) {
		t.Fatalf("splitCLI = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("item %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"path", "format", "direction", "rotate", "max_size", "keep", "key"}
	for name, want := range map[string]string{
		"pth": "path", "PATH": "path", "fromat": "format", "kye": "key", "max-size": "max_size",
		"xyz": "", "directory": "", "a": "",
	} {
		if got := suggest(name, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", name, got, want)
		}
	}
}
