package api

import (
	"net/http"
	"strings"
	"testing"
)

func TestDebugGoroutines(t *testing.T) {
	e := newEnv(t, Options{})
	resp, body := e.raw("GET", "/v1/debug/goroutines", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The handler's own stack is in the profile: proof it is this
	// process's live goroutines, not a canned text.
	if !strings.HasPrefix(string(body), "goroutine profile: total ") || !strings.Contains(string(body), "api.(*Server).goroutines") {
		t.Fatalf("body:\n%s", body)
	}
	resp, body = e.raw("GET", "/v1/debug/goroutines?debug=2", "", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "goroutine ") || !strings.Contains(string(body), "[running]") {
		t.Fatalf("debug=2: status %d, body:\n%s", resp.StatusCode, body)
	}
	resp, body = e.raw("GET", "/v1/debug/goroutines?debug=3", "", nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `debug=\"3\"`) {
		t.Fatalf("debug=3: status %d, body %s", resp.StatusCode, body)
	}
}
