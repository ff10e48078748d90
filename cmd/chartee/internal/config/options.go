package config

import (
	"chartee/chardev"
	"chartee/tee"
)

// Options returns the engine options of the tee: its name, frontend and
// failover openers, reconnect pacing, input mode and sizes. Zero values
// keep the engine's defaults. ReadSize is left to the engine.
func (t *Tee) Options() tee.Options {
	opts := tee.Options{
		Name:          t.Name,
		Frontend:      t.Frontend.Opener(),
		Reconnect:     t.Frontend.Reconnect,
		Input:         t.Input,
		ExclusiveIdle: t.ExclusiveIdle,
		InputBuffer:   t.InputBuffer,
		Scrollback:    t.Scrollback,
		DrainTimeout:  t.DrainTimeout,
		InputPacing:   t.Pacing,
	}
	for i := range t.Frontend.Failover {
		opts.Failover = append(opts.Failover, t.Frontend.Failover[i].Opener())
	}
	return opts
}

// Backend returns the backend named name, or nil.
func (t *Tee) Backend(name string) *Backend {
	for _, b := range t.Backends {
		if b.Name == name {
			return b
		}
	}
	return nil
}

// Tee returns the tee named name, or nil.
func (c *Config) Tee(name string) *Tee {
	for _, t := range c.Tees {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// Interface guard: the opener of a device describes itself for status.
var _ chardev.Describer = deviceOpener{}

// Enter is what `ctl send --line` appends for this tee.
func (t *Tee) Enter() []byte {
	if len(t.LineEnding) == 0 {
		return []byte("\r")
	}
	return t.LineEnding
}
