package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/net/netutil"
)

// Path is where Serve's mux answers scrapes.
const Path = "/metrics"

// Server limits. A scrape is one small request answered in milliseconds;
// anything slower than these is a broken or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// gatherTimeout is below writeTimeout so a stuck collection is
	// answered with 503 rather than a cut connection.
	gatherTimeout = 20 * time.Second
	// maxConns bounds open connections: a client opening many and sending
	// nothing ties up at most this many, each for readHeaderTimeout.
	maxConns = 64
	// maxInFlight bounds concurrent collections.
	maxInFlight = 8
)

// Registry is a prometheus.Registry holding the standard Go runtime and
// process collectors (and whatever else is registered on it) whose Gather
// adds the Collector's families, built by Collector.Gather rather than
// collected series by series: the registry's per-series checks and sort
// were most of the cost of a scrape of many tees. The Collector's
// descriptors are registered, so a collector whose series would collide
// with the engine's is refused by Register as before.
type Registry struct {
	*prometheus.Registry
	c *Collector
}

var _ prometheus.Gatherer = (*Registry)(nil)

// NewRegistry returns a Registry with c and the standard Go runtime and
// process collectors.
func NewRegistry(c *Collector) *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		describeOnly{c},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return &Registry{Registry: reg, c: c}
}

// Gather returns the registered collectors' families and the Collector's,
// merged in name order. Errors of both are returned together (a
// prometheus.MultiError); the families that could be gathered are still
// returned.
func (r *Registry) Gather() ([]*dto.MetricFamily, error) {
	var errs prometheus.MultiError
	mfs, err := r.Registry.Gather()
	errs.Append(err)
	own, err := r.c.Gather()
	errs.Append(err)
	merged := make([]*dto.MetricFamily, 0, len(mfs)+len(own))
	for len(mfs) > 0 && len(own) > 0 {
		switch c := strings.Compare(mfs[0].GetName(), own[0].GetName()); {
		case c < 0:
			merged, mfs = append(merged, mfs[0]), mfs[1:]
		case c > 0:
			merged, own = append(merged, own[0]), own[1:]
		default:
			errs.Append(fmt.Errorf("metrics: family %s gathered twice; the engine's is not exported", own[0].GetName()))
			own = own[1:]
		}
	}
	merged = append(append(merged, mfs...), own...)
	return merged, errs.MaybeUnwrap()
}

// describeOnly registers a Collector's descriptors, and collects nothing:
// Registry.Gather adds its series.
type describeOnly struct{ c *Collector }

func (d describeOnly) Describe(ch chan<- *prometheus.Desc) { d.c.Describe(ch) }
func (describeOnly) Collect(chan<- prometheus.Metric)      {}

// Handler serves reg in the Prometheus exposition formats. Collection
// errors are logged to logger (nil: slog.Default()) and counted in
// promhttp_metric_handler_errors_total; the series that could be collected
// are still served. A scrape its client abandoned (hung up, timed out) is
// logged at debug level only. Scrapes are counted in
// promhttp_metric_handler_requests_total.
func Handler(reg *Registry, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            handlerLog{logger},
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            reg.Registry,
		MaxRequestsInFlight: maxInFlight,
		Timeout:             gatherTimeout,
	})
	return promhttp.InstrumentMetricHandler(reg.Registry, h)
}

// handlerLog is promhttp's error log. promhttp logs once per metric
// family when sending fails, so a scraper that hangs up or times out
// mid-scrape would write a hundred identical errors; those are the
// client's doing and go to debug. Everything else (collection errors) is
// an error.
type handlerLog struct{ l *slog.Logger }

func (h handlerLog) Println(v ...any) {
	msg := strings.TrimSpace(fmt.Sprintln(v...))
	for _, x := range v {
		if err, ok := x.(error); ok && clientGone(err) {
			h.l.Debug("metrics: scrape abandoned by the client", "err", err)
			return
		}
	}
	h.l.Error("metrics: " + msg)
}

// clientGone reports whether a write failed because the scraper went
// away or its request timed out.
func clientGone(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, http.ErrHandlerTimeout) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// landingPage answers "/" with a small page linking Path, as
// node_exporter does, so a browser pointed at the port finds the metrics.
func landingPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>chartee metrics</title></head>
<body><h1>chartee</h1>
<p>Prometheus metrics: <a href="`+Path+`">`+Path+`</a></p>
</body></html>
`)
}

// NewServer returns an http.Server that answers Path with h, "/" with a
// page linking it (and 404 elsewhere), with every timeout and the header size bounded. It has no
// address: Serve binds it.
func NewServer(h http.Handler) *http.Server {
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	mux.HandleFunc("/{$}", landingPage)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}

// CheckListen validates a metrics listen address: host:port with an
// explicit host, since an empty host (":9100") would bind every interface
// by accident. Binding everything needs an explicit "0.0.0.0:9100" or
// "[::]:9100".
func CheckListen(listen string) error {
	if listen == "" {
		return errors.New("metrics: listen: an address is required (host:port)")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("metrics: listen %q: %w", listen, err)
	}
	if host == "" {
		return fmt.Errorf("metrics: listen %q: the host is empty, which would bind every interface; name one (127.0.0.1%s, or 0.0.0.0%s on purpose)", listen, listen, listen)
	}
	if port == "" {
		return fmt.Errorf("metrics: listen %q: a port is required", listen)
	}
	return nil
}

// Serve listens on listen (see CheckListen) and serves h there with
// NewServer's limits until stop is called. It returns the bound address
// (useful with port 0). ctx bounds the listen and is the base context of
// every request. stop shuts the server down gracefully until its ctx ends,
// then closes the remaining connections; it may be called more than once.
func Serve(ctx context.Context, listen string, h http.Handler) (addr string, stop func(context.Context) error, err error) {
	ln, err := Listen(ctx, listen)
	if err != nil {
		return "", nil, err
	}
	return ln.Addr().String(), ServeListener(ctx, ln, h), nil
}

// Listen binds listen (see CheckListen) for ServeListener.
func Listen(ctx context.Context, listen string) (net.Listener, error) {
	if err := CheckListen(listen); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

// ServeListener serves h on ln (bound by Listen, or inherited from the
// process a chartee upgrade took over from) as Serve does.
func ServeListener(ctx context.Context, ln net.Listener, h http.Handler) (stop func(context.Context) error) {
	srv := NewServer(h)
	srv.BaseContext = func(net.Listener) context.Context { return ctx }
	served := make(chan error, 1)
	go func() { served <- srv.Serve(netutil.LimitListener(ln, maxConns)) }()

	var once sync.Once
	var stopErr error
	return func(sctx context.Context) error {
		once.Do(func() {
			stopErr = srv.Shutdown(sctx)
			if stopErr != nil {
				srv.Close()
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) && stopErr == nil {
				stopErr = fmt.Errorf("metrics: serve: %w", err)
			}
		})
		return stopErr
	}
}
