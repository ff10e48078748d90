package config

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"chartee/chardev"
)

// IsSource reports whether the device is a leg source (a listening socket
// with one leg per client) rather than a single stream.
func (d *Device) IsSource() bool { return d.Factory.IsSource(d.Spec) }

// Describe names the device for logs, status and the escape status line
// in a compact form ("serial /dev/ttyUSB0 115200 8N1", "tcp-listen
// 127.0.0.1:7000 telnet"): the spec's own description if it has one, else
// its type and most telling option. The whole spec is in Canonical, and
// in the API's JSON.
func (d *Device) Describe() string {
	if ds, ok := d.Spec.(chardev.Describer); ok {
		return ds.Describe()
	}
	b, err := json.Marshal(d.Spec)
	var opts map[string]any
	if err != nil || json.Unmarshal(b, &opts) != nil {
		return d.Type
	}
	out := d.Type
	for _, key := range []string{"path", "listen", "address", "remote", "link", "command", "hostname", "subject", "size"} {
		switch v := opts[key].(type) {
		case string:
			if v != "" {
				out += " " + v
			}
		case []any:
			words := make([]string, len(v))
			for i, x := range v {
				words[i] = fmt.Sprint(x)
			}
			if len(words) > 0 {
				out += " " + strings.Join(words, " ")
			}
		}
		if out != d.Type {
			break
		}
	}
	if p, ok := opts["protocol"].(string); ok && p != "" && p != "raw" {
		out += " " + p
	}
	return out
}

// Opener returns an opener for a single-stream device, for the engine to
// (re)open it whenever it needs: at attach, at every frontend reconnect, at
// a swap. Each call of Open opens a new device from the same validated spec.
func (d *Device) Opener() chardev.Opener {
	return deviceOpener{d}
}

// Listen builds the leg source of a source device.
func (d *Device) Listen(ctx context.Context) (chardev.Source, error) {
	if d.Factory.Listen == nil || !d.IsSource() {
		return nil, fmt.Errorf("%s: not a listening backend", d.Type)
	}
	return d.Factory.Listen(ctx, d.Spec)
}

type deviceOpener struct{ d *Device }

func (o deviceOpener) Open(ctx context.Context) (chardev.Chardev, error) {
	if o.d.Factory.Open == nil || o.d.IsSource() {
		return nil, fmt.Errorf("%s: a listening backend cannot be opened as a single stream", o.d.Type)
	}
	return o.d.Factory.Open(ctx, o.d.Spec)
}

func (o deviceOpener) Describe() string { return o.d.Describe() }

// SetTee tells the device's spec which tee it belongs to, for specs whose
// defaults depend on it (chardev.TeeNamer), and re-validates it then: a
// default that was not judged before now is.
func (d *Device) SetTee(name string) error {
	tn, ok := d.Spec.(chardev.TeeNamer)
	if !ok {
		return nil
	}
	tn.SetTee(name)
	if err := d.Spec.Validate(); err != nil {
		return fmt.Errorf("%s: %w", d.Type, err)
	}
	return nil
}

// nameDevices gives every device of t its tee's name (see Device.SetTee).
// Validation ran when the device was decoded, and a tee name can only
// make a default valid, not an explicit value invalid, so errors are not
// possible here for the registered types; a spec that disagrees still
// fails when it opens.
func (t *Tee) nameDevices() {
	_ = t.Frontend.SetTee(t.Name)
	for i := range t.Frontend.Failover {
		_ = t.Frontend.Failover[i].SetTee(t.Name)
	}
	for _, b := range t.Backends {
		if b != nil {
			_ = b.SetTee(t.Name)
		}
	}
}
