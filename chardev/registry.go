package chardev

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Spec is a backend type's typed options (the keys a config file gives it
// besides the common ones: name, type, input, queue, on_overflow, replay).
// Each backend type defines a struct with yaml/json tags that implements it.
type Spec interface {
	// Validate reports missing or impossible options. Errors name the key.
	Validate() error
}

// Factory builds devices of one backend type: Open for a single-stream
// device (which can also serve as a frontend), Listen for a leg source. A
// type that can be either (udp: a fixed remote peer, or one leg per peer)
// sets both, and its spec chooses by implementing SingleStreamer.
type Factory struct {
	// NewSpec returns a pointer to a fresh options struct with the type's
	// defaults filled in; decoders fill it from config, API or CLI.
	NewSpec func() Spec
	// Open builds a single-stream device from a spec made by NewSpec.
	Open func(ctx context.Context, spec Spec) (Chardev, error)
	// Listen builds a leg source from a spec made by NewSpec.
	Listen func(ctx context.Context, spec Spec) (Source, error)
	// Inherit rebuilds, in a process that took over from another, a
	// single-stream device that process carried (Carrier); nil: the type
	// cannot be carried.
	Inherit func(spec Spec, c Carried) (Chardev, error)
	// InheritSource is Inherit for a leg source.
	InheritSource func(spec Spec, c Carried) (Source, error)
	// NotCarried says why a process upgrade cannot carry devices of
	// this type (Inherit and InheritSource nil), for the refusal: "the
	// child process cannot be re-parented".
	NotCarried string
	// Input is whether legs of this type may type into the frontend when
	// the config does not say: true for interactive types, false for
	// captures and ring buffers.
	Input bool
}

// SingleStreamer is implemented by specs of types whose factory has both
// Open and Listen: it says which one this spec means.
type SingleStreamer interface {
	SingleStream() bool
}

// IsSource reports whether spec, made by f.NewSpec, builds a leg source
// (Listen) rather than a single stream (Open).
func (f Factory) IsSource(spec Spec) bool {
	switch {
	case f.Open == nil:
		return true
	case f.Listen == nil:
		return false
	}
	if ss, ok := spec.(SingleStreamer); ok {
		return !ss.SingleStream()
	}
	return true
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Factory{}
)

// Register makes a backend type available by name. Like database/sql's
// Register it panics if the name is taken or the factory is incomplete:
// both are programming errors caught at init.
func Register(typeName string, f Factory) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if typeName == "" {
		panic("chardev: Register with empty type name")
	}
	if f.NewSpec == nil {
		panic("chardev: Register " + typeName + " with nil NewSpec")
	}
	if f.Open == nil && f.Listen == nil {
		panic("chardev: Register " + typeName + ": neither Open nor Listen is set")
	}
	if _, dup := registry[typeName]; dup {
		panic("chardev: Register called twice for type " + typeName)
	}
	registry[typeName] = f
}

// Lookup returns the factory registered for typeName.
func Lookup(typeName string) (Factory, error) {
	registryMu.RLock()
	f, ok := registry[typeName]
	registryMu.RUnlock()
	if !ok {
		return Factory{}, fmt.Errorf("unknown backend type %q (known: %v)", typeName, Types())
	}
	return f, nil
}

// Types lists the registered type names, sorted.
func Types() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Opener opens a single-stream device. The engine holds one per frontend
// candidate and per single-stream leg, so it can reopen after a failure and
// so a swap can open the new device before touching the old one.
type Opener interface {
	Open(ctx context.Context) (Chardev, error)
}

// OpenFunc adapts a function to Opener.
type OpenFunc func(ctx context.Context) (Chardev, error)

// Open calls f.
func (f OpenFunc) Open(ctx context.Context) (Chardev, error) { return f(ctx) }

// Describer is implemented by openers (and devices) that can say what they
// are, for status and logs ("serial /dev/ttyUSB0").
type Describer interface {
	Describe() string
}

// Describe names an opener or device for humans.
func Describe(v any) string {
	if d, ok := v.(Describer); ok {
		return d.Describe()
	}
	return fmt.Sprintf("%T", v)
}

// ControlGranter is implemented by specs of interactive types that have a
// `control` key: whether clients of this backend may change the frontend's
// line settings and modem lines (RFC 2217). The config layer turns it into
// the leg's permission, which the engine enforces.
type ControlGranter interface {
	GrantsControl() bool
}
