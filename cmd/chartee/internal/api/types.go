package api

import (
	"encoding/json"

	"chartee/chardev"
	"chartee/tee"
)

// Error codes in Error.Code. Clients switch on the code, never on the
// message.
const (
	CodeNotFound      = "not_found"
	CodeExists        = "exists"
	CodeBadRequest    = "bad_request"
	CodeNotRingbuf    = "not_a_ringbuf"
	CodeOpenFailed    = "open_failed"
	CodeInvalidConfig = "invalid_config"
	CodeTooLarge      = "too_large"
	CodeMethod        = "method_not_allowed"
	CodeUnauthorized  = "unauthorized"
	CodeClosed        = "closed"
	CodeTimeout       = "timeout"
	CodeInternal      = "internal"
	CodeForbidden     = "forbidden"
	CodeUnsupported   = "unsupported"
	CodeInputFull     = "input_full"
)

// Error is the body of every failed request.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
	// Details are the lines of a multi-line error (a config error lists
	// every problem, one per line).
	Details []string `json:"details,omitempty"`
	// Status is the HTTP status the error is (or was) sent with. It is
	// not part of the body: the status line carries it.
	Status int `json:"-"`
}

func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

// TeeList is the body of GET /v1/tees.
type TeeList struct {
	Tees []TeeStatus `json:"tees"`
}

// TeeStatus is the body of GET /v1/tees/{tee}: the engine's live counters
// plus the line settings the tee replays onto every frontend it opens.
type TeeStatus struct {
	tee.Stats
	Line LineStatus `json:"line"`
}

// LineStatus is a tee's recorded line state, with names instead of the
// engine's enum numbers. Baud and data bits are 0 when never set.
type LineStatus struct {
	Baud     int    `json:"baud"`
	DataBits int    `json:"data_bits"`
	Parity   string `json:"parity"`
	StopBits string `json:"stop_bits"`
	Flow     string `json:"flow"`
}

func lineStatus(ls chardev.LineSettings) LineStatus {
	return LineStatus{
		Baud: ls.Baud, DataBits: ls.DataBits,
		Parity: ls.Parity.String(), StopBits: ls.StopBits.String(), Flow: ls.Flow.String(),
	}
}

func teeStatus(t *tee.Tee) TeeStatus {
	return TeeStatus{Stats: t.Stats(), Line: lineStatus(t.LineSettings())}
}

// SwapRequest is the body of POST /v1/tees/{tee}/backends/{name}/swap.
//
//	{"spec": {"type": "file", "path": "/tmp/b.log"}, "mode": "overlap", "drain_timeout": "2s"}
//
// Spec has the keys of a backend in the config file. Its name may be
// omitted (it defaults to the backend being swapped) and must match when
// given: a swap replaces a backend, it does not rename it. Mode is handover
// (the default) or overlap; DrainTimeout, when set, overrides the tee's
// drain timeout for this swap.
type SwapRequest struct {
	Spec         json.RawMessage  `json:"spec"`
	Mode         string           `json:"mode,omitempty"`
	DrainTimeout chardev.Duration `json:"drain_timeout,omitempty"`
}

// HealthStatus is the body of GET /healthz.
type HealthStatus struct {
	Status string `json:"status"`
}

// Headers of GET .../data. A response body is always contiguous: its first
// byte has offset HeaderOffset, and HeaderMissed bytes before it were lost
// because the reader fell behind the ring. Without follow, HeaderNext is the
// offset to ask for next and HeaderEnd the ring's end when the response was
// made (HeaderNext == HeaderEnd: caught up); one response carries at most
// 1 MiB. With follow, the headers carry HeaderOffset, HeaderMissed and
// HeaderEnd as of the start, and HeaderNext and HeaderMissed come again as
// trailers when the stream ends: a stream ends at the first gap
// (HeaderMissed > 0 in the trailer: ask again from HeaderNext), when the
// backend goes away, when the server shuts down, or when the client goes.
const (
	HeaderOffset = "X-Chartee-Offset"
	HeaderNext   = "X-Chartee-Next"
	HeaderMissed = "X-Chartee-Missed"
	HeaderEnd    = "X-Chartee-End"
)
