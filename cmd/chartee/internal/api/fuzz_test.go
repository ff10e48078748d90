package api

import (
	"encoding/json"
	"net/url"
	"testing"
)

var jsonUnmarshal = json.Unmarshal

// FuzzSwapRequest: decoding any swap body, for any backend name, never
// panics; it yields a backend of that name or a 4xx *Error.
func FuzzSwapRequest(f *testing.F) {
	for _, seed := range []string{
		`{"spec": {"type": "null"}}`,
		`{"spec": {"name": "cap", "type": "file", "path": "/tmp/x.log"}, "mode": "overlap", "drain_timeout": "2s"}`,
		`{"spec": {"type": "ringbuf", "size": "4KiB"}, "mode": "handover"}`,
		`{"spec": {"name": "other"}}`,
		`{"spec": {}, "drain_timeout": "-1s"}`,
		`{"spec": []}`,
		`{"spec": {"type": "tcp-connect", "address": "127.0.0.1:1", "tls": {"ca": 5}}}`,
		`{"spec": {"type": "null"}} x`,
		``,
	} {
		f.Add([]byte(seed), "cap")
	}
	f.Fuzz(func(t *testing.T, body []byte, name string) {
		b, _, err := decodeSwap(body, name)
		if err != nil {
			wantDecodeError(t, err)
			return
		}
		if b == nil || b.Name != name {
			t.Fatalf("decoded %+v for backend %q", b, name)
		}
	})
}

// FuzzAPIBodies: the attach and frontend swap bodies never panic and fail
// only with a 4xx *Error.
func FuzzAPIBodies(f *testing.F) {
	for _, seed := range []string{
		`{"name": "rb", "type": "ringbuf", "size": "4KiB"}`,
		`{"name": "cap", "type": "file", "path": "/tmp/c.log", "on_overflow": "block", "queue": "1MiB"}`,
		`{"name": "ops", "type": "tcp-listen", "listen": "127.0.0.1:0", "protocol": "telnet"}`,
		`{"spec": {"type": "serial", "path": "/dev/ttyUSB0", "baud": 115200}}`,
		`{"spec": {"type": "tcp-connect", "address": "127.0.0.1:4555"}}`,
		`{"name": 1, "type": ["x"], "size": {}}`,
		`{"name": "a", "name": "b"}`,
		`{"spec": null}`,
		"\xff\xfe{",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if b, err := decodeAttach(body); err != nil {
			wantDecodeError(t, err)
		} else if b == nil || b.Name == "" {
			t.Fatalf("attach decoded %+v", b)
		}
		if d, err := decodeFrontendSwap(body); err != nil {
			wantDecodeError(t, err)
		} else if d == nil || d.Type == "" {
			t.Fatalf("frontend decoded %+v", d)
		}
	})
}

// FuzzDataQuery: any query string of GET .../data parses or fails with a
// 4xx *Error.
func FuzzDataQuery(f *testing.F) {
	for _, seed := range []string{"", "offset=0", "offset=18446744073709551615&follow=1", "follow", "follow=maybe", "offset=-1", "x=1&offset=2", "offset=1&offset=1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if _, err := parseDataQuery(v); err != nil {
			wantDecodeError(t, err)
		}
	})
}

// FuzzAutomationBodies feeds any body to the send and wait decoders: a
// request decodes to a usable waiter or send text, or fails as a
// bad_request, never panics.
func FuzzAutomationBodies(f *testing.F) {
	for _, seed := range []string{
		`{"pattern": "^42", "timeout": "30s", "from": "1234", "strip_ansi": true}`,
		`{"pattern": "login: $", "from": "start"}`,
		`{"pattern": "x*"}`,
		`{"pattern": "a(", "from": "later", "timeout": "-1s"}`,
		`{"text": "echo $((6*7))\\n", "line": true, "force": true}`,
		`{"text": "\\xZZ", "data": "AAEC"}`,
		`{"key": "h"}`,
		`{"unknown": 1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var wr WaitRequest
		if err := decodeBody(body, &wr); err != nil {
			wantDecodeError(t, err)
		} else if w, timeout, err := newWaiter(wr); err != nil {
			wantDecodeError(t, err)
		} else if w == nil || timeout <= 0 || timeout > maxWait {
			t.Fatalf("waiter %v, timeout %v from %+v", w, timeout, wr)
		}
		var sr SendRequest
		if err := decodeBody(body, &sr); err != nil {
			wantDecodeError(t, err)
		}
		if from, resume, err := ParseFrom(wr.From); err == nil && wr.From != "" && wr.From != "now" && !resume {
			t.Fatalf("from %q parsed to %d without resume", wr.From, from)
		}
	})
}
