// Package api is chartee's control API: HTTP + JSON over a unix socket
// (mode 0600) and, optionally, a token-protected TCP listener. Each
// operation has its own endpoint — the review of QEMU's hotswap patch
// rejected overloading one "change" command — and every error is JSON
// {"error": "...", "code": "..."} with a fitting status; a failed operation
// changes nothing.
package api

import (
	"context"
	"time"

	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
)

// Daemon is what the API needs from the running appliance. The daemon
// package implements it; tests use a fake.
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
	Reload(ctx context.Context) (ReloadReport, error)
	// Subscribe streams every tee's events until cancel is called.
	Subscribe(buf int) (events <-chan tee.Event, cancel func())
}

// ReloadReport says what a reload changed.
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
