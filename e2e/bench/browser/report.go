package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

type cpuResult struct {
	viewers int
	cpu     time.Duration
	bytes   int // written to the device in the window
}

type report struct {
	started          time.Time
	load0, load1     string
	page, raw, alone []float64 // MB/s per round
	pageLost         int
	pageRTT, rawRTT  []time.Duration
	cpu              []cpuResult
	cpuWS            []cpuResult // viewers without a browser
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

func (r *report) markdown(o opts) string {
	var b strings.Builder
	p := func(f string, a ...any) { fmt.Fprintf(&b, f, a...) }
	p("## Browser console\n\n")
	p("`go run ./e2e/bench/browser` (%s, %d CPUs, load %s before, %s after; headless Chromium from Debian). ",
		r.started.UTC().Format("2006-01-02 15:04 UTC"), runtime.NumCPU(), r.load0, r.load1)
	p("The console is a pty; the page is the real console page (xterm.js %s) logged in over HTTP on loopback. ", "6.0.0")
	p("Baselines are a raw TCP leg of the same tee, in the same run.\n\n")
	p("| measurement | browser | raw TCP leg (baseline) | ratio |\n|---|---|---|---|\n")
	p("| output parsed by xterm.js, %d MiB of 80-column lines, median of %d rounds (range) | %s (lost %d bytes) | %s | %.2f |\n",
		o.mib, len(r.page), mbRange(r.page), r.pageLost, mbRange(r.raw), median(r.page)/median(r.raw))
	p("| the same bytes written straight to xterm.js in the page (no network, no daemon) | %s | | page/alone %.2f |\n",
		mbRange(r.alone), median(r.page)/median(r.alone))
	p("| keystroke round trip p50 (%d keys) | %s | %s | %.1f× |\n", len(r.pageRTT), ms(pct(r.pageRTT, 50)), ms(pct(r.rawRTT, 50)),
		float64(pct(r.pageRTT, 50))/float64(pct(r.rawRTT, 50)))
	p("| keystroke round trip p99 | %s | %s | %.1f× |\n\n", ms(pct(r.pageRTT, 99)), ms(pct(r.rawRTT, 99)),
		float64(pct(r.pageRTT, 99))/float64(pct(r.rawRTT, 99)))
	p("Daemon CPU while the device writes ~256 KB/s for %s (viewers are tabs of one browser; with `on_overflow: block` a viewer that could not keep up would slow the device, so the bytes written are given):\n\n", o.cpuFor)
	cpuTable(p, r.cpu)
	p("\nThe same with WebSocket clients that log in and read the console's socket like a page but render nothing (no browser competing for the CPU, no flow control):\n\n")
	cpuTable(p, r.cpuWS)
	p("\nHow: throughput is timed from the first byte written to the device until the page's xterm.js write callback has fired for the last one ")
	p("(the parse rate the xterm.js flow-control guide quotes as 5–35 MB/s); the viewer legs use `on_overflow: block`, so the page's flow control ")
	p("(pause above 512 KiB unparsed, resume below 64 KiB) back-pressures the device instead of dropping. The round trip starts when the page ")
	p("types a key (`term.input`, the path of a key press after the DOM event) and ends when xterm.js has parsed the device's echo. ")
	p("CPU is utime+stime of the chartee process from /proc.\n")
	return b.String()
}

// writeSection replaces the BROWSER section of path (or appends it).
func writeSection(path, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	block := beginMark + "\n" + body + endMark + "\n"
	if i := strings.Index(s, beginMark); i >= 0 {
		if j := strings.Index(s[i:], endMark); j >= 0 {
			s = s[:i] + block + s[i+j+len(endMark):]
			s = strings.Replace(s, endMark+"\n\n", endMark+"\n", 1)
			return os.WriteFile(path, []byte(s), 0o644)
		}
	}
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return os.WriteFile(path, []byte(s+"\n"+block), 0o644)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func mbRange(v []float64) string {
	return fmt.Sprintf("%.1f MB/s (%.1f–%.1f)", median(v), slices.Min(v), slices.Max(v))
}

func cpuTable(p func(string, ...any), rows []cpuResult) {
	p("| viewers | MB written | chartee CPU | CPU ms per MB | per viewer: CPU ms per MB above 0 viewers |\n|---|---|---|---|---|\n")
	var base float64
	for _, c := range rows {
		perMB := float64(c.cpu) / 1e6 / (float64(c.bytes) / 1e6)
		per := "—"
		if c.viewers == 0 {
			base = perMB
		} else {
			per = fmt.Sprintf("%.1f", (perMB-base)/float64(c.viewers))
		}
		p("| %d | %.1f | %s | %.1f | %s |\n", c.viewers, float64(c.bytes)/1e6, c.cpu.Round(time.Millisecond), perMB, per)
	}
}
