package api

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"chartee/chardev/memdev"
	"chartee/tee"
)

func TestSendEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	e.emit("boot\r\n")
	eventually(t, "output read", func() bool { return e.tee.Offset() == 6 })
	res, err := e.c.Send(ctx, "console", SendRequest{Text: `echo $((6*7))\n`, Data: []byte{0, 0xff}, Line: true})
	if err != nil {
		t.Fatal(err)
	}
	want := "echo $((6*7))\n\x00\xff\r"
	if res.Written != len(want) || res.Offset != 6 {
		t.Fatalf("send answered %+v, want %d bytes at offset 6", res, len(want))
	}
	if got := string(e.front.Written()); got != want {
		t.Fatalf("frontend got %q, want %q", got, want)
	}
	for _, c := range []struct {
		req  SendRequest
		code string
		msg  string
	}{
		{SendRequest{}, CodeBadRequest, "nothing to send"},
		{SendRequest{Text: `\q`}, CodeBadRequest, `unknown \q`},
	} {
		_, err := e.c.Send(ctx, "console", c.req)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != c.code || !strings.Contains(ae.Message, c.msg) {
			t.Errorf("send %+v: %v, want %s mentioning %q", c.req, err, c.code, c.msg)
		}
	}
	if _, err := e.c.Send(ctx, "nope", SendRequest{Text: "x"}); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Errorf("send to an unknown tee: %v", err)
	}
}

func TestSendForbiddenWhileLocked(t *testing.T) {
	e := newEnv(t, Options{})
	front := memdev.New("front2")
	tt, err := tee.New(tee.Options{Name: "excl", Frontend: memdev.Opener(nil, front), Input: tee.Exclusive, ExclusiveIdle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.d.add(tt)
	leg := memdev.New("leg")
	if err := tt.Attach(context.Background(), "alice", tee.LegOptions{Input: true}, memdev.Opener(nil, leg)); err != nil {
		t.Fatal(err)
	}
	leg.Feed([]byte("a"))
	eventually(t, "alice holds the lock", func() bool { return tt.Stats().WriteLock == "alice" })
	_, err = e.c.Send(ctxT(t), "excl", SendRequest{Text: "x"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeForbidden || ae.Status != 403 || !strings.Contains(ae.Message, "write lock held by alice") {
		t.Fatalf("send while locked: %v", err)
	}
	if _, err := e.c.Send(ctxT(t), "excl", SendRequest{Text: "F", Force: true}); err != nil {
		t.Fatalf("forced send: %v", err)
	}
	eventually(t, "forced input", func() bool { return string(front.Written()) == "aF" })
}

func TestBreakAndSysrqEndpoints(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	res, err := e.c.Break(ctx, "console", BreakRequest{Duration: "100ms"})
	if err != nil || res.Duration != 100*time.Millisecond || e.front.Breaks() != 1 {
		t.Fatalf("break: %+v, %v, breaks %d", res, err, e.front.Breaks())
	}
	sr, err := e.c.Sysrq(ctx, "console", SysrqRequest{Key: "h"})
	if err != nil || sr.Key != "h" || e.front.Breaks() != 2 || string(e.front.Written()) != "h" {
		t.Fatalf("sysrq: %+v, %v, breaks %d, written %q", sr, err, e.front.Breaks(), e.front.Written())
	}
	for _, c := range []struct {
		do  func() error
		msg string
	}{
		{func() error { _, err := e.c.Break(ctx, "console", BreakRequest{Duration: "1h"}); return err }, "want a duration from 1ms to 5s"},
		{func() error { _, err := e.c.Sysrq(ctx, "console", SysrqRequest{Key: "hh"}); return err }, "want one printable character"},
	} {
		if err := c.do(); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v, want %q", err, c.msg)
		}
	}
	// A frontend without break: a clear error.
	pt, err := tee.New(tee.Options{Name: "plain", Frontend: memdev.Opener(nil, memdev.Plain(memdev.New("p")))})
	if err != nil {
		t.Fatal(err)
	}
	e.d.add(pt)
	eventually(t, "plain frontend up", func() bool { return pt.Stats().Frontend.Up })
	_, err = e.c.Break(ctx, "plain", BreakRequest{})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeUnsupported || !strings.Contains(ae.Message, "cannot send a break") {
		t.Fatalf("break on a plain frontend: %v", err)
	}
	if _, err := e.c.Sysrq(ctx, "plain", SysrqRequest{Key: "h"}); err == nil || !strings.Contains(err.Error(), "cannot send a break") {
		t.Fatalf("sysrq on a plain frontend: %v", err)
	}
}

func TestWaitEndpoint(t *testing.T) {
	e := newEnv(t, Options{})
	ctx := ctxT(t)
	e.emit("vm login: ")
	eventually(t, "prompt read", func() bool { return e.tee.Offset() == 10 })
	// From an offset: the scrollback is read first.
	res, err := e.c.Wait(ctx, "console", WaitRequest{Pattern: `login: $`, From: "3", Timeout: "5s"})
	if err != nil || !res.Matched || res.Offset != 3 || res.End != 10 || res.Start != 3 {
		t.Fatalf("wait from 3: %+v, %v", res, err)
	}
	// From now: only new output; a match split across chunks.
	done := make(chan WaitResult, 1)
	go func() {
		r, err := e.c.Wait(ctx, "console", WaitRequest{Pattern: `^42`, Timeout: "10s"})
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	eventually(t, "the wait leg", func() bool {
		for _, b := range e.tee.Stats().Backends {
			if strings.HasPrefix(b.Name, "@wait-") {
				return true
			}
		}
		return false
	})
	e.emit("root\r\n4")
	e.emit("2\r\n")
	r := <-done
	if !r.Matched || r.Match != "42" || r.Offset != 16 {
		t.Fatalf("wait from now: %+v", r)
	}
	// Timeout: not matched, last lines reported, the wait leg gone.
	res, err = e.c.Wait(ctx, "console", WaitRequest{Pattern: `never`, From: "start", Timeout: "100ms"})
	if err != nil || res.Matched || len(res.LastLines) == 0 || res.LastLines[len(res.LastLines)-1] != "42" {
		t.Fatalf("wait timeout: %+v, %v", res, err)
	}
	eventually(t, "wait legs detached", func() bool { return len(e.tee.Stats().Backends) == 0 })
	for _, c := range []struct {
		req WaitRequest
		msg string
	}{
		{WaitRequest{Pattern: "a("}, "missing closing )"},
		{WaitRequest{Pattern: "x*"}, "matches the empty string"},
		{WaitRequest{Pattern: "x", From: "yesterday"}, "want now, start or a stream offset"},
		{WaitRequest{Pattern: "x", Timeout: "forever"}, "timeout"},
	} {
		if _, err := e.c.Wait(ctx, "console", c.req); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("wait %+v: %v, want %q", c.req, err, c.msg)
		}
	}
}
