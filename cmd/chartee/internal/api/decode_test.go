package api

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"chartee/tee"
)

// wantDecodeError checks the contract of every body decoder: an error is
// an *Error with a 4xx status and a message.
func wantDecodeError(t testing.TB, err error) *Error {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *api.Error", err, err)
	}
	if ae.Status < 400 || ae.Status > 499 || ae.Status != statusOf(ae.Code) || ae.Message == "" {
		t.Fatalf("error %+v: want a 4xx status matching its code, and a message", ae)
	}
	return ae
}

func TestDecodeSwap(t *testing.T) {
	ok := []struct {
		body  string
		mode  tee.SwapMode
		drain time.Duration
	}{
		{`{"spec": {"type": "null"}}`, tee.Handover, 0},
		{`{"spec": {"name": "cap", "type": "null"}, "mode": "overlap"}`, tee.Overlap, 0},
		{`{"spec": {"type": "null"}, "mode": "handover", "drain_timeout": "1500ms"}`, tee.Handover, 1500 * time.Millisecond},
		{" \n{\"spec\": { \"type\" : \"null\" } }\n", tee.Handover, 0},
	}
	for _, tc := range ok {
		b, opts, err := decodeSwap([]byte(tc.body), "cap")
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if b.Name != "cap" || b.Type != "null" || opts.Mode != tc.mode || opts.DrainTimeout != tc.drain || opts.Options != nil {
			t.Fatalf("%s: got %+v %+v", tc.body, b, opts)
		}
	}
	bad := []struct {
		body, code, mention string
	}{
		{``, CodeBadRequest, "missing"},
		{`null`, CodeBadRequest, "missing"},
		{`[]`, CodeBadRequest, "object"},
		{`{"spec": {"type": "null"}`, CodeBadRequest, "JSON"},
		{`{"spec": {"type": "null"}} {}`, CodeBadRequest, "after"},
		{`{"spec": {"type": "null"}, "drain_timout": "1s"}`, CodeBadRequest, "drain_timout"},
		{`{"spec": {"type": "null"}, "drain_timeout": "1"}`, CodeBadRequest, "unit"},
		{`{"spec": {"type": "null"}, "drain_timeout": 5}`, CodeBadRequest, "duration"},
		{`{"spec": {"type": "null"}, "mode": "sideways"}`, CodeBadRequest, "sideways"},
		{`{}`, CodeBadRequest, "spec is missing"},
		{`{"spec": null}`, CodeBadRequest, "spec is missing"},
		{`{"spec": "null"}`, CodeBadRequest, "spec: want a JSON object"},
		{`{"spec": {"name": "other", "type": "null"}}`, CodeBadRequest, "rename"},
		{`{"spec": {"name": 7, "type": "null"}}`, CodeBadRequest, "name"},
		{`{"spec": {}}`, CodeInvalidConfig, "type"},
		{`{"spec": {"type": "null", "bogus": true}}`, CodeInvalidConfig, "bogus"},
		{`{"spec": {"type": "warp"}}`, CodeInvalidConfig, "warp"},
	}
	for _, tc := range bad {
		_, _, err := decodeSwap([]byte(tc.body), "cap")
		ae := wantDecodeError(t, err)
		text := ae.Message + " " + strings.Join(ae.Details, " ")
		if ae.Code != tc.code || !strings.Contains(text, tc.mention) {
			t.Errorf("%s: got %s %q %q, want %s mentioning %q", tc.body, ae.Code, ae.Message, ae.Details, tc.code, tc.mention)
		}
	}
}

