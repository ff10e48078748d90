package watch

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the watch counters. Register Collectors with the daemon's
// registry. A nil *Metrics counts nothing.
type Metrics struct {
	matches  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// NewMetrics returns unregistered counters.
func NewMetrics() *Metrics {
	return &Metrics{
		matches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chartee_watch_matches_total",
			Help: "Matches of a watch's pattern in a tee's output (cooldown does not hide them).",
		}, []string{"tee", "watch"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chartee_watch_action_failures_total",
			Help: "Watch actions that failed: exec exit or timeout, webhook out of retries, send refused, action queue full.",
		}, []string{"tee", "watch", "action"}),
	}
}

// Collectors are the counters, to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.matches, m.failures}
}

func (m *Metrics) match(teeName, watch string) {
	if m != nil {
		m.matches.WithLabelValues(teeName, watch).Inc()
	}
}

func (m *Metrics) failure(teeName, watch, action string) {
	if m != nil {
		m.failures.WithLabelValues(teeName, watch, action).Inc()
	}
}
