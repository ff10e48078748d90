package tee

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
)

// flakyOpener fails with the error its test sets, and counts attempts.
type flakyOpener struct {
	mu    sync.Mutex
	err   error
	tries int
}

func (o *flakyOpener) Open(context.Context) (chardev.Chardev, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tries++
	return nil, o.err
}

func (o *flakyOpener) Describe() string { return "serial /dev/ttyUSB9" }

func (o *flakyOpener) set(err error) {
	o.mu.Lock()
	o.err = err
	o.mu.Unlock()
}

func (o *flakyOpener) attempts() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tries
}

// A frontend that cannot be opened is reported at the first failure and
// at every change of error, never at every retry, and shows in Stats.
func TestFrontendOpenFailureReportedOnceAndOnChange(t *testing.T) {
	old := openErrorGap
	openErrorGap = 50 * time.Millisecond
	defer func() { openErrorGap = old }()

	op := &flakyOpener{err: errors.New("open /dev/ttyUSB9: no such file or directory")}
	var log eventLog
	tt, err := New(Options{Name: "fw1", Frontend: op, Events: log.add,
		Reconnect: Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	eventually(t, "many retries", func() bool { return op.attempts() > 20 })
	op.set(errors.New("open /dev/ttyUSB9: permission denied"))
	eventually(t, "the change reported", func() bool { return len(openFailures(log.all())) == 2 })
	eventually(t, "more retries", func() bool { return op.attempts() > 60 })
	got := openFailures(log.all())
	want := []string{
		"serial /dev/ttyUSB9: open /dev/ttyUSB9: no such file or directory; retrying",
		"serial /dev/ttyUSB9: open /dev/ttyUSB9: permission denied; retrying",
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("open-failure events %q\nwant %q", got, want)
	}
	st := tt.Stats().Frontend
	if st.Up || st.Device != "serial /dev/ttyUSB9" || st.LastError != "open /dev/ttyUSB9: permission denied" || st.OpenFailures < 60 {
		t.Fatalf("frontend stats %+v", st)
	}
}

func openFailures(evs []Event) []string {
	var out []string
	for _, e := range evs {
		if e.Kind == EventFrontendOpenFailed {
			out = append(out, e.Reason)
		}
	}
	return out
}
