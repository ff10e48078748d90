package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"chartee/chardev"
	"chartee/tee"
)

// run performs one action for one match.
func (w *Watcher) run(j job) error {
	switch j.action.Kind {
	case ActEvent:
		w.con.Emit(tee.Event{Kind: tee.EventWatch, Backend: BackendName, Offset: j.match.Offset,
			Reason: fmt.Sprintf("watch %s matched %q", j.spec.Name, j.match.Text)})
		return nil
	case ActLog:
		w.opts.Logger.Warn("watch matched", "tee", w.con.Name(), "watch", j.spec.Name,
			"match", string(j.match.Text), "offset", j.match.Offset, "line", string(j.match.Line))
		return nil
	case ActExec:
		return w.exec(j)
	case ActWebhook:
		return w.webhook(j)
	case ActSend:
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		defer cancel()
		_, err := w.con.Send(ctx, "watch "+j.spec.Name, j.action.Text, false)
		return err
	}
	return fmt.Errorf("unknown action %q", j.action.Kind)
}

// expand replaces {tee}, {watch}, {match} and {offset} in an argument.
func (w *Watcher) expand(s string, j job) string {
	if !strings.Contains(s, "{") {
		return s
	}
	return strings.NewReplacer("{tee}", w.con.Name(), "{watch}", j.spec.Name,
		"{match}", argSafe(j.match.Text), "{offset}", strconv.FormatUint(j.match.Offset, 10)).Replace(s)
}

// argSafe is match text fit for an argument or the environment, which
// cannot hold a NUL byte (console noise can).
func argSafe(b []byte) string { return strings.ReplaceAll(string(b), "\x00", "") }

// maxExecOutput bounds what is kept of an exec's output for the log.
const maxExecOutput = 4 << 10

// exec runs the program with the match in its environment, no shell, and
// logs its output; a non-zero exit or the timeout is a failure.
func (w *Watcher) exec(j job) error {
	timeout := j.action.Timeout
	if timeout <= 0 {
		timeout = DefaultExecTimeout
	}
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	defer cancel()
	argv := make([]string, len(j.action.Argv))
	for i, a := range j.action.Argv {
		argv[i] = w.expand(a, j)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"CHARTEE_TEE="+w.con.Name(),
		"CHARTEE_WATCH="+j.spec.Name,
		"CHARTEE_MATCH="+argSafe(j.match.Text),
		"CHARTEE_OFFSET="+strconv.FormatUint(j.match.Offset, 10),
	)
	out := &capped{max: maxExecOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second // a grandchild holding the pipe does not hold us
	err := cmd.Run()
	w.opts.Logger.Info("watch exec", "tee", w.con.Name(), "watch", j.spec.Name, "argv", argv,
		"exit", cmd.ProcessState.String(), "output", out.String())
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("exec %s: timed out after %s", argv[0], timeout)
	}
	if err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], err)
	}
	return nil
}

// capped keeps the first max bytes written to it.
type capped struct {
	buf bytes.Buffer
	max int
	cut bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	if c.buf.Len()+len(p) > c.max {
		c.cut = true
	}
	return len(p), nil
}

func (c *capped) String() string {
	if c.cut {
		return c.buf.String() + "...(cut)"
	}
	return c.buf.String()
}

// WebhookPayload is the JSON a webhook action posts.
type WebhookPayload struct {
	Tee     string    `json:"tee"`
	Watch   string    `json:"watch"`
	Match   string    `json:"match"`
	Offset  uint64    `json:"offset"`
	Line    string    `json:"line"`
	Context []string  `json:"context"`
	Time    time.Time `json:"time"`
}

// webhook posts the match, retrying a failed attempt (network error or a
// non-2xx answer) with a doubling pause, each attempt under the timeout.
func (w *Watcher) webhook(j job) error {
	p := WebhookPayload{Tee: w.con.Name(), Watch: j.spec.Name, Match: string(j.match.Text),
		Offset: j.match.Offset, Line: string(j.match.Line), Context: []string{}, Time: j.at}
	for _, l := range j.match.Context {
		p.Context = append(p.Context, string(l))
	}
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	retries := j.action.Retries
	if retries < 0 {
		retries = DefaultWebhookRetries
	}
	// Doubling from RetryDelay; retries bound it, so no cap of its own.
	bo := chardev.Backoff{Initial: w.opts.RetryDelay, Max: math.MaxInt64}
	for attempt := 0; ; attempt++ {
		err = w.post(j, body)
		if err == nil || attempt >= retries {
			break
		}
		if !bo.Wait(w.ctx.Done()) {
			return fmt.Errorf("webhook %s: %w (stopped before retrying)", redact(j.action.URL), err)
		}
	}
	if err != nil {
		return fmt.Errorf("webhook %s: %w (after %d attempts)", redact(j.action.URL), err, retries+1)
	}
	return nil
}

// redact drops what may be a secret (user info, query) from a hook URL
// before it is logged or put in an event.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func (w *Watcher) post(j job, body []byte) error {
	timeout := j.action.Timeout
	if timeout <= 0 {
		timeout = DefaultWebhookTimeout
	}
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.action.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "chartee-watch")
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // without the URL, which may hold a token
		}
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}
