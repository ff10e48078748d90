package telnet

import (
	"bytes"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
)

// These tests feed a ServerConn, over real loopback TCP, many megabytes of
// hostile protocol: a subnegotiation that never ends, and floods of IAC
// commands. The server must keep its memory bounded whatever the client
// sends: its buffers stay at their fixed sizes and its live heap does not
// grow with the amount of input. They assert sizes, never times.

const (
	memTestLimit  = 256      // Config.MaxSubneg for these tests
	memTestInput  = 16 << 20 // bytes of hostile input per test
	memTestGrowth = 1 << 20  // live heap growth allowed over the whole input
)

// watchedConn is the server's side of the socket. At the start of each
// Read (on the server's reading goroutine, so without a data race) it
// records how much input the server has finished decoding and the largest
// buffers the ServerConn has held so far.
type watchedConn struct {
	net.Conn
	s *ServerConn // set before the first Read

	read    int64        // bytes returned by Read; reading goroutine only
	decoded atomic.Int64 // bytes the server has consumed completely
	maxSB   atomic.Int64 // largest cap of the subnegotiation buffer
	maxData atomic.Int64 // largest cap of the decode buffer
}

func (w *watchedConn) Read(p []byte) (int, error) {
	storeMax(&w.maxSB, cap(w.s.dec.sb))
	storeMax(&w.maxData, cap(w.s.dbuf))
	// ServerConn reads its socket only when it has decoded and acted on
	// everything it read before.
	w.decoded.Store(w.read)
	n, err := w.Conn.Read(p)
	w.read += int64(n)
	return n, err
}

func storeMax(v *atomic.Int64, n int) {
	if int64(n) > v.Load() {
		v.Store(int64(n))
	}
}

// memPair is a ServerConn on a watched loopback socket, read by a
// collector as the engine would, with everything the server sends to its
// client read and thrown away (a client that keeps reading, so the
// server's answers never block it).
type memPair struct {
	server *ServerConn
	watch  *watchedConn
	got    *collector
	client net.Conn
	sent   int64 // bytes written to client
}

func newMemPair(t *testing.T, cfg Config) *memPair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	w := &watchedConn{Conn: conn}
	p := &memPair{server: NewServer(w, cfg), watch: w, client: client}
	w.s = p.server
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		_, _ = io.Copy(io.Discard, client)
	}()
	p.got = collect(p.server)
	t.Cleanup(func() {
		client.Close()
		p.server.Close()
		<-p.got.done
		<-drained
	})
	return p
}

// liveHeap is the heap in use after a full collection.
func liveHeap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// write sends b from the client.
func (p *memPair) write(t *testing.T, b []byte) {
	t.Helper()
	write(t, p.client, b)
	p.sent += int64(len(b))
}

// send writes chunk from the client until total bytes went out, and waits
// until the server has decoded everything sent so far. It returns the
// bytes this call sent.
func (p *memPair) send(t *testing.T, chunk []byte, total int) int {
	t.Helper()
	sent := 0
	for sent < total {
		p.write(t, chunk)
		sent += len(chunk)
	}
	waitFor(t, "the server to decode the input", func() bool { return p.watch.decoded.Load() >= p.sent })
	return sent
}

// checkBounded fails if the server's buffers or live heap grew with the
// input.
func (p *memPair) checkBounded(t *testing.T, what string, before uint64) {
	t.Helper()
	if sb := p.watch.maxSB.Load(); sb > 2*memTestLimit {
		t.Errorf("%s: subnegotiation buffer reached %d bytes, limit %d", what, sb, memTestLimit)
	}
	if d := p.watch.maxData.Load(); d > int64(len(p.server.rbuf)) {
		t.Errorf("%s: decode buffer reached %d bytes for %d-byte reads", what, d, len(p.server.rbuf))
	}
	if after := liveHeap(); after > before && after-before > memTestGrowth {
		t.Errorf("%s: live heap grew by %d bytes", what, after-before)
	}
}

// TestServerEndlessSubnegotiationMemory: a client opens an RFC 2217
// subnegotiation and never closes it. While it is still open, after 16 MiB
// of payload (plain bytes and escaped IACs), the server holds no more than
// its limit; once the client closes it, the server drops it and carries on.
func TestServerEndlessSubnegotiationMemory(t *testing.T) {
	p := newMemPair(t, Config{RFC2217: true, MaxSubneg: memTestLimit})
	chunk := bytes.Repeat([]byte("0123456789abcdef\xff\xff"), 64<<10/18)
	before := liveHeap()

	p.write(t, []byte{IAC, SB, OptComPort, ComSetBaudRate})
	p.send(t, chunk, memTestInput)
	p.checkBounded(t, "open subnegotiation", before)
	if got := p.got.bytes(); len(got) != 0 {
		t.Fatalf("subnegotiation payload leaked as data: %d bytes", len(got))
	}

	p.write(t, []byte{IAC, SE, 'o', 'k'})
	p.got.waitBytes(t, []byte("ok"))
	if st := p.server.Stats(); st.DroppedSubneg != 1 || st.BadComPort != 0 {
		t.Errorf("stats %+v, want one dropped subnegotiation", st)
	}
}

// TestServerIACFloodMemory: floods of IAC commands, option requests the
// server refuses (each one answered), AYTs (each one answered with text),
// and subnegotiations cut short by another IAC. None of it is data, and
// none of it makes the server hold more memory.
func TestServerIACFloodMemory(t *testing.T) {
	floods := []struct {
		name string
		unit []byte
		size int // bytes of input; less where each unit is answered
		// dropped and bad are the subnegotiations dropped and the bad RFC
		// 2217 requests counted per unit: proof the server saw them all.
		dropped, bad uint64
	}{
		{"commands", []byte{IAC, NOP, IAC, GA, IAC, DM, IAC, SE, IAC, EL}, memTestInput, 0, 0},
		{"refused options", []byte{IAC, WILL, 99, IAC, DO, 98, IAC, WONT, 97, IAC, DONT, 96}, memTestInput / 16, 0, 0},
		{"are you there", []byte{IAC, AYT}, memTestInput / 64, 0, 0},
		{"cut-short subnegotiations", []byte{IAC, SB, OptComPort, 1, 2, 3, IAC, NOP, IAC, SB, IAC, NOP}, memTestInput / 4, 2, 0},
		{"bad RFC 2217 requests", []byte{IAC, SB, OptComPort, ComSetBaudRate, 1, IAC, SE}, memTestInput / 8, 0, 1},
	}
	for _, fl := range floods {
		t.Run(fl.name, func(t *testing.T) {
			p := newMemPair(t, Config{RFC2217: true, MaxSubneg: memTestLimit})
			chunk := bytes.Repeat(fl.unit, 64<<10/len(fl.unit))
			before := liveHeap()
			units := uint64(p.send(t, chunk, fl.size) / len(fl.unit))
			p.checkBounded(t, fl.name, before)
			p.write(t, []byte("ok"))
			p.got.waitBytes(t, []byte("ok"))
			if st := p.server.Stats(); st.DroppedSubneg != units*fl.dropped || st.BadComPort != units*fl.bad {
				t.Errorf("stats %+v after %d units, want %d dropped and %d bad", st, units, units*fl.dropped, units*fl.bad)
			}
		})
	}
}
