package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"chartee/cmd/chartee/internal/api"
	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/metrics"
)

// bindings are the sockets `run` binds before the daemon opens any
// device (metrics, control socket and TCP listener, web console), taken
// over from a previous process when it hands them on (inh), and noted in
// carry for the next one.
type bindings struct {
	inh         *inheritance
	info        *readyInfo
	bound       []*api.Bound
	webLn       net.Listener
	stopMetrics func(context.Context) error
	carry       []carried
}

// bindAll binds every socket cfg asks for; on error the caller closes
// what was bound. handler makes the metrics handler, only when needed.
func (bs *bindings) bindAll(ctx context.Context, cfg *config.Config, token string, handler func() http.Handler) error {
	if cfg.Metrics.Listen != "" {
		if err := bs.bindMetrics(ctx, cfg.Metrics.Listen, handler()); err != nil {
			return err
		}
	}
	if sock := cfg.Control.Socket; sock != "" {
		if err := bs.bindControlSocket(sock); err != nil {
			return err
		}
	}
	if cfg.Web.Listen != "" {
		if err := bs.bindWeb(cfg.Web.Listen); err != nil {
			return fmt.Errorf("web: %w", err)
		}
	}
	if cfg.Control.Listen != "" {
		return bs.bindControlTCP(cfg.Control.Listen, token)
	}
	return nil
}

// listen binds a TCP address, or takes it over when inherited under name.
func (bs *bindings) listen(ctx context.Context, name, addr string, listen func(context.Context, string) (net.Listener, error)) (net.Listener, error) {
	var ln net.Listener
	var err error
	if f := bs.inh.take(name, addr); f != nil {
		ln, err = inheritedListener(f)
	} else {
		ln, err = listen(ctx, addr)
	}
	if err != nil {
		return nil, err
	}
	if tl, ok := ln.(*net.TCPListener); ok {
		bs.carry = append(bs.carry, carried{name, addr, tl.File})
	}
	return ln, nil
}

func (bs *bindings) bindMetrics(ctx context.Context, addr string, h http.Handler) error {
	ln, err := bs.listen(ctx, carryMetrics, addr, metrics.Listen)
	if err != nil {
		return err
	}
	bs.stopMetrics = metrics.ServeListener(ctx, ln, h)
	bs.info.MetricsURL = "http://" + ln.Addr().String() + metrics.Path
	return nil
}

func (bs *bindings) bindControlSocket(sock string) error {
	var b *api.Bound
	var err error
	if f := bs.inh.take(carryControlUnix, sock); f != nil {
		b, err = api.InheritUnix(sock, f)
	} else {
		b, err = listenControlSocket(sock)
	}
	if err != nil {
		return err
	}
	bs.bound = append(bs.bound, b)
	bs.carry = append(bs.carry, carried{carryControlUnix, sock, b.File})
	bs.info.Socket = sock
	return nil
}

func (bs *bindings) bindWeb(addr string) error {
	ln, err := bs.listen(context.Background(), carryWeb, addr, func(_ context.Context, addr string) (net.Listener, error) {
		return net.Listen("tcp", addr)
	})
	if err != nil {
		return err
	}
	bs.webLn = ln
	return nil
}

func (bs *bindings) bindControlTCP(addr, token string) error {
	var b *api.Bound
	var err error
	if f := bs.inh.take(carryControlTCP, addr); f != nil {
		b, err = api.InheritTCP(f, token)
	} else {
		b, err = api.ListenTCP(addr, token)
	}
	if err != nil {
		return err
	}
	bs.bound = append(bs.bound, b)
	bs.carry = append(bs.carry, carried{carryControlTCP, addr, b.File})
	bs.info.ControlTCP = b.Addr().String()
	return nil
}

// close lets go of every socket bound, when the start fails before they
// are served.
func (bs *bindings) close() {
	for _, b := range bs.bound {
		b.Close()
	}
	if bs.webLn != nil {
		bs.webLn.Close()
	}
	if bs.stopMetrics != nil {
		bs.stopMetrics(context.Background())
	}
}

// services are what `run` serves over the daemon: the control API, the
// web console and the metrics endpoint.
type services struct {
	log         *slog.Logger
	d           *daemon.Daemon
	srv         *api.Server
	web         *webService
	stopMetrics func(context.Context) error
}

// start serves the control API on every bound socket and the web console
// on its listener. On error, the sockets not yet served are closed; the
// caller shuts down the rest.
func (s *services) start(cfg *config.Config, bs *bindings) error {
	for i, b := range bs.bound {
		if err := s.srv.ServeBound(b); err != nil {
			for _, rest := range bs.bound[i+1:] {
				rest.Close()
			}
			if bs.webLn != nil {
				bs.webLn.Close()
			}
			return err
		}
	}
	if bs.webLn != nil {
		web, err := startWeb(cfg, s.d, bs.webLn, s.log)
		if err != nil {
			bs.webLn.Close()
			return err
		}
		s.web = web
	}
	return nil
}

// shutdown stops the control API and web console (bounded by
// apiShutdownTimeout), then the daemon, then metrics.
func (s *services) shutdown(ctx context.Context) {
	actx, acancel := context.WithTimeout(ctx, apiShutdownTimeout)
	if err := s.srv.Shutdown(actx); err != nil {
		s.log.Warn("control API shutdown", "err", err)
	}
	if err := s.web.stop(actx); err != nil {
		s.log.Warn("web console shutdown", "err", err)
	}
	acancel()
	if err := s.d.Shutdown(ctx); err != nil {
		s.log.Warn("shutdown did not finish cleanly", "err", err)
	}
	if s.stopMetrics != nil {
		if err := s.stopMetrics(ctx); err != nil {
			s.log.Warn("metrics shutdown", "err", err)
		}
	}
}
