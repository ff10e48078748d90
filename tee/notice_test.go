package tee

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// noticeDev is an interactive leg: a memdev that records the notices it
// was shown, and has an escape key.
type noticeDev struct {
	*memdev.Device
	mu      sync.Mutex
	notices []string
}

func (d *noticeDev) Notice(text string) {
	d.mu.Lock()
	d.notices = append(d.notices, text)
	d.mu.Unlock()
}

func (d *noticeDev) EscapeKey() string { return "^E" }

func (d *noticeDev) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.notices)
}

var (
	_ chardev.Noticer = (*noticeDev)(nil)
	_ chardev.Escaper = (*noticeDev)(nil)
)

func (h *harness) attachNoticer(name string, opts LegOptions) *noticeDev {
	h.t.Helper()
	d := &noticeDev{Device: memdev.New(name)}
	if err := h.tee.Attach(context.Background(), name, opts, memdev.Opener(nil, d)); err != nil {
		h.t.Fatal(err)
	}
	return d
}

func TestFrontendSwapAndFailoverNoticeInteractiveLegsOnly(t *testing.T) {
	spare := memdev.New("spare")
	h := newHarness(t, Options{Failover: []chardev.Opener{named{memdev.Opener(nil, spare), "memdev spare"}}})
	person := h.attachNoticer("ops", LegOptions{Input: true})
	raw := h.attach("capture", LegOptions{})
	h.emit([]byte("before "))

	h.front.FailReads(errTestLost)
	eventually(t, "failed over", func() bool { return h.tee.Stats().Frontend.Failovers == 1 })
	eventually(t, "failover notice", func() bool {
		return slices.Contains(person.seen(), "t0: now on memdev spare (failover)")
	})
	if n := person.seen(); !strings.HasPrefix(n[0], "t0: lost ") || !strings.HasSuffix(n[0], "(device unplugged); reconnecting") {
		t.Fatalf("first notice %q, want the loss", n[0])
	}

	nf := memdev.New("front2")
	if _, err := h.tee.SwapFrontend(context.Background(), named{memdev.Opener(nil, nf), "memdev front2"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "swap notice", func() bool {
		return slices.Contains(person.seen(), "t0: now on memdev front2 (frontend swap)")
	})
	nf.Feed([]byte("after"))
	waitBytes(t, raw, []byte("before after"))
	// The raw leg got the stream and nothing else.
	if got := string(raw.Written()); got != "before after" {
		t.Fatalf("raw leg got %q", got)
	}
}

// named is an opener that describes itself, as real specs do.
type named struct {
	chardev.Opener
	desc string
}

func (n named) Describe() string { return n.desc }

var errTestLost = &testErr{"device unplugged"}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }

func TestExclusiveRefusalToldOncePerEpisode(t *testing.T) {
	h := newHarness(t, Options{Input: Exclusive, ExclusiveIdle: time.Hour})
	a := h.attachNoticer("a", LegOptions{Input: true})
	b := h.attachNoticer("b", LegOptions{Input: true})
	a.Feed([]byte("A1"))
	eventually(t, "a's input", func() bool { return h.front.WrittenLen() == 2 })
	for _, k := range []string{"x", "y", "z"} {
		b.Feed([]byte(k))
		b.WaitFed(wait)
	}
	eventually(t, "b discarded", func() bool { ls, _ := legStats(h.tee, "b"); return ls.Discarded == 3 })
	eventually(t, "b told", func() bool { return len(b.seen()) == 1 })
	want := "t0: input discarded: the write lock is held by a; ^E l takes it once they are 1h0m0s idle, ^E s shows who has it"
	if got := b.seen()[0]; got != want {
		t.Fatalf("notice %q\nwant   %q", got, want)
	}
	if len(a.seen()) != 0 {
		t.Fatalf("holder was told %q", a.seen())
	}
	// A new episode (the holder leaves, b types, a comes back as c and
	// b is refused again... here: b takes the lock, a is refused) tells
	// again, once.
	if err := h.tee.Detach("a"); err != nil {
		t.Fatal(err)
	}
	b.Feed([]byte("B"))
	eventually(t, "b's input", func() bool { return string(h.front.Written()) == "A1B" })
	c := h.attachNoticer("c", LegOptions{Input: true})
	c.Feed([]byte("1"))
	c.WaitFed(wait)
	c.Feed([]byte("2"))
	eventually(t, "c discarded", func() bool { ls, _ := legStats(h.tee, "c"); return ls.Discarded == 2 })
	eventually(t, "c told", func() bool { return len(c.seen()) == 1 })
	if !strings.Contains(c.seen()[0], "held by b;") {
		t.Fatalf("notice %q does not name b", c.seen()[0])
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(b.seen()); n != 1 {
		t.Fatalf("b told %d times, want 1 (no new refusal)", n)
	}
}
