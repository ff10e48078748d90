package config

import (
	"time"

	"go.yaml.in/yaml/v3"

	"chartee/chardev"
	"chartee/tee"
)

// Web configures the browser console service (package web). Listen empty:
// none.
type Web struct {
	Listen string
	TLS    *WebTLS
	// TrustedHeader names a header set by an authenticating reverse proxy
	// (X-Remote-User); empty trusts none.
	TrustedHeader string
	// Leg options of every browser viewer: replay for a first connection,
	// queue, overflow.
	Leg         tee.LegOptions
	SessionIdle time.Duration
	SessionMax  time.Duration
}

// WebTLS is the web service's certificate and key (PEM files).
type WebTLS struct {
	Cert string
	Key  string
}

// WebDefaults are the web service's defaults: a viewer gets up to 1 MiB
// of history (bounded by the tee's scrollback), a 1 MiB queue, and drops
// (reported to the page as exact byte counts) when it cannot keep up.
var WebDefaults = Web{
	Leg:         tee.LegOptions{Input: true, Replay: 1 << 20, Queue: 1 << 20, Overflow: tee.Drop},
	SessionIdle: 12 * time.Hour,
	SessionMax:  7 * 24 * time.Hour,
}

// Claims is the web listener and the TLS files.
func (s Web) Claims() []chardev.Claim {
	c := chardev.Bind("tcp", "listen", s.Listen)
	c.CanEncrypt, c.Encrypted = true, s.TLS != nil
	return []chardev.Claim{c}
}

var (
	webKeys    = []string{"listen", "on_overflow", "queue", "replay", "session_idle", "session_max", "tls", "trusted_header"}
	webTLSKeys = []string{"cert", "key"}
)

// webSection decodes the web section.
func (w *walker) webSection(n *yaml.Node, path string, s *Web) {
	*s = WebDefaults
	ps := w.fixedSection(n, path, webKeys)
	for _, p := range ps {
		pp := join(path, p.name)
		switch p.name {
		case "listen":
			s.Listen = w.listenAddr(p.val, pp)
		case "tls":
			s.TLS = w.webTLS(p.val, pp)
		case "trusted_header":
			s.TrustedHeader = w.str(p.val, pp)
		case "replay", "queue", "on_overflow":
			w.legKey(p, pp, &s.Leg)
		case "session_idle":
			s.SessionIdle = w.duration(p.val, pp)
		case "session_max":
			s.SessionMax = w.duration(p.val, pp)
		}
	}
	if s.Listen == "" {
		w.errf(n, path, "listen: required (host:port of the browser console, e.g. 127.0.0.1:8080)")
	}
	w.claimAll(n, ps, path, s.Claims())
	for _, c := range s.Claims() {
		if c.Exposed && !c.Encrypted {
			at, node := w.claimAt(n, ps, path, c)
			w.warnf(node, at, "%s is reachable from the network without TLS: passwords and session cookies cross it in clear; add web.tls or bind 127.0.0.1", s.Listen)
		}
	}
}

func (w *walker) webTLS(n *yaml.Node, path string) *WebTLS {
	t := &WebTLS{}
	for _, p := range w.fixedSection(n, path, webTLSKeys) {
		switch p.name {
		case "cert":
			t.Cert = w.str(p.val, join(path, p.name))
		case "key":
			t.Key = w.str(p.val, join(path, p.name))
		}
	}
	if t.Cert == "" || t.Key == "" {
		w.errf(n, path, "cert and key: both required (PEM files)")
	}
	return t
}
