package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// throughput writes mib MiB of text to the device and times it until the
// page's xterm.js has parsed all of it (rendered counter).
func throughput(d *daemon, p *page, mib int) (mbps float64, lost int, err error) {
	data := text(mib << 20)
	start0, err := evalT[int](p, `window.chartee.rendered`)
	if err != nil {
		return 0, 0, err
	}
	want := start0 + len(data)
	t0 := time.Now()
	werr := make(chan error, 1)
	go func() { _, err := d.dev.Write(data); werr <- err }()
	recv0, _ := evalT[int](p, `window.chartee.received`)
	recvAt, err := evalT[float64](p, fmt.Sprintf(`new Promise(r => { const t0 = performance.now(); const f = () => window.chartee.received >= %d ? r(performance.now() - t0) : setTimeout(f, 5); f(); })`, recv0+len(data)))
	if err != nil {
		return 0, 0, err
	}
	_ = recvAt
	for {
		n, err := evalT[int](p, fmt.Sprintf(`new Promise(r => { const f = () => window.chartee.rendered >= %d ? r(window.chartee.rendered) : setTimeout(f, 5); f(); })`, want))
		if err != nil {
			return 0, 0, err
		}
		if n >= want {
			break
		}
	}
	el := time.Since(t0)
	if err := <-werr; err != nil {
		return 0, 0, err
	}
	lost, err = evalT[int](p, `window.chartee.pos.lost`)
	return float64(len(data)) / el.Seconds() / 1e6, lost, err
}

// rawThroughput is the baseline: the same bytes read by a TCP client of
// the tee's raw leg.
func rawThroughput(d *daemon, mib int) (float64, error) {
	c, err := net.Dial("tcp", d.raw)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond) // attached
	data := text(mib << 20)
	t0 := time.Now()
	werr := make(chan error, 1)
	go func() { _, err := d.dev.Write(data); werr <- err }()
	got, err := io.CopyN(io.Discard, c, int64(len(data)))
	if err != nil {
		return 0, fmt.Errorf("bench: raw leg read %d bytes: %w", got, err)
	}
	el := time.Since(t0)
	return float64(len(data)) / el.Seconds() / 1e6, <-werr
}

// pageRTT types n keys in the page, one at a time, and times each until
// xterm.js has parsed the device's echo.
func pageRTT(d *daemon, p *page, n int) ([]time.Duration, error) {
	d.setEcho(true)
	defer d.setEcho(false)
	ms, err := evalT[[]float64](p, fmt.Sprintf(`(async () => {
		const h = window.chartee, out = [];
		for (let i = 0; i < %d; i++) {
			const key = 97 + i %% 26;
			const t0 = performance.now();
			await new Promise(r => {
				h.onRendered = b => { if (b.includes(key)) { h.onRendered = null; r(); } };
				h.term.input(String.fromCharCode(key), true);
			});
			out.push(performance.now() - t0);
		}
		return out; })()`, n))
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m * float64(time.Millisecond))
	}
	return out, nil
}

// rawRTT is the baseline: the same echo through the raw TCP leg.
func rawRTT(d *daemon, n int) ([]time.Duration, error) {
	c, err := net.Dial("tcp", d.raw)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	time.Sleep(200 * time.Millisecond)
	d.setEcho(true)
	defer d.setEcho(false)
	var out []time.Duration
	buf := make([]byte, 64)
	for i := range n {
		key := []byte{byte('a' + i%26)}
		t0 := time.Now()
		if _, err := c.Write(key); err != nil {
			return nil, err
		}
		for {
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			k, err := c.Read(buf)
			if err != nil {
				return nil, err
			}
			if bytes.Contains(buf[:k], key) {
				break
			}
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// cpuWith streams ~256 KB/s to the device for dur with n viewers open —
// browser pages, or WebSocket clients without a browser when b is nil —
// and returns the daemon's CPU time in that window.
func cpuWith(d *daemon, b *browser, n int, dur time.Duration) (time.Duration, int, error) {
	var closers []func()
	var client *http.Client
	if b == nil && n > 0 {
		c, err := wsLogin(d.url, "bench")
		if err != nil {
			return 0, 0, err
		}
		client = c
	}
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for range n {
		if b == nil {
			v, err := newWSViewer(client, d.url)
			if err != nil {
				return 0, 0, err
			}
			closers = append(closers, v.close)
			continue
		}
		p, err := b.page(d.url, "bench")
		if err != nil {
			return 0, 0, err
		}
		closers = append(closers, p.close)
	}
	time.Sleep(500 * time.Millisecond)
	if got := d.webLegs(); got != n {
		return 0, 0, fmt.Errorf("bench: %d browser legs attached, want %d", got, n)
	}
	chunk := text(16 << 10)
	c0, err := d.cpu()
	if err != nil {
		return 0, 0, err
	}
	// 16 KiB every 64 ms: ~256 KB/s, which every tab keeps up with even on
	// a loaded machine, so the device is never slowed by a viewer.
	tick := time.NewTicker(64 * time.Millisecond)
	defer tick.Stop()
	written := 0
	for end := time.Now().Add(dur); time.Now().Before(end); <-tick.C {
		// With on_overflow: block a viewer that cannot keep up slows
		// the device; what was written is counted.
		k, err := d.dev.Write(chunk)
		written += k
		if err != nil {
			return 0, 0, err
		}
	}
	time.Sleep(300 * time.Millisecond) // the last chunks reach the pages
	c1, err := d.cpu()
	return c1 - c0, written, err
}

// xtermAlone is the page-side ceiling: the same bytes handed straight to
// xterm.js in the page (64 KiB writes, no network, no daemon), timed until
// its write callback fires for the last one.
func xtermAlone(p *page, mib int) (float64, error) {
	return evalT[float64](p, fmt.Sprintf(`(async () => {
		const enc = new TextEncoder(), parts = [];
		let n = 0;
		for (let i = 0; n < %d; i++) {
			const s = String(i).padStart(8, '0') + ' the quick brown fox jumps over the lazy dog 0123456789 ABCDEFGHIJ\r\n';
			parts.push(s); n += s.length;
		}
		const data = enc.encode(parts.join('')).subarray(0, %d);
		const t = window.chartee.term, t0 = performance.now();
		await new Promise(r => {
			for (let off = 0; off < data.length; off += 65536) {
				const last = off + 65536 >= data.length;
				t.write(data.subarray(off, off + 65536), last ? r : undefined);
			}
		});
		return data.length / ((performance.now() - t0) / 1000) / 1e6; })()`, mib<<20, mib<<20))
}
