package harness

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Goroutines scrapes go_goroutines from the /metrics endpoint at
// metricsAddr (host:port). Each call uses a fresh connection, so no idle
// scrape connection is counted among the daemon's goroutines.
func Goroutines(metricsAddr string, timeout time.Duration) (int, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: timeout}
	resp, err := c.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("e2e: go_goroutines in %s/metrics: %w", metricsAddr, err)
			}
			return int(f), nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("e2e: reading %s/metrics: %w", metricsAddr, err)
	}
	return 0, fmt.Errorf("e2e: no go_goroutines in %s/metrics", metricsAddr)
}

// ProcessRSS is the resident memory of process pid in bytes, from
// /proc/PID/status (VmRSS).
func ProcessRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("e2e: no VmRSS for pid %d", pid)
}
