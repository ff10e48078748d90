// Package metrics exports chartee's engine counters to Prometheus.
//
// # Live, not mirrored
//
// The Collector keeps no metric state of its own. At every scrape it asks
// its Source for the tees that exist right now and reads each tee's
// lock-free counters (tee.Tee.Stats), the way node_exporter reads /proc:
// a tee or backend that is gone is simply not reported any more, so there
// are no stale series to delete and nothing to keep in step with reloads.
//
// Legs are not labels. A TCP or telnet listener accepts one leg per client,
// and client names ("ops#17") never repeat, so a per-leg label would grow
// without bound. Each backend instead keeps counters cumulative over every
// leg it ever had: a client leaving does not remove its backend's series or
// make a counter go down. Cardinality is therefore bounded by the
// configuration: per tee, one series set for the frontend, one per
// configured backend, and a fixed set per swap kind. Per-leg detail stays
// in the control API.
//
// A counter starts again from zero only when its owner is recreated: a
// backend detached and attached again (by a reload or the API), or a tee
// removed and added. Prometheus treats that as a counter reset, which
// rate() and increase() handle.
//
// # Metrics
//
// Every engine metric has a tee label (the tee's name); backend metrics
// also have backend (the configured backend name, shared by all of a
// listener's client legs).
//
//	chartee_backend_bytes_total{tee,backend,direction}
//	    counter. direction="out": stream bytes written to the backend's
//	    legs. direction="in": bytes its legs typed that were accepted into
//	    the frontend's input buffer.
//	chartee_backend_dropped_bytes_total{tee,backend}
//	    counter. Output bytes the backend's legs did not get because their
//	    queue was full (on_overflow: drop).
//	chartee_backend_queue_bytes{tee,backend}
//	    gauge. Output bytes waiting in the backend's leg queues now.
//	chartee_backend_legs{tee,backend}
//	    gauge. Legs attached now: 0 or 1 for a single-stream device, the
//	    number of connected clients for a listener.
//	chartee_sessions{tee,backend,role}
//	    gauge. People attached now through a service backend (ssh, web)
//	    by role (view, operate, admin); all three roles appear once the
//	    backend has a session. No user names: cardinality stays bounded.
//	chartee_input_discarded_bytes_total{tee,backend}
//	    counter. Bytes the backend's legs sent that never reached the
//	    frontend: input disabled, another leg holding the exclusive write
//	    lock, or the input buffer full.
//	chartee_frontend_up{tee}
//	    gauge. 1 while a frontend device is open, 0 while it is being
//	    reconnected.
//	chartee_frontend_bytes_total{tee,direction}
//	    counter. direction="out": bytes read from the frontend (the stream
//	    fanned out). direction="in": bytes written to it (merged input).
//	chartee_frontend_reconnects_total{tee}
//	    counter. Times the frontend was reopened after it failed, on the
//	    same device or another one.
//	chartee_frontend_failovers_total{tee}
//	    counter. Those reopens that landed on a different device than the
//	    one that failed (the next failover candidate).
//	chartee_frontend_input_dropped_bytes_total{tee}
//	    counter. Input dropped because the input buffer was full, e.g.
//	    typed during a long frontend outage. Also counted, per backend, in
//	    chartee_input_discarded_bytes_total.
//	chartee_frontend_input_pending_bytes{tee}
//	    gauge. Input buffered for the frontend and not yet written.
//	chartee_stream_offset_bytes{tee}
//	    gauge. The stream offset: bytes offered to every leg since the tee
//	    started. A leg's lag is this minus what it has been written.
//	chartee_swaps_total{tee,kind,result}
//	    counter. Hot swaps by kind (leg, source, frontend, failover) and
//	    result (ok, error). All eight series exist from the start, so
//	    increase() sees the first swap.
//	chartee_swap_duration_seconds{tee,kind}
//	    histogram. How long successful swaps took, by kind; for failover,
//	    the outage from losing the frontend to the new device being open.
//	    A kind's histogram appears with the tee's first successful swap of
//	    that kind (chartee_swaps_total is there from the start).
//	chartee_config_last_reload_success
//	    gauge. 1 if the last configuration load or reload succeeded, 0 if
//	    it failed (and the previous configuration is still running).
//	chartee_config_last_reload_timestamp_seconds
//	    gauge. Unix time of that load or reload attempt.
//	chartee_build_info{version}
//	    gauge, always 1: the running chartee version.
//	chartee_watch_matches_total{tee,watch}
//	    counter. Matches of a watch's pattern in the tee's output, cooldown
//	    or not (package watch owns it; the daemon registers it).
//	chartee_watch_action_failures_total{tee,watch,action}
//	    counter. Watch actions that failed: an exec that exited non-zero or
//	    timed out, a webhook out of retries, a refused send, an action
//	    dropped because the tee's action queue was full.
//
// # Size
//
// Per tee the exposition has 16 series (8 frontend and stream series, 8
// swap counters) plus 6 per backend, and 17 more per swap kind that has
// happened (a histogram: 14 buckets, +Inf, sum and count). A tee with two
// backends that never swapped is 28 lines, 1.9 KB of text (measured by
// BenchmarkScrape1000Tees as bytes/tee); each swap kind that has happened
// adds 17 lines, about 1.7 KB. So 1,000 such tees are about 1.9 MB, where
// every tee carrying its four histograms made 6.25 MB. The benchmark also
// times a whole scrape of them: ns/op (wall) and cpu-ns/op (the process's
// CPU time).
//
// A scrape builds the engine's families directly (families.go) rather than
// through prometheus.NewConstMetric and the registry: per family a few
// slices carved into messages, label names shared, rows from tees taken in
// name order so most families need no sort. Registry.Gather merges them
// with the registered collectors' families; Collect (for a Collector
// registered elsewhere) sends the same series. Measured 2026-12-05 on a
// 2-vCPU machine at load 9-12, old and new binaries interleaved, 10 runs
// each (benchstat): 108 ms -> 45 ms of CPU per scrape of 1,000 tees
// (0.41x), allocations 451k -> 30k; the exposition is byte for byte the
// same size. What is left is mostly tee.Stats and expfmt's text encoding.
//
// The two config series appear once the daemon has called
// Collector.SetReload (it should, after the initial load too): until then
// there is no truthful value to report. The registry from NewRegistry also
// has the standard go_* and process_* collectors, and Handler adds
// promhttp_metric_handler_* for the endpoint itself.
//
// # Serving
//
// Serve binds exactly the configured host:port — an empty host, which
// would mean every interface, is refused — and sets every http.Server
// timeout and a connection limit, so a slow or idle client holds at most
// one connection slot for a bounded time.
package metrics
