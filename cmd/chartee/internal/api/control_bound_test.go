package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"chartee/chardev/memdev"
	"chartee/metrics"
	"chartee/tee"
)

// hangingBreak is a frontend whose break hangs for 30 s or until released:
// an RFC 2217 server that stops answering.
type hangingBreak struct {
	*memdev.Device
	entered chan struct{}
	release chan struct{}
}

func (d *hangingBreak) Break(time.Duration) error {
	d.entered <- struct{}{}
	select {
	case <-d.release:
	case <-time.After(30 * time.Second):
	}
	return nil
}

// TestShowAndScrapeWhileAFrontendControlCallHangs: while a break waits
// for a frontend that does not answer, `ctl show` (GET /v1/tees/NAME) and
// a /metrics scrape answer within 100 ms.
func TestShowAndScrapeWhileAFrontendControlCallHangs(t *testing.T) {
	e := newEnv(t, Options{})
	front := &hangingBreak{Device: memdev.New("rfc2217"), entered: make(chan struct{}, 4), release: make(chan struct{})}
	defer close(front.release) // before the env's cleanup closes the tees
	tt, err := tee.New(tee.Options{Name: "hang", Frontend: memdev.Opener(nil, front), DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.d.add(tt)
	eventually(t, "frontend up", func() bool { return tt.Stats().Frontend.Up })

	go e.c.Break(context.Background(), "hang", BreakRequest{Duration: "100ms"}) //nolint:errcheck // it fails when the bound passes
	select {
	case <-front.entered:
	case <-time.After(wait):
		t.Fatal("the break never reached the device")
	}

	scrape := metrics.Handler(metrics.NewRegistry(metrics.NewCollector(metrics.SourceFunc(e.d.Tees), "test")), quietLogger())
	for what, fn := range map[string]func() error{
		"ctl show": func() error {
			_, err := e.c.Tee(context.Background(), "hang")
			return err
		},
		"/metrics": func() error {
			rec := httptest.NewRecorder()
			scrape.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, metrics.Path, nil))
			if rec.Code != http.StatusOK {
				_, _ = io.Copy(io.Discard, rec.Body)
				return &Error{Status: rec.Code}
			}
			return nil
		},
	} {
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(time.Second):
			// The break hangs until the test ends: any bound far below
			// that shows no reader waits on it (1 s, not the 100 ms a
			// quiet machine shows, so a loaded -race run cannot fail
			// falsely).
			t.Fatalf("%s did not answer within 1 s while a frontend break hangs", what)
		}
	}
}