func TestSpecNamedKeepsText(t *testing.T) {
	cases := map[string]string{
		`{"type": "null"}`:   `{"name":"a\"b","type": "null"}`,
		` { "type": "null"}`: `{"name":"a\"b", "type": "null"}`,
		`{}`:                 `{"name":"a\"b"}`,
		"{ \n }":             "{\"name\":\"a\\\"b\" \n }",
		`{"name": "a\"b"}`:   `{"name": "a\"b"}`,
	}
	for in, want := range cases {
		got, err := specNamed([]byte(in), `a"b`)
		if err != nil || string(got) != want {
			t.Errorf("specNamed(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestDecodeAttachAndFrontend(t *testing.T) {
	b, err := decodeAttach([]byte(`{"name": "rb", "type": "ringbuf", "size": "4KiB", "replay": "1KiB"}`))
	if err != nil || b.Name != "rb" || b.Type != "ringbuf" {
		t.Fatalf("attach: %+v %v", b, err)
	}
	for body, code := range map[string]string{
		``:                           CodeBadRequest,
		`"x"`:                        CodeBadRequest,
		`{"name": "rb",`:             CodeBadRequest,
		`{"name": "rb"} trailing`:    CodeBadRequest,
		`{"type": "ringbuf"}`:        CodeInvalidConfig, // no name
		`{"name": "a b", "type": 1}`: CodeInvalidConfig,
	} {
		_, err := decodeAttach([]byte(body))
		if ae := wantDecodeError(t, err); ae.Code != code {
			t.Errorf("attach %q: code %s (%s), want %s", body, ae.Code, ae.Message, code)
		}
	}
	d, err := decodeFrontendSwap([]byte(`{"spec": {"type": "null"}}`))
	if err != nil || d.Type != "null" {
		t.Fatalf("frontend: %+v %v", d, err)
	}
	for body, code := range map[string]string{
		`{}`:                                 CodeBadRequest,
		`{"spec": {"type": "null"}, "x": 1}`: CodeBadRequest,
		`{"spec": {"type": "tcp-listen", "listen": "127.0.0.1:0"}}`: CodeInvalidConfig, // not single-stream
		`{"spec": {"name": "x", "type": "null"}}`:                   CodeInvalidConfig, // no name for a device
	} {
		_, err := decodeFrontendSwap([]byte(body))
		if ae := wantDecodeError(t, err); ae.Code != code {
			t.Errorf("frontend %q: code %s (%s), want %s", body, ae.Code, ae.Message, code)
		}
	}
}

func TestParseDataQuery(t *testing.T) {
	good := map[string]dataQuery{
		"":                  {},
		"offset=42":         {Offset: 42},
		"follow=1":          {Follow: true},
		"follow":            {Follow: true},
		"follow=0&offset=7": {Offset: 7},
		"offset=18446744073709551615&follow=true": {Offset: 1<<64 - 1, Follow: true},
	}
	for q, want := range good {
		v, _ := url.ParseQuery(q)
		got, err := parseDataQuery(v)
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v; want %+v", q, got, err, want)
		}
	}
	for _, q := range []string{"offset=-1", "offset=1.5", "offset=18446744073709551616", "follow=yes", "tail=1", "offset=1&offset=1"} {
		v, _ := url.ParseQuery(q)
		_, err := parseDataQuery(v)
		wantDecodeError(t, err)
	}
}

// TestParseDataQueryRoundTrip: whatever the client encodes, the server
// reads back.
func TestParseDataQueryRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		want := dataQuery{Offset: rapid.Uint64().Draw(t, "offset"), Follow: rapid.Bool().Draw(t, "follow")}
		q := url.Values{"offset": {strconv.FormatUint(want.Offset, 10)}}
		if want.Follow {
			q.Set("follow", "1")
		}
		v, err := url.ParseQuery(q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseDataQuery(v)
		if err != nil || got != want {
			t.Fatalf("got %+v, %v; want %+v", got, err, want)
		}
	})
}

// TestSpecNamedProperty: for any spec object without a name, the inserted
// name decodes back and every other key is kept.
func TestSpecNamedProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		name := rapid.String().Draw(t, "name")
		keys := rapid.SliceOfDistinct(rapid.StringMatching(`[a-z_]{1,8}`), func(s string) string { return s }).Draw(t, "keys")
		var sb strings.Builder
		sb.WriteString(rapid.SampledFrom([]string{"", " ", "\n\t"}).Draw(t, "lead") + "{")
		n := 0
		for _, k := range keys {
			if k == "name" {
				continue
			}
			if n > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(strconv.Quote(k) + ":" + strconv.Itoa(n))
			n++
		}
		sb.WriteString(rapid.SampledFrom([]string{"", " ", "\n"}).Draw(t, "trail") + "}")
		out, err := specNamed([]byte(sb.String()), name)
		if err != nil {
			t.Fatalf("%q: %v", sb.String(), err)
		}
		var fields map[string]any
		if err := jsonUnmarshal(out, &fields); err != nil {
			t.Fatalf("%q -> %q: %v", sb.String(), out, err)
		}
		if fields["name"] != strings.ToValidUTF8(name, "\uFFFD") || len(fields) != n+1 {
			t.Fatalf("%q -> %q", sb.String(), out)
		}
	})
}
