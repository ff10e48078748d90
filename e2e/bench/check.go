package main

import (
	"fmt"
	"time"
)

// Gross-regression bounds for `-check` (make bench-check, part of make
// test). They are far looser than the targets in docs/BENCHMARKS.md: on
// this shared 2-core machine chartee's N=1 throughput runs at 0.6–1.0× of
// socat's and its round trip at 1–1.7× socat's, and an idle client costs
// 13–17 KiB. A 10× regression lands far outside these bounds; ordinary
// noise does not. The real targets stay in the bench's report.
const (
	checkMinThroughputVsSocat = 0.3                    // chartee N=1 throughput ÷ socat's
	checkMaxRTTVsSocat        = 4.0                    // chartee round-trip p50 ÷ socat's
	checkRTTSlack             = 100 * time.Microsecond // added to socat's p50: a scheduling hiccup is not a regression
	checkMaxIdleClientKiB     = 32                     // RSS per idle client
)

// grossRegressions checks what the run measured against the -check bounds.
// Every bound needs its measurement: one that is missing, failed or
// inexact is a failure too, never a pass.
func (res *results) grossRegressions() []string {
	var fails []string
	fail := func(format string, args ...any) { fails = append(fails, fmt.Sprintf(format, args...)) }
	cfg := res.cfg
	if cfg.work["throughput"] {
		c, s := res.find("chartee", 1), res.find("socat", 1)
		switch {
		case !ok(c) || c.Exact != 1:
			fail("throughput: chartee N=1 not measured cleanly: %+v", c)
		case !ok(s) || s.Exact != 1:
			fail("throughput: socat N=1 not measured cleanly: %+v", s)
		case c.AggMBps < checkMinThroughputVsSocat*s.AggMBps:
			fail("throughput: chartee N=1 %.1f MB/s < %.2f × socat's %.1f MB/s", c.AggMBps, checkMinThroughputVsSocat, s.AggMBps)
		}
	}
	if cfg.work["rtt"] {
		c, s := res.findRTT("chartee"), res.findRTT("socat")
		switch {
		case c == nil || c.Err != "" || c.Samples == 0:
			fail("round trip: chartee not measured: %+v", c)
		case s == nil || s.Err != "" || s.Samples == 0:
			fail("round trip: socat not measured: %+v", s)
		case float64(c.P50) > checkMaxRTTVsSocat*float64(s.P50+checkRTTSlack):
			fail("round trip: chartee p50 %v > %.0f × (socat's %v + %v)", c.P50, checkMaxRTTVsSocat, s.P50, checkRTTSlack)
		}
	}
	if cfg.work["idle"] {
		var r *idleResult
		for i := range res.idle {
			if res.idle[i].Peer == "chartee" {
				r = &res.idle[i]
			}
		}
		switch {
		case r == nil || r.Err != "" || r.N == 0 || r.RSSKB == 0:
			fail("idle: chartee not measured: %+v", r)
		case (r.RSSKB-r.RSS0KB)/r.N > checkMaxIdleClientKiB:
			fail("idle: %d clients cost chartee %d KiB RSS, %d KiB each > %d KiB", r.N, r.RSSKB-r.RSS0KB, (r.RSSKB-r.RSS0KB)/r.N, checkMaxIdleClientKiB)
		}
	}
	return fails
}
