package config

import (
	"encoding/json"
	"fmt"
	"slices"

	"chartee/chardev"
)

// Inherit completes a swap spec nb from old, the backend it replaces:
// every key nb did not give keeps old's value — the leg keys (input,
// queue, on_overflow, replay) always, and the device's own keys when the
// type is the same. So `ctl swap board raw file,path=board-2.log` moves
// the capture to a new file and keeps its format, direction and
// on_overflow: block; a swap never changes a policy nobody asked to
// change. A spec with no Given list (a whole backend from a config file)
// is returned as it is.
func Inherit(old, nb *Backend) (*Backend, error) {
	if nb.Given == nil || old == nil {
		return nb, nil
	}
	out := *nb
	given := func(k string) bool { return slices.Contains(nb.Given, k) }
	if !given("input") {
		out.Leg.Input = old.Leg.Input
	}
	if !given("queue") {
		out.Leg.Queue = old.Leg.Queue
	}
	if !given("on_overflow") {
		out.Leg.Overflow = old.Leg.Overflow
	}
	if !given("replay") {
		out.Leg.Replay = old.Leg.Replay
	}
	if old.Type != nb.Type {
		return &out, nil
	}
	spec, err := inheritSpec(old, nb, given)
	if err != nil {
		return nil, err
	}
	out.Spec = spec
	out.Canonical = canonical(out.Type, spec)
	if cg, ok := spec.(interface{ GrantsControl() bool }); ok && !given("control") {
		out.Leg.Control = cg.GrantsControl()
	}
	return &out, nil
}

// inheritSpec makes a new spec of nb's type whose keys are nb's where
// given and old's elsewhere, through the specs' own JSON form (their keys
// are the config keys).
func inheritSpec(old, nb *Backend, given func(string) bool) (chardev.Spec, error) {
	var oldKeys, newKeys map[string]json.RawMessage
	if err := roundTrip(old.Spec, &oldKeys); err != nil {
		return nil, err
	}
	if err := roundTrip(nb.Spec, &newKeys); err != nil {
		return nil, err
	}
	for k, v := range oldKeys {
		if !given(k) {
			newKeys[k] = v
		}
	}
	merged, err := json.Marshal(newKeys)
	if err != nil {
		return nil, err
	}
	spec := nb.Factory.NewSpec()
	if err := json.Unmarshal(merged, spec); err != nil {
		return nil, fmt.Errorf("%s: inheriting the options of the swapped backend: %w", nb.Type, err)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%s: with the options inherited from the swapped backend: %w", nb.Type, err)
	}
	return spec, nil
}

func roundTrip(v any, into *map[string]json.RawMessage) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}
