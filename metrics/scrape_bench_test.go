package metrics

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"

	"chartee/tee"
)

// BenchmarkScrape1000Tees is one /metrics scrape (handler, collector and
// the Go and process collectors) of 1,000 tees with two backends each
// that never swapped: a fleet. It reports the exposition's size per tee.
func BenchmarkScrape1000Tees(b *testing.B) {
	const n = 1000
	set := &teeSet{}
	tees := make([]*tee.Tee, 0, n)
	for i := range n {
		r := newRig(b, fmt.Sprintf("console-%04d", i))
		r.attach("cap", tee.LegOptions{})
		r.attach("ring", tee.LegOptions{})
		tees = append(tees, r.tee)
	}
	set.set(tees...)
	reg := NewRegistry(NewCollector(set, "bench"))
	h := Handler(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	base := scrapeSize(b, Handler(NewRegistry(NewCollector(&teeSet{}, "bench")), slog.New(slog.NewTextHandler(io.Discard, nil))))
	size := scrapeSize(b, h)
	b.ReportAllocs()
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
	// CPU time of the whole process per scrape: on a shared machine the
	// wall time (ns/op) mostly measures waiting for a CPU.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(size-base)/n, "bytes/tee")
	b.ReportMetric(float64(size), "bytes/scrape")
}

// processCPU is the process's user+system CPU time in nanoseconds.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func scrapeSize(b *testing.B, h http.Handler) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK {
		b.Fatalf("status %d", rec.Code)
	}
	return rec.Body.Len()
}
