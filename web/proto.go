package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// maxControl bounds a control message from the page; anything longer is
// not one of ours.
const maxControl = 1024

// Control message types the page sends.
const (
	msgResize = "resize" // informational: the page's terminal size
	msgBreak  = "break"  // send a break to the frontend
	msgLock   = "lock"   // take (take: true) or release the write lock
	msgStatus = "status" // ask for a status message now
	msgFlow   = "flow"   // pause: true stops output until pause: false
)

// clientMsg is one control message from the page.
type clientMsg struct {
	T     string `json:"t"`
	Cols  int    `json:"cols,omitempty"`
	Rows  int    `json:"rows,omitempty"`
	Take  *bool  `json:"take,omitempty"`
	Pause *bool  `json:"pause,omitempty"`
}

// parseClientMsg decodes and checks a control message: a known type, no
// unknown fields, the fields its type needs and nothing absurd.
func parseClientMsg(b []byte) (clientMsg, error) {
	var m clientMsg
	if len(b) > maxControl {
		return m, fmt.Errorf("web: control message of %d bytes: at most %d", len(b), maxControl)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return clientMsg{}, fmt.Errorf("web: control message: %w", err)
	}
	if dec.More() {
		return clientMsg{}, errors.New("web: control message: trailing data")
	}
	if err := m.check(); err != nil {
		return clientMsg{}, err
	}
	return m, nil
}

func (m clientMsg) check() error {
	switch m.T {
	case msgResize:
		if m.Cols < 1 || m.Cols > 4096 || m.Rows < 1 || m.Rows > 4096 {
			return fmt.Errorf("web: resize %dx%d: want 1 to 4096 columns and rows", m.Cols, m.Rows)
		}
		if m.Take != nil || m.Pause != nil {
			return errors.New("web: resize: only cols and rows")
		}
	case msgLock:
		if m.Take == nil || m.Cols != 0 || m.Rows != 0 || m.Pause != nil {
			return errors.New(`web: lock: want {"t":"lock","take":true|false}`)
		}
	case msgFlow:
		if m.Pause == nil || m.Cols != 0 || m.Rows != 0 || m.Take != nil {
			return errors.New(`web: flow: want {"t":"flow","pause":true|false}`)
		}
	case msgBreak, msgStatus:
		if m.Cols != 0 || m.Rows != 0 || m.Take != nil || m.Pause != nil {
			return fmt.Errorf("web: %s takes no fields", m.T)
		}
	case "":
		return errors.New(`web: control message without "t"`)
	default:
		return fmt.Errorf("web: unknown control message %q", m.T)
	}
	return nil
}

// Messages the server sends (text frames, JSON).

// helloMsg opens every connection: who the page is, and where the stream
// it is about to receive starts.
type helloMsg struct {
	T      string `json:"t"` // "hello"
	Tee    string `json:"tee"`
	User   string `json:"user"`
	Role   string `json:"role"`
	Input  bool   `json:"input"`
	Offset uint64 `json:"offset"` // stream offset of the next binary byte
	// Lost is how many bytes between the offset asked for and Offset the
	// scrollback no longer held.
	Lost uint64 `json:"lost"`
	// Restarted: the offset asked for is beyond this stream (the daemon
	// or tee restarted); the page should clear its terminal.
	Restarted bool `json:"restarted,omitempty"`
}

// atMsg says the next binary byte is at Offset, not right after the last
// one: Lost bytes were dropped for this viewer (its queue overflowed).
type atMsg struct {
	T      string `json:"t"` // "at"
	Offset uint64 `json:"offset"`
	Lost   uint64 `json:"lost"`
}

// statusMsg is the console's state, pushed when it changes.
type statusMsg struct {
	T          string `json:"t"` // "status"
	FrontendUp bool   `json:"frontend_up"`
	Device     string `json:"device"`
	LastError  string `json:"last_error,omitempty"`
	InputMode  string `json:"input_mode"`
	WriteLock  string `json:"write_lock,omitempty"`
	YouHold    bool   `json:"you_hold_lock"`
	Role       string `json:"role"`  // may change on a reload
	Input      bool   `json:"input"` // this page may type

	Attached []attached `json:"attached"`
	Offset   uint64     `json:"offset"`
}

// attached is one leg of a console as the pages show it.
type attached struct {
	Name string `json:"name"`
	User string `json:"user,omitempty"`
	Peer string `json:"peer,omitempty"`
}

// replyMsg answers a control message.
type replyMsg struct {
	T     string `json:"t"` // "ok" or "error"
	Op    string `json:"op"`
	Error string `json:"error,omitempty"`
}

// noticeMsg is a line for the person, not the terminal.
type noticeMsg struct {
	T    string `json:"t"` // "notice"
	Text string `json:"text"`
}
