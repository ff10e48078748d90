package api

import (
	"bufio"
	"bytes"
	"chartee/cmd/chartee/internal/daemon"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"chartee/tee"
)

// Client calls the control API, over the unix socket (NewClient) or a
// token-protected TCP listener (NewTCPClient). A failed request returns an
// *Error carrying the server's code, message, details and HTTP status;
// a request that never got an answer (daemon not running, connection cut)
// returns a plain error saying so. The zero value is not usable.
type Client struct {
	base  string
	token string
	tr    *http.Transport
	hc    *http.Client
}

// maxResponseBytes bounds a JSON response the client reads.
const maxResponseBytes = 64 << 20

// NewClient returns a client for the daemon listening on the unix socket
// at socketPath.
func NewClient(socketPath string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{base: "http://chartee", tr: tr, hc: &http.Client{Transport: tr}}
}

// NewTCPClient returns a client for a TCP listener at baseURL
// ("http://127.0.0.1:7001") that sends token as a bearer token.
func NewTCPClient(baseURL, token string) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, tr: tr, hc: &http.Client{Transport: tr}}
}

// Close releases idle connections. The client stays usable.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// teePath is the path of a tee's resource, names escaped.
func teePath(teeName string, rest ...string) string {
	p := "/v1/tees/" + url.PathEscape(teeName)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// request sends one request and returns the response when its status is
// 2xx; any other status is decoded into an *Error.
func (c *Client) request(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("chartee api: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("chartee api: %s %s: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp, nil
}

// call sends a JSON request and decodes a JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("chartee api: encoding request: %w", err)
		}
	}
	resp, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(out); err != nil {
		return fmt.Errorf("chartee api: %s %s: decoding response: %w", method, path, err)
	}
	return nil
}

// decodeError reads an error response. A body that is not an API error
// (a proxy's HTML page, say) still gives an *Error, from the status.
func decodeError(resp *http.Response) *Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e Error
	if err := json.Unmarshal(data, &e); err != nil || e.Code == "" {
		msg := strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		e = Error{Message: strings.TrimSpace("HTTP " + resp.Status + ": " + msg), Code: codeOf(resp.StatusCode)}
	}
	e.Status = resp.StatusCode
	return &e
}

// codeOf guesses the code of an error response that did not carry one.
func codeOf(status int) string {
	for _, code := range []string{CodeNotFound, CodeExists, CodeBadRequest, CodeOpenFailed, CodeTooLarge,
		CodeMethod, CodeUnauthorized, CodeClosed, CodeTimeout} {
		if statusOf(code) == status {
			return code
		}
	}
	return CodeInternal
}

// Health checks that the daemon answers.
func (c *Client) Health(ctx context.Context) error {
	var h HealthStatus
	if err := c.call(ctx, http.MethodGet, "/healthz", nil, &h); err != nil {
		return err
	}
	if h.Status != "ok" {
		return fmt.Errorf("chartee api: health status %q", h.Status)
	}
	return nil
}

// Tees lists the running tees.
func (c *Client) Tees(ctx context.Context) ([]TeeStatus, error) {
	var list TeeList
	err := c.call(ctx, http.MethodGet, "/v1/tees", nil, &list)
	return list.Tees, err
}

// Tee returns one tee's status.
func (c *Client) Tee(ctx context.Context, name string) (TeeStatus, error) {
	var st TeeStatus
	err := c.call(ctx, http.MethodGet, teePath(name), nil, &st)
	return st, err
}

// Attach adds a backend, spec being a JSON object with the keys of a
// backend in the config file (config.SpecToJSON makes one from a CLI spec).
func (c *Client) Attach(ctx context.Context, teeName string, spec json.RawMessage) error {
	// Sent as given, not re-encoded: a malformed spec is the server's to
	// report, with the same error the CLI would get.
	resp, err := c.request(ctx, http.MethodPost, teePath(teeName, "backends"), spec)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return nil
}

// Detach removes a backend and all its legs.
func (c *Client) Detach(ctx context.Context, teeName, name string) error {
	return c.call(ctx, http.MethodDelete, teePath(teeName, "backends", name), nil, nil)
}

// Swap hot-swaps a backend to req.Spec.
func (c *Client) Swap(ctx context.Context, teeName, name string, req SwapRequest) (tee.SwapReport, error) {
	var rep tee.SwapReport
	err := c.call(ctx, http.MethodPost, teePath(teeName, "backends", name, "swap"), req, &rep)
	return rep, err
}

// SwapFrontend replaces a tee's frontend with the device spec.
func (c *Client) SwapFrontend(ctx context.Context, teeName string, spec json.RawMessage) (tee.FrontendSwapReport, error) {
	var rep tee.FrontendSwapReport
	err := c.call(ctx, http.MethodPost, teePath(teeName, "frontend", "swap"), frontendSwapRequest{Spec: spec}, &rep)
	return rep, err
}

// Reload makes the daemon re-read its config file and apply the difference.
func (c *Client) Reload(ctx context.Context) (ReloadReport, error) {
	var rep ReloadReport
	err := c.call(ctx, http.MethodPost, "/v1/reload", nil, &rep)
	return rep, err
}

