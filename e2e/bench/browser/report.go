package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

type cpuResult struct {
	viewers int
	cpu     time.Duration
}

type report struct {
	started           time.Time
	load0, load1      string
	pageMBps, rawMBps float64
	aloneMBps         float64
	pageLost          int
	pageRTT, rawRTT   []time.Duration
	cpu               []cpuResult
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
	p("| output parsed by xterm.js, %d MiB of 80-column lines | %.1f MB/s (lost %d bytes) | %.1f MB/s | %.2f |\n",
		o.mib, r.pageMBps, r.pageLost, r.rawMBps, r.pageMBps/r.rawMBps)
	p("| the same bytes written straight to xterm.js in the page (no network, no daemon) | %.1f MB/s | | page/alone %.2f |\n",
		r.aloneMBps, r.pageMBps/r.aloneMBps)
	p("| keystroke round trip p50 (%d keys) | %s | %s | %.1f× |\n", len(r.pageRTT), ms(pct(r.pageRTT, 50)), ms(pct(r.rawRTT, 50)),
		float64(pct(r.pageRTT, 50))/float64(pct(r.rawRTT, 50)))
	p("| keystroke round trip p99 | %s | %s | %.1f× |\n\n", ms(pct(r.pageRTT, 99)), ms(pct(r.rawRTT, 99)),
		float64(pct(r.pageRTT, 99))/float64(pct(r.rawRTT, 99)))
	p("Daemon CPU while the device writes 1 MB/s for %s (viewers are tabs of one browser):\n\n", o.cpuFor)
	p("| viewers | chartee CPU | CPU per second | per viewer, above 0 viewers |\n|---|---|---|---|\n")
	var base time.Duration
	for _, c := range r.cpu {
		per := "—"
		if c.viewers == 0 {
			base = c.cpu
		} else {
			per = fmt.Sprintf("%.1f ms/s", float64(c.cpu-base)/float64(c.viewers)/o.cpuFor.Seconds()/1e6)
		}
		p("| %d | %s | %.1f ms/s | %s |\n", c.viewers, c.cpu.Round(time.Millisecond), float64(c.cpu)/o.cpuFor.Seconds()/1e6, per)
	}
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
