package tee

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"chartee/chardev"
)

// TestFreezeWhileTyping: clients typing without pause while the tee is
// frozen and thawed again and again (rolled-back upgrades, each cut
// falling anywhere in their typing) never make a freeze fail, nothing is
// left queued at a cut that the tee would both carry and write, and
// every typed byte reaches the frontend exactly once, in order.
//
// A leg's reader that has read a chunk when the freeze begins must still
// queue it and park: if it waited for Thaw instead, Freeze would wait
// for it until its drain bound and fail ("N of M readers stopped").
func TestFreezeWhileTyping(t *testing.T) {
	guest, frontEnd := loopPair(t)
	tt, err := New(Options{Name: "t", Frontend: chardev.OpenFunc(func(context.Context) (chardev.Chardev, error) {
		return freezable{frontEnd}, nil
	})})
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	var clients []net.Conn
	for _, name := range []string{"a", "b"} {
		client, legEnd := loopPair(t)
		if _, err := tt.attachLeg(mustReserve(t, tt, name), freezable{legEnd}, LegOptions{Input: true}, false); err != nil {
			t.Fatal(err)
		}
		clients = append(clients, client)
	}
	got := recordConn(guest)
	eventually(t, "the frontend up", func() bool { return tt.Stats().Frontend.Up })

	stop := make(chan struct{})
	typed := make([]int, len(clients)) // bytes each client wrote
	// The clients keep what is typed and not yet at the frontend well
	// under the input bound (64 KiB): beyond it the tee drops input by
	// design, and a loaded machine's frontend writer falls that far behind.
	var inFlight atomic.Int64
	const window = 16 << 10
	var wg sync.WaitGroup
	for ci, c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				for inFlight.Load()-int64(len(got())) > window {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Microsecond):
					}
				}
				n, err := io.WriteString(c, typedToken(ci, i))
				typed[ci] += n
				inFlight.Add(int64(n))
				if err != nil {
					t.Errorf("client %d: %v", ci, err)
					return
				}
				if i%8 == 0 {
					time.Sleep(20 * time.Microsecond) // bursts, cut anywhere
				}
			}
		})
	}
	for i := range 1000 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fz, err := tt.Freeze(ctx)
		cancel()
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("freeze %d while clients type: %v", i, err)
		}
		if len(fz.Input) > 0 {
			// The drain bound did not expire: typed input has all
			// been written; carrying some too would write it twice.
			t.Errorf("freeze %d: %d pieces of input carried although the drain bound did not expire", i, len(fz.Input))
		}
		tt.Thaw()
	}
	close(stop)
	wg.Wait()
	total := typed[0] + typed[1]
	deadline := time.Now().Add(wait)
	for len(got()) < total && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d := tt.Stats().Frontend.InputDropped; d > 0 {
		t.Fatalf("%d bytes of input dropped at the input bound although the clients kept under it", d)
	}
	checkTypedTokens(t, got(), typed)
}

// recordConn reads c until it closes; the returned function is what it
// read so far.
func recordConn(c net.Conn) func() string {
	var mu sync.Mutex
	var b strings.Builder
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			mu.Lock()
			b.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return b.String()
	}
}

// typedToken is client ci's i-th token: i's digits as letters, then a mark,
// in an alphabet of the client's own (a-j "." or A-J ","), so that each
// client's input can be picked out of the frontend's, however the reads
// cut and interleave it.
func typedToken(ci, i int) string {
	base, mark := byte('a'), byte('.')
	if ci == 1 {
		base, mark = 'A', ','
	}
	b := []byte(fmt.Sprint(i))
	for k := range b {
		b[k] = base + b[k] - '0'
	}
	return string(append(b, mark))
}

// checkTypedTokens checks that s holds each client's tokens, in order from 0,
// each once and nothing else: typed[c] bytes of client c's.
func checkTypedTokens(t *testing.T, s string, typed []int) {
	t.Helper()
	per := make([]strings.Builder, len(typed))
	for i := range len(s) {
		switch c := s[i]; {
		case c >= 'a' && c <= 'j' || c == '.':
			per[0].WriteByte(c)
		case c >= 'A' && c <= 'J' || c == ',':
			per[1].WriteByte(c)
		default:
			t.Fatalf("the frontend got %q at byte %d, which nobody typed", c, i)
		}
	}
	for ci := range typed {
		got := per[ci].String()
		var want strings.Builder
		n := 0
		for want.Len() < len(got) {
			want.WriteString(typedToken(ci, n))
			n++
		}
		if got != want.String() {
			i := 0
			for i < len(got) && got[i] == want.String()[i] {
				i++
			}
			t.Fatalf("client %d: the frontend got %q at its byte %d, want %q (lost or repeated input)",
				ci, got[i:min(len(got), i+24)], i, want.String()[i:min(want.Len(), i+24)])
		}
		if len(got) != typed[ci] {
			t.Errorf("client %d typed %d bytes, the frontend got %d", ci, typed[ci], len(got))
		}
		t.Logf("client %d: %d tokens typed across the freezes, each written once", ci, n)
	}
}