// Upgrade asks the daemon to hand itself over to binary ("" is its own
// path).
func (c *Client) Upgrade(ctx context.Context, req UpgradeRequest) (UpgradeReport, error) {
	var rep UpgradeReport
	err := c.call(ctx, http.MethodPost, "/v1/upgrade", req, &rep)
	return rep, err
}

// DataInfo is what one GET .../data said about the bytes it sent (see the
// Header constants). Gap is the X-Chartee-Missed trailer of a follow
// stream: nonzero when it ended because the reader fell a ring behind.
type DataInfo struct {
	Offset uint64 // offset of the first byte sent
	Missed uint64 // bytes lost before Offset
	Next   uint64 // offset to ask for next
	End    uint64 // the ring's end when the response began
	Gap    uint64 // follow only: bytes lost where the stream stopped
}

// ReadData makes one GET .../data request, copying the body to w.
func (c *Client) ReadData(ctx context.Context, teeName, name string, offset uint64, follow bool, w io.Writer) (DataInfo, error) {
	q := url.Values{"offset": {strconv.FormatUint(offset, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	var info DataInfo
	resp, err := c.request(ctx, http.MethodGet, teePath(teeName, "backends", name, "data")+"?"+q.Encode(), nil)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	info.Offset, _ = strconv.ParseUint(resp.Header.Get(HeaderOffset), 10, 64)
	info.Missed, _ = strconv.ParseUint(resp.Header.Get(HeaderMissed), 10, 64)
	info.End, _ = strconv.ParseUint(resp.Header.Get(HeaderEnd), 10, 64)
	if _, err := io.Copy(w, resp.Body); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return info, ctxErr
		}
		return info, fmt.Errorf("chartee api: reading data: %w", err)
	}
	if !follow {
		next, err := strconv.ParseUint(resp.Header.Get(HeaderNext), 10, 64)
		if err != nil {
			return info, fmt.Errorf("chartee api: reading data: bad %s header", HeaderNext)
		}
		info.Next = next
		return info, nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return info, ctxErr
	}
	next, err := strconv.ParseUint(resp.Trailer.Get(HeaderNext), 10, 64)
	if err != nil {
		return info, errors.New("chartee api: data stream ended without its trailers (connection cut)")
	}
	info.Next = next
	info.Gap, _ = strconv.ParseUint(resp.Trailer.Get(HeaderMissed), 10, 64)
	return info, nil
}

// Data copies a ring buffer backend's kept output from offset to w.
// Without follow it reads until it has caught up with the end. With follow
// it then keeps streaming live output until the backend goes away, the
// daemon shuts down or ctx ends; when the reader falls a whole ring behind
// it resumes at the oldest kept byte (the lost bytes are not in w; use
// ReadData to learn about them).
func (c *Client) Data(ctx context.Context, teeName, name string, offset uint64, follow bool, w io.Writer) error {
	for {
		info, err := c.ReadData(ctx, teeName, name, offset, follow, w)
		if err != nil {
			return err
		}
		if follow {
			if info.Gap == 0 {
				return nil
			}
		} else if info.Next >= info.End || info.Next == offset {
			return nil
		}
		offset = info.Next
	}
}

// Events calls fn with every event of every tee until fn returns an
// error (which Events returns), ctx ends, or the daemon shuts down (nil).
func (c *Client) Events(ctx context.Context, fn func(tee.Event) error) error {
	resp, err := c.request(ctx, http.MethodGet, "/v1/events", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e tee.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("chartee api: decoding event: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("chartee api: reading events: %w", err)
	}
	return nil
}

// Send types into a tee's frontend (POST /v1/tees/{tee}/send).
func (c *Client) Send(ctx context.Context, teeName string, req SendRequest) (SendResult, error) {
	var res SendResult
	err := c.call(ctx, http.MethodPost, teePath(teeName, "send"), req, &res)
	return res, err
}

// Break sends a break to a tee's frontend.
func (c *Client) Break(ctx context.Context, teeName string, req BreakRequest) (BreakResult, error) {
	var res BreakResult
	err := c.call(ctx, http.MethodPost, teePath(teeName, "break"), req, &res)
	return res, err
}

// Sysrq sends a break and then a magic SysRq key.
func (c *Client) Sysrq(ctx context.Context, teeName string, req SysrqRequest) (SysrqResult, error) {
	var res SysrqResult
	err := c.call(ctx, http.MethodPost, teePath(teeName, "sysrq"), req, &res)
	return res, err
}

// Wait waits until a tee's output matches a pattern or the wait's timeout.
func (c *Client) Wait(ctx context.Context, teeName string, req WaitRequest) (WaitResult, error) {
	var res WaitResult
	err := c.call(ctx, http.MethodPost, teePath(teeName, "wait"), req, &res)
	return res, err
}

// Access fetches users, roles, sessions and the SSH host key.
func (c *Client) Access(ctx context.Context) (daemon.AccessInfo, error) {
	var out daemon.AccessInfo
	err := c.call(ctx, http.MethodGet, "/v1/access", nil, &out)
	return out, err
}
