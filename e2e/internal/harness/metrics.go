package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
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
	v, err := Metric(metricsAddr, "go_goroutines", timeout)
	return int(v), err
}

// Metric scrapes one unlabelled series (go_goroutines,
// go_memstats_heap_inuse_bytes) from the /metrics endpoint at metricsAddr.
func Metric(metricsAddr, name string, timeout time.Duration) (float64, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: timeout}
	resp, err := c.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("e2e: %s in %s/metrics: %w", name, metricsAddr, err)
			}
			return f, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("e2e: reading %s/metrics: %w", metricsAddr, err)
	}
	return 0, fmt.Errorf("e2e: no %s in %s/metrics", name, metricsAddr)
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

// Scrape fetches the whole /metrics exposition at metricsAddr.
func Scrape(metricsAddr string, timeout time.Duration) (string, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: timeout}
	resp, err := c.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("e2e: reading %s/metrics: %w", metricsAddr, err)
	}
	return string(b), nil
}

// Sample finds the value of the one sample of series name whose labels
// include every label given (`tee="vm"`) in an exposition.
func Sample(exposition, name string, labels ...string) (float64, error) {
next:
	for _, l := range strings.Split(exposition, "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok || rest == "" || rest[0] != '{' && rest[0] != ' ' {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(rest, lb) {
				continue next
			}
		}
		return strconv.ParseFloat(strings.TrimSpace(rest[strings.LastIndexByte(rest, ' ')+1:]), 64)
	}
	return 0, fmt.Errorf("e2e: no sample %s%v", name, labels)
}

// GoroutineDump fetches the daemon's goroutine profile from the control
// API (GET /v1/debug/goroutines: "goroutine profile: total N", then each
// distinct stack with its count) and returns N and the text. Like
// Goroutines, each call uses a fresh connection; the one serving it is
// in the profile.
func (c *Chartee) GoroutineDump(timeout time.Duration) (int, string, error) {
	body, err := c.goroutines("1", timeout)
	if err != nil {
		return 0, "", err
	}
	first, _, _ := strings.Cut(body, "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(first, "goroutine profile: total "))
	if err != nil {
		return 0, "", fmt.Errorf("e2e: goroutine profile starts %q: %w", first, err)
	}
	return n, body, nil
}

// GoroutineStacks is every goroutine of the daemon with its own stack
// and state ("goroutine 7 [select]:"), blank-line separated
// (GET /v1/debug/goroutines?debug=2).
func (c *Chartee) GoroutineStacks(timeout time.Duration) (string, error) {
	return c.goroutines("2", timeout)
}

func (c *Chartee) goroutines(debug string, timeout time.Duration) (string, error) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Socket)
		}}}
	resp, err := hc.Get("http://chartee/v1/debug/goroutines?debug=" + debug)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &APIError{Status: resp.StatusCode, Body: string(body)}
	}
	return string(body), nil
}
