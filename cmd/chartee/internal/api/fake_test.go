package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "chartee/backends" // registers the device types the specs name
	"chartee/chardev/memdev"
	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/tee"
)

const wait = 10 * time.Second

// fakeDaemon implements Daemon over real tees, the way the daemon package
// does, minus config files. Hooks let a test make an operation block or
// fail the way a real device or reload would.
type fakeDaemon struct {
	mu   sync.Mutex
	tees map[string]*tee.Tee

	subscribers atomic.Int32

	// beforeOp, when set, runs at the start of Attach, Swap and
	// SwapFrontend with the operation's context; an error aborts it.
	beforeOp func(ctx context.Context, what string) error
	// reload answers Reload (default: an error, as with no config file).
	reload func(ctx context.Context) (daemon.ReloadReport, error)
	// afterOp receives the operation's context state once it is done.
	afterOp func(ctxErr error)
}

func newFakeDaemon() *fakeDaemon { return &fakeDaemon{tees: map[string]*tee.Tee{}} }

func (d *fakeDaemon) add(t *tee.Tee) {
	d.mu.Lock()
	d.tees[t.Name()] = t
	d.mu.Unlock()
}

func (d *fakeDaemon) Tees() []*tee.Tee {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*tee.Tee
	for _, t := range d.tees {
		out = append(out, t)
	}
	slices.SortFunc(out, func(a, b *tee.Tee) int {
		if a.Name() < b.Name() {
			return -1
		}
		if a.Name() > b.Name() {
			return 1
		}
		return 0
	})
	return out
}

func (d *fakeDaemon) Tee(name string) (*tee.Tee, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tees[name]
	return t, ok
}

func (d *fakeDaemon) get(name string) (*tee.Tee, error) {
	t, ok := d.Tee(name)
	if !ok {
		return nil, fmt.Errorf("daemon: tee %q: %w", name, tee.ErrNotFound)
	}
	return t, nil
}

func (d *fakeDaemon) hook(ctx context.Context, what string) error {
	if d.beforeOp != nil {
		return d.beforeOp(ctx, what)
	}
	return nil
}

func (d *fakeDaemon) done(ctx context.Context) {
	if d.afterOp != nil {
		d.afterOp(ctx.Err())
	}
}

func (d *fakeDaemon) Attach(ctx context.Context, teeName string, b *config.Backend) error {
	defer d.done(ctx)
	t, err := d.get(teeName)
	if err != nil {
		return err
	}
	if err := d.hook(ctx, "attach"); err != nil {
		return err
	}
	if b.IsSource() {
		src, err := b.Listen(ctx)
		if err != nil {
			return err
		}
		if err := t.AttachSource(b.Name, b.Leg, src); err != nil {
			src.Close()
			return err
		}
		return nil
	}
	return t.Attach(ctx, b.Name, b.Leg, b.Opener())
}

func (d *fakeDaemon) Detach(teeName, backend string) error {
	t, err := d.get(teeName)
	if err != nil {
		return err
	}
	return t.Detach(backend)
}

func (d *fakeDaemon) Swap(ctx context.Context, teeName, backend string, b *config.Backend, opts tee.SwapOptions) (tee.SwapReport, error) {
	defer d.done(ctx)
	t, err := d.get(teeName)
	if err != nil {
		return tee.SwapReport{}, err
	}
	if err := d.hook(ctx, "swap"); err != nil {
		return tee.SwapReport{}, err
	}
	if b.IsSource() {
		return tee.SwapReport{}, fmt.Errorf("daemon: swap %s to a listener: %w", backend, daemon.ErrInvalid)
	}
	return t.Swap(ctx, backend, b.Opener(), opts)
}

func (d *fakeDaemon) SwapFrontend(ctx context.Context, teeName string, dev *config.Device) (tee.FrontendSwapReport, error) {
	defer d.done(ctx)
	t, err := d.get(teeName)
	if err != nil {
		return tee.FrontendSwapReport{}, err
	}
	if err := d.hook(ctx, "frontend"); err != nil {
		return tee.FrontendSwapReport{}, err
	}
	return t.SwapFrontend(ctx, dev.Opener())
}

func (d *fakeDaemon) Reload(ctx context.Context) (daemon.ReloadReport, error) {
	defer d.done(ctx)
	if d.reload == nil {
		return daemon.ReloadReport{}, errors.New("daemon: reload: no config file (running the built-in demo)")
	}
	return d.reload(ctx)
}

// Subscribe merges every tee's subscription into one channel.
func (d *fakeDaemon) Subscribe(buf int) (<-chan tee.Event, func()) {
	out := make(chan tee.Event, buf)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, t := range d.Tees() {
		sub := t.Subscribe(buf)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sub.Close()
			for {
				select {
				case e, ok := <-sub.C:
					if !ok {
						return
					}
					select {
					case out <- e:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}()
	}
	d.subscribers.Add(1)
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(stop)
			wg.Wait()
			d.subscribers.Add(-1)
		})
	}
}

// env is a server on a unix socket in a temp dir, serving a fake daemon
// with one tee, "console", on an in-memory frontend.
type env struct {
	t     *testing.T
	d     *fakeDaemon
	srv   *Server
	c     *Client
	sock  string
	front *memdev.Device
	tee   *tee.Tee
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	e := &env{t: t, d: newFakeDaemon(), front: memdev.New("front")}
	e.tee = e.newTee("console", e.front)
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	e.srv = NewServer(e.d, opts)
	e.sock = filepath.Join(t.TempDir(), "chartee.sock")
	if err := e.srv.ServeUnix(e.sock); err != nil {
		t.Fatal(err)
	}
	e.c = NewClient(e.sock)
	t.Cleanup(func() {
		e.shutdown()
		e.c.Close()
		for _, tt := range e.d.Tees() {
			tt.Close()
		}
	})
	return e
}

// newTee starts a tee on front and registers it with the daemon.
func (e *env) newTee(name string, front *memdev.Device) *tee.Tee {
	e.t.Helper()
	tt, err := tee.New(tee.Options{Name: name, Frontend: memdev.Opener(nil, front), DrainTimeout: time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	e.d.add(tt)
	eventually(e.t, "frontend up", func() bool { return tt.Stats().Frontend.Up })
	return tt
}

func (e *env) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("Shutdown: %v", err)
	}
}

// emit feeds the frontend and waits until the tee has read it.
func (e *env) emit(s string) {
	e.t.Helper()
	e.front.Feed([]byte(s))
	if !e.front.WaitFed(wait) {
		e.t.Fatal("frontend output not consumed")
	}
}

func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantAPIError checks that err is an *Error with code and status.
func wantAPIError(t *testing.T, err error, status int, code string) *Error {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v (%T), want *api.Error %s", err, err, code)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("got %d %s (%q), want %d %s", ae.Status, ae.Code, ae.Message, status, code)
	}
	if ae.Message == "" {
		t.Fatalf("error %s has no message", code)
	}
	return ae
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

func newFront() *memdev.Device { return memdev.New("front") }

// syncBuffer is a bytes.Buffer safe for a writer and a polling reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
