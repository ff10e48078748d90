package daemon

import (
	"fmt"
	"slices"
	"strings"
)

// UpgradeBlockers lists, one line per tee, what a process upgrade cannot
// carry to the new binary yet. The upgrade refuses while the list is not
// empty rather than cut a client, a pty leg or a capture.
//
// No device type can hand its file descriptor and state over yet: every
// tee blocks. The list names the frontend and each backend by type (the
// daemon knows types only as config names), so the refusal says exactly
// what would be dropped.
func (d *Daemon) UpgradeBlockers() []string {
	d.mu.RLock()
	rts := make([]*runningTee, 0, len(d.tees))
	for _, rt := range d.tees {
		rts = append(rts, rt)
	}
	d.mu.RUnlock()
	slices.SortFunc(rts, func(a, b *runningTee) int { return strings.Compare(a.name, b.name) })
	var out []string
	for _, rt := range rts {
		rt.mu.Lock()
		parts := []string{"frontend " + rt.cfg.Frontend.Type}
		for _, b := range rt.cfg.Backends {
			parts = append(parts, fmt.Sprintf("backend %s (%s)", b.Name, b.Type))
		}
		rt.mu.Unlock()
		out = append(out, fmt.Sprintf("tee %s: %s cannot be carried yet", rt.name, strings.Join(parts, ", ")))
	}
	return out
}
