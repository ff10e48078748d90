package config

import (
	"strings"
	"testing"
	"time"

	"chartee/tee"
)

const webUsers = `
access:
  users:
    - name: alice
      password: "$argon2id$v=19$m=64,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$2QkZOTRIxTc6GsTtwq0AbTgF3lrWhq1E7EaJtDhMBXI"
tees:
  - name: c0
    frontend: {type: null}
    access: {operate: [alice]}
`

func TestWebSectionParses(t *testing.T) {
	cfg := mustParse(t, webUsers+`
web:
  listen: 127.0.0.1:8080
  trusted_header: X-Remote-User
  replay: 4KiB
  on_overflow: disconnect
  session_idle: 1h
`)
	w := cfg.Web
	if w.Listen != "127.0.0.1:8080" || w.TLS != nil || w.TrustedHeader != "X-Remote-User" || w.Leg.Replay != 4096 ||
		w.Leg.Overflow != tee.Disconnect || w.Leg.Queue != WebDefaults.Leg.Queue || w.SessionIdle != time.Hour ||
		w.SessionMax != WebDefaults.SessionMax {
		t.Fatalf("web %+v", w)
	}
	if cfg.Warnings != nil {
		t.Fatalf("loopback web listener warned: %v", cfg.Warnings)
	}
}

func TestWebExposedWithoutTLSWarns(t *testing.T) {
	cfg := mustParse(t, webUsers+"web: {listen: 0.0.0.0:8080}\n")
	if !strings.Contains(cfg.Warnings.Error(), "web.listen") || !strings.Contains(cfg.Warnings.Error(), "without TLS") {
		t.Fatalf("warnings: %v", cfg.Warnings)
	}
	cfg = mustParse(t, webUsers+"web: {listen: 0.0.0.0:8080, tls: {cert: /c.pem, key: /k.pem}}\n")
	if cfg.Warnings != nil || cfg.Web.TLS.Cert != "/c.pem" {
		t.Fatalf("with TLS: %v %+v", cfg.Warnings, cfg.Web.TLS)
	}
}

func TestWebSectionErrors(t *testing.T) {
	for text, want := range map[string]string{
		webUsers + "web: {listn: 127.0.0.1:8080}\n":                                   `did you mean "listen"`,
		webUsers + "web: {trusted_header: X-User}\n":                                  "listen: required",
		webUsers + "web: {listen: 127.0.0.1:8080, tls: {cert: /c.pem}}\n":             "cert and key: both required",
		webUsers + "web: {listen: 127.0.0.1:8080, on_overflow: sometimes}\n":          "sometimes",
		"tees: [{name: c0, frontend: {type: null}}]\nweb: {listen: 127.0.0.1:8080}\n": "the web service needs users",
	} {
		errs := parseErrs(t, text)
		if !strings.Contains(errs.Error(), want) {
			t.Errorf("%q: errors %v, want %q", text, errs, want)
		}
	}
}
