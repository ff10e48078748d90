package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"chartee/e2e/internal/harness"
)

// TestMetrics is issue 5's sixth scenario: /metrics is scraped while bytes
// flow both ways; promtool check metrics finds nothing wrong with it, and
// the byte counters equal what the test sent.
func TestMetrics(t *testing.T) {
	harness.Begin(t)
	promtool := harness.RequireProgram(t, "promtool", "prometheus")
	dir := t.TempDir()
	pair := harness.StartPtyPair(t, "socat", filepath.Join(dir, "console"), filepath.Join(dir, "console-far"))
	c := harness.NewChartee(t, dir)
	c.WriteConfig(t, fmt.Sprintf(`
control:
  socket: %q
metrics:
  listen: 127.0.0.1:0
tees:
  - name: lab
    frontend:
      type: serial
      path: %q
      exclusive: false
    backends:
      - name: ops
        type: tcp-listen
        listen: 127.0.0.1:0
        input: true
      - name: capture
        type: file
        path: %q
`, c.Socket, pair.A, filepath.Join(dir, "capture.log")))
	c.Start(t)
	// The bound metrics address is printed at start-up.
	var url string
	urlRE := regexp.MustCompile(`metrics:\s+(http://127\.0\.0\.1:\d+/\S*)`)
	waitFor(t, "chartee to print its metrics URL", func() bool {
		m := urlRE.FindStringSubmatch(c.Proc.Output())
		if m != nil {
			url = m[1]
		}
		return m != nil
	})
	waitFor(t, "the frontend to be up", func() bool { return c.Tee(t, "lab").Frontend.Up })
	conn, err := net.Dial("tcp", c.Addr(t, "lab", "ops"))
	if err != nil {
		t.Fatal(err)
	}
	client := harness.Record(t, "client", conn)
	waitFor(t, "the client to be a leg", func() bool { return c.Tee(t, "lab").Backend(t, "ops").Legs == 1 })
	far := harness.OpenTTY(t, pair.B)
	atFar := harness.Record(t, "console-far", far)

	// Traffic both ways, scraped (and checked) while it flows.
	rng := rand.New(rand.NewPCG(3, 4))
	var out, in int
	for round := 0; round < 20; round++ {
		o := make([]byte, 1000+rng.IntN(4000))
		for i := range o {
			o[i] = byte(rng.IntN(256))
		}
		if _, err := far.Write(o); err != nil {
			t.Fatal(err)
		}
		out += len(o)
		typed := strings.Repeat(fmt.Sprintf("cmd %d;", round), 1+rng.IntN(20))
		if _, err := conn.Write([]byte(typed)); err != nil {
			t.Fatal(err)
		}
		in += len(typed)
		if round%5 == 2 {
			promtoolCheck(t, promtool, scrape(t, url))
		}
	}
	client.WaitUntil(t, "all output", timeoutLong, func(b []byte) bool { return len(b) >= out })
	atFar.WaitUntil(t, "all input", timeoutLong, func(b []byte) bool { return len(b) >= in })
	if client.Len() != out || atFar.Len() != in {
		t.Fatalf("the client got %d bytes of %d, the console %d of %d", client.Len(), out, atFar.Len(), in)
	}

	want := []struct {
		name   string
		labels string
		value  int
	}{
		{"chartee_frontend_bytes_total", `direction="out",tee="lab"`, out},
		{"chartee_frontend_bytes_total", `direction="in",tee="lab"`, in},
		{"chartee_stream_offset_bytes", `tee="lab"`, out},
		{"chartee_backend_bytes_total", `backend="ops",direction="out",tee="lab"`, out},
		{"chartee_backend_bytes_total", `backend="ops",direction="in",tee="lab"`, in},
		{"chartee_backend_bytes_total", `backend="capture",direction="out",tee="lab"`, out},
	}
	var body string
	waitForState(t, "the counters to match what was sent", func() (bool, string) {
		body = scrape(t, url)
		var wrong []string
		for _, w := range want {
			got, ok := sample(body, w.name, w.labels)
			if !ok || got != float64(w.value) {
				wrong = append(wrong, fmt.Sprintf("%s{%s} = %v (present %v), want %d", w.name, w.labels, got, ok, w.value))
			}
		}
		return len(wrong) == 0, strings.Join(wrong, "; ")
	})
	promtoolCheck(t, promtool, body)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	// No keep-alive: no idle connection goroutine outlives the test.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %v %v", url, resp.Status, err)
	}
	return string(b)
}

// promtoolCheck runs `promtool check metrics` (lint included) on a scrape.
func promtoolCheck(t *testing.T, promtool, body string) {
	t.Helper()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() != 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// sample finds the value of the series name{labels} (labels exactly as
// the exposition writes them, sorted) in a text-format scrape.
func sample(body, name, labels string) (float64, bool) {
	prefix := name + "{" + labels + "} "
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}
