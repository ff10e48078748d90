package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/web"
)

// webService is the running browser console.
type webService struct {
	srv  *web.Server
	addr string // bound address
	url  string
	done chan error
}

// startWeb serves the browser console on cfg.Web.Listen. People are
// admitted through the daemon's access gate (the same users, roles,
// session limits and reloads as SSH) and logins go to its audit trail.
func startWeb(cfg *config.Config, d *daemon.Daemon, ln net.Listener, log *slog.Logger) (*webService, error) {
	wc := cfg.Web
	opts := web.Options{
		Consoles: d, Gate: d.Gate(), Audit: d.AuditRecord, Logger: log, TrustedHeader: wc.TrustedHeader,
		Leg: wc.Leg, SessionIdle: wc.SessionIdle, SessionMax: wc.SessionMax,
	}
	scheme := "http"
	if wc.TLS != nil {
		cert, err := tls.LoadX509KeyPair(wc.TLS.Cert, wc.TLS.Key)
		if err != nil {
			return nil, fmt.Errorf("web: tls: %w", err)
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	srv, err := web.New(opts)
	if err != nil {
		return nil, err
	}
	s := &webService{srv: srv, addr: ln.Addr().String(), done: make(chan error, 1)}
	s.url = scheme + "://" + s.addr + "/"
	go func() { s.done <- srv.Serve(ln) }()
	return s, nil
}

// stop closes the browser legs and the listener.
func (s *webService) stop(ctx context.Context) error {
	if s == nil {
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if serr := <-s.done; err == nil {
		err = serr
	}
	return err
}
