package tee

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
	"chartee/chardev/memdev"
)

// The frontends below are tryDevs (inline_test.go): TryWrite takes 0 to 3
// bytes in turn, so a typed chunk goes all inline, partly inline and partly
// by the input writer, or all by the writer.

// typeTokens has each of legs type count tokens ("a0001|"), one read
// each, all legs at once; it returns every token typed.
func typeTokens(t *testing.T, legs []*memdev.Device, count int) []string {
	t.Helper()
	var wg sync.WaitGroup
	var all []string
	var mu sync.Mutex
	for i, d := range legs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range count {
				tok := fmt.Sprintf("%c%04d|", 'a'+i, k)
				mu.Lock()
				all = append(all, tok)
				mu.Unlock()
				d.Feed([]byte(tok))
				if !d.WaitFed(10 * time.Second) {
					t.Errorf("leg %d: token %d never read", i, k)
					return
				}
			}
		}()
	}
	wg.Wait()
	return all
}

// checkTokens: the frontend got every token once and whole, each leg's
// in the order it typed them.
func checkTokens(t *testing.T, got []byte, typed []string, legs int) {
	t.Helper()
	toks := strings.Split(strings.TrimSuffix(string(got), "|"), "|")
	if len(toks) != len(typed) {
		t.Fatalf("frontend got %d tokens, %d typed", len(toks), len(typed))
	}
	next := make([]int, legs)
	for _, tok := range toks {
		var leg rune
		var k int
		if _, err := fmt.Sscanf(tok, "%c%04d", &leg, &k); err != nil || len(tok) != 5 {
			t.Fatalf("token %q broken up (input from two legs interleaved inside a chunk?)", tok)
		}
		i := int(leg - 'a')
		if i < 0 || i >= legs || k != next[i] {
			t.Fatalf("token %q out of order: want leg %c's %d", tok, leg, next[i])
		}
		next[i]++
	}
}

// TestInlineInputKeepsTheInputExact: typed chunks written by the leg
// readers themselves (whole, in part, or not at all when the frontend
// would block) and by the input writer reach the frontend once, whole,
// and in each leg's order.
func TestInlineInputKeepsTheInputExact(t *testing.T) {
	front := &tryDev{Device: memdev.New("front")}
	h2 := newHarness(t, Options{Frontend: memdev.Opener(nil, front)})
	legs := []*memdev.Device{
		h2.attach("a", LegOptions{Input: true}),
		h2.attach("b", LegOptions{Input: true}),
		h2.attach("c", LegOptions{Input: true}),
	}
	typed := typeTokens(t, legs, 200)
	total := 0
	for _, tok := range typed {
		total += len(tok)
	}
	if !front.WaitWritten(total, 10*time.Second) {
		t.Fatalf("frontend got %d of %d bytes", front.WrittenLen(), total)
	}
	checkTokens(t, front.Written(), typed, len(legs))
	if front.tries.Load() == 0 || front.took.Load() == 0 || front.took.Load() == int64(total) {
		t.Fatalf("inline tries %d took %d of %d: not both paths exercised", front.tries.Load(), front.took.Load(), total)
	}
	eventually(t, "stats to count the input", func() bool {
		return h2.tee.Stats().Frontend.BytesIn == uint64(total)
	})
}

// TestInlineInputUnsupportedFallsBack: a frontend that says it cannot try
// a write after all is asked once; the input writer writes everything.
func TestInlineInputUnsupportedFallsBack(t *testing.T) {
	front := &tryDev{Device: memdev.New("front"), unsupported: true}
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, front)})
	d := h.attach("a", LegOptions{Input: true})
	typed := typeTokens(t, []*memdev.Device{d}, 50)
	total := 0
	for _, tok := range typed {
		total += len(tok)
	}
	if !front.WaitWritten(total, 10*time.Second) {
		t.Fatalf("frontend got %d of %d bytes", front.WrittenLen(), total)
	}
	checkTokens(t, front.Written(), typed, 1)
	if n := front.tries.Load(); n != 1 {
		t.Fatalf("TryWrite called %d times after ErrUnsupported, want 1", n)
	}
}

// tryEchoFront is echoFront that can also try a write: the key typed goes
// inline from the leg reader.
type tryEchoFront struct {
	echoFront
	tries atomic.Int64
}

func (e *tryEchoFront) TryWrite(p []byte) (int, error) {
	e.tries.Add(1)
	e.Feed(p)
	return e.Device.Write(p)
}

// TestInlineInputRecordedBeforeItsEcho: a key written inline by its leg's
// reader is recorded before the echo it causes, as by the input writer.
func TestInlineInputRecordedBeforeItsEcho(t *testing.T) {
	front := &tryEchoFront{echoFront: echoFront{memdev.New("front")}}
	checkKeysRecordedBeforeEcho(t, front)
	if front.tries.Load() == 0 {
		t.Fatal("no key went inline")
	}
}

// outOnlyLog is an input recorder configured to record no input (a
// direction:out capture file).
type outOnlyLog struct{ *dirLog }

func (outOnlyLog) RecordsInput() bool { return false }

var _ chardev.InputRecorderToggle = outOnlyLog{}

// TestRecorderThatRecordsNoInputGetsNone: a device that says it records
// no input is given none (typing does not wake its writer); its output
// is written as usual.
func TestRecorderThatRecordsNoInputGetsNone(t *testing.T) {
	front := echoFront{memdev.New("front")}
	h := newHarness(t, Options{Frontend: memdev.Opener(nil, front)})
	rec := outOnlyLog{newDirLog()}
	if err := h.tee.Attach(context.Background(), "cap", LegOptions{}, memdev.Opener(nil, rec)); err != nil {
		t.Fatal(err)
	}
	typist := h.attach("kbd", LegOptions{Input: true})
	typist.Feed([]byte("xyz"))
	eventually(t, "the echo captured", func() bool { return rec.direction("o") == "xyz" })
	if got := rec.direction("i"); got != "" {
		t.Fatalf("input recorded %q by a recorder that records none", got)
	}
}
