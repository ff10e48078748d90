// Package api is chartee's control API: HTTP + JSON over a unix socket
// (mode 0600) and, optionally, a token-protected TCP listener. Each
// operation has its own endpoint — the review of QEMU's hotswap patch
// rejected overloading one "change" command — and every error is JSON
// {"error": "...", "code": "...", "details": [...]} with a fitting status;
// a failed operation changes nothing.
//
// Endpoints (bodies and answers are JSON unless said otherwise):
//
//	GET    /healthz                                  {"status":"ok"}; open on TCP too
//	GET    /v1/tees                                  TeeList
//	GET    /v1/tees/{tee}                            TeeStatus
//	POST   /v1/tees/{tee}/backends                   body: a backend as in the config file; 201 + TeeStatus
//	DELETE /v1/tees/{tee}/backends/{name}            TeeStatus
//	POST   /v1/tees/{tee}/backends/{name}/swap       body: SwapRequest; tee.SwapReport
//	POST   /v1/tees/{tee}/frontend/swap              body: {"spec": {device}}; tee.FrontendSwapReport
//	GET    /v1/tees/{tee}/backends/{name}/data       ?offset=N&follow=1; raw bytes (see HeaderOffset)
//	GET    /v1/events                                NDJSON stream of tee.Event
//	POST   /v1/reload                                ReloadReport
//	POST   /v1/upgrade                               body: UpgradeRequest; UpgradeReport (then this process exits)
//	POST   /v1/tees/{tee}/send                       body: SendRequest; SendResult (bytes written, stream offset)
//	POST   /v1/tees/{tee}/break                      body: BreakRequest; BreakResult
//	POST   /v1/tees/{tee}/sysrq                      body: SysrqRequest; SysrqResult
//	POST   /v1/tees/{tee}/wait                       body: WaitRequest; WaitResult (held until match or timeout)
//	GET    /v1/access                                daemon.AccessInfo: SSH host key, users and roles, sessions
//
// Statuses: 400 bad_request, invalid_config (Details: every problem) or
// not_a_ringbuf; 401 unauthorized; 404 not_found; 405 method_not_allowed;
// 403 forbidden (the exclusive write lock is held: send --force);
// 409 exists or input_full; 413 too_large; 422 open_failed (a device
// would not open) or unsupported (a frontend that cannot send a break);
// 409 upgrade_refused (something cannot be carried; Details say what);
// 500 internal; 502 upgrade_failed (the new binary did not take over and
// the daemon rolled back; the message says why); 503 closed; 504 timeout.
package api

import (
	"context"
	"time"

	"chartee/cmd/chartee/internal/config"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/tee"
)

// Daemon is what the API needs from the running appliance. The daemon
// package implements it; tests use a fake. Its types are the domain's
// (config, daemon, tee); the API translates them for the wire.
type Daemon interface {
	// Tees lists the running tees, sorted by name.
	Tees() []*tee.Tee
	// Tee finds a running tee.
	Tee(name string) (*tee.Tee, bool)
	// Attach adds a backend to a tee (opening its device first).
	Attach(ctx context.Context, teeName string, b *config.Backend) error
	// Detach removes a backend and all its legs.
	Detach(teeName, backend string) error
	// Swap hot-swaps a backend to a new spec.
	Swap(ctx context.Context, teeName, backend string, b *config.Backend, opts tee.SwapOptions) (tee.SwapReport, error)
	// SwapFrontend replaces a tee's frontend device.
	SwapFrontend(ctx context.Context, teeName string, d *config.Device) (tee.FrontendSwapReport, error)
	// Reload re-reads the config file and applies the difference.
	Reload(ctx context.Context) (daemon.ReloadReport, error)
	// Subscribe streams every tee's events until cancel is called.
	Subscribe(buf int) (events <-chan tee.Event, cancel func())
}

var _ Daemon = (*daemon.Daemon)(nil)

// AccessReporter is implemented by daemons with an access configuration
// (users, the SSH service): GET /v1/access answers with it.
type AccessReporter interface {
	AccessInfo() daemon.AccessInfo
}

var _ AccessReporter = (*daemon.Daemon)(nil)

// ReloadReport is the answer to POST /v1/reload: what a reload changed
// (daemon.ReloadReport on the wire).
type ReloadReport struct {
	File     string        `json:"file"`
	Started  []string      `json:"tees_started,omitempty"`
	Stopped  []string      `json:"tees_stopped,omitempty"`
	Attached []string      `json:"backends_attached,omitempty"`
	Detached []string      `json:"backends_detached,omitempty"`
	Swapped  []string      `json:"backends_swapped,omitempty"`
	Updated  []string      `json:"backends_updated,omitempty"`
	Frontend []string      `json:"frontends_swapped,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
	Elapsed  time.Duration `json:"duration_ns"`
}

// reloadReport translates the daemon's report for the wire.
func reloadReport(r daemon.ReloadReport) ReloadReport {
	return ReloadReport{
		File: r.File, Started: r.Started, Stopped: r.Stopped,
		Attached: r.Attached, Detached: r.Detached, Swapped: r.Swapped,
		Updated: r.Updated, Frontend: r.Frontend, Warnings: r.Warnings,
		Elapsed: r.Elapsed,
	}
}
