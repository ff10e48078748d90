package cli

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/api"
	"chartee/cmd/chartee/internal/daemon"
	"chartee/tee"
)

// The text output of ctl: aligned tables for people. Scripts use --json,
// which is the API's own JSON, so this format may change.

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// writeList prints one line per tee.
func writeList(w io.Writer, ts []api.TeeStatus) error {
	if len(ts) == 0 {
		_, err := fmt.Fprintln(w, "no tees")
		return err
	}
	tw := newTable(w)
	problems := false
	for _, t := range ts {
		problems = problems || (!t.Frontend.Up && t.Frontend.LastError != "")
	}
	header := "TEE\tFRONTEND\tUP\tOFFSET\tBACKENDS\tLEGS"
	if problems {
		header += "\tPROBLEM"
	}
	fmt.Fprintln(tw, header)
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d",
			t.Name, orDash(t.Frontend.Device), yesNo(t.Frontend.Up), t.Offset, len(t.Backends), len(t.Legs))
		if problems {
			p := "-"
			if !t.Frontend.Up && t.Frontend.LastError != "" {
				p = t.Frontend.LastError + " (retrying)"
			}
			fmt.Fprintf(tw, "\t%s", p)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// writeShow prints everything about one tee. now makes leg ages
// reproducible in tests.
func writeShow(w io.Writer, t api.TeeStatus, now time.Time) error {
	tw := newTable(w)
	f := t.Frontend
	fmt.Fprintf(tw, "tee:\t%s\n", t.Name)
	fmt.Fprintf(tw, "offset:\t%d\n", t.Offset)
	input := t.InputMode
	if t.WriteLock != "" {
		holder := t.WriteLock
		if t.WriteLockUser != "" {
			holder = t.WriteLockUser + " (" + t.WriteLock + ")"
		}
		input += " (write lock held by " + holder + ")"
	}
	fmt.Fprintf(tw, "input:\t%s\n", input)
	state := "up"
	if !f.Up {
		state = "DOWN, retrying"
	}
	candidate := "primary"
	if f.Candidate > 0 {
		candidate = "failover #" + strconv.Itoa(f.Candidate)
	}
	fmt.Fprintf(tw, "frontend:\t%s (%s, %s)\n", orDash(f.Device), state, candidate)
	if f.LastError != "" {
		fmt.Fprintf(tw, "\tlast error: %s\n", f.LastError)
	}
	fmt.Fprintf(tw, "\tout %d B, in %d B, reconnects %d, failovers %d, failed opens %d, input dropped %d B, input pending %d B\n",
		f.BytesOut, f.BytesIn, f.Reconnects, f.Failovers, f.OpenFailures, f.InputDropped, f.InputPending)
	fmt.Fprintf(tw, "line:\t%s\n", lineString(t.Line))
	fmt.Fprintf(tw, "swaps:\t%s\n", swapsString(t.Swaps))
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(t.Backends) == 0 {
		fmt.Fprintln(w, "no backends")
	} else {
		tw = newTable(w)
		fmt.Fprintln(tw, "BACKEND\tDEVICE\tINPUT\tOVERFLOW\tQUEUE\tLEGS\tOUT\tIN\tDROPPED\tDISCARDED\tQUEUED")
		for _, b := range t.Backends {
			dev := b.Device
			if b.Source != "" {
				dev = "listening on " + b.Source
			}
			queue := "-"
			if b.Queue > 0 {
				queue = chardev.Size(b.Queue).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n",
				b.Name, orDash(dev), yesNo(b.Input), b.Overflow, queue, b.Legs,
				b.BytesOut, b.BytesIn, b.Dropped, b.Discarded, b.QueueBytes)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if len(t.Legs) == 0 {
		_, err := fmt.Fprintln(w, "no legs")
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "LEG\tBACKEND\tPEER\tAGE\tOUT\tIN\tDROPPED\tDISCARDED\tQUEUED\tFIRST\tNEXT\tUSER\tROLE")
	for _, l := range t.Legs {
		age := "-"
		if !l.Since.IsZero() {
			age = now.Sub(l.Since).Truncate(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n",
			l.Name, l.Backend, orDash(l.Peer), age, l.BytesOut, l.BytesIn, l.Dropped, l.Discarded,
			l.QueueBytes, l.FirstOffset, l.NextOffset, orDash(l.User), orDash(l.Role))
	}
	return tw.Flush()
}

// lineString describes line settings; zero values were never set.
func lineString(l api.LineStatus) string {
	if l.Baud == 0 && l.DataBits == 0 {
		return "not set"
	}
	var parts []string
	if l.Baud > 0 {
		parts = append(parts, strconv.Itoa(l.Baud)+" baud")
	}
	if l.DataBits > 0 {
		parts = append(parts, strconv.Itoa(l.DataBits)+" data bits")
	}
	if l.Parity != "" {
		parts = append(parts, "parity "+l.Parity)
	}
	if l.StopBits != "" {
		parts = append(parts, "stop bits "+l.StopBits)
	}
	if l.Flow != "" {
		parts = append(parts, "flow "+l.Flow)
	}
	return strings.Join(parts, ", ")
}

// swapsString lists the nonzero swap counters.
func swapsString(sc []tee.SwapCount) string {
	var parts []string
	for _, s := range sc {
		if s.Count > 0 {
			parts = append(parts, fmt.Sprintf("%s %s %d", s.Kind, s.Result, s.Count))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func writeSwapReport(w io.Writer, teeName string, r tee.SwapReport) {
	fmt.Fprintf(w, "swapped %s/%s (%s) in %v\n", teeName, r.Backend, r.Mode, r.Elapsed.Round(time.Microsecond))
	tw := newTable(w)
	if r.Effective != "" {
		fmt.Fprintf(tw, "  now:\t%s\n", r.Effective)
	}
	fmt.Fprintf(tw, "  cut at offset:\t%d\n", r.Cut)
	fmt.Fprintf(tw, "  new leg starts at:\t%d\n", r.NewStart)
	fmt.Fprintf(tw, "  drained by old leg:\t%d B\n", r.Drained)
	fmt.Fprintf(tw, "  handed over:\t%d B\n", r.Handed)
	if r.Overlapped > 0 || r.Mode == tee.Overlap.String() {
		fmt.Fprintf(tw, "  sent to both:\t%d B\n", r.Overlapped)
	}
	if r.OldErr != "" {
		fmt.Fprintf(tw, "  old leg failed:\t%s\n", r.OldErr)
	}
	tw.Flush()
}

func writeFrontendSwapReport(w io.Writer, teeName string, r tee.FrontendSwapReport) {
	fmt.Fprintf(w, "swapped the frontend of %s in %v\n", teeName, r.Elapsed.Round(time.Microsecond))
	tw := newTable(w)
	fmt.Fprintf(tw, "  from:\t%s\n", orDash(r.From))
	fmt.Fprintf(tw, "  to:\t%s\n", r.To)
	fmt.Fprintf(tw, "  at offset:\t%d\n", r.Offset)
	fmt.Fprintf(tw, "  line settings replayed:\t%s\n", yesNo(r.LineApplied))
	fmt.Fprintf(tw, "  input carried over:\t%d B\n", r.InputCarry)
	tw.Flush()
}

func writeReloadReport(w io.Writer, r api.ReloadReport) {
	fmt.Fprintf(w, "reloaded %s in %v\n", r.File, r.Elapsed.Round(time.Microsecond))
	changes := []struct {
		what  string
		names []string
	}{
		{"tees started", r.Started}, {"tees stopped", r.Stopped},
		{"backends attached", r.Attached}, {"backends detached", r.Detached},
		{"backends swapped", r.Swapped}, {"backends updated", r.Updated},
		{"frontends swapped", r.Frontend},
	}
	tw := newTable(w)
	changed := false
	for _, c := range changes {
		if len(c.names) > 0 {
			fmt.Fprintf(tw, "  %s:\t%s\n", c.what, strings.Join(c.names, ", "))
			changed = true
		}
	}
	tw.Flush()
	if !changed {
		fmt.Fprintln(w, "  nothing changed")
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "  warning: %s\n", warn)
	}
}

// writeEvent prints one event as one line.
func writeEvent(w io.Writer, ev tee.Event) {
	var b strings.Builder
	b.WriteString(ev.Time.Format("15:04:05.000"))
	b.WriteString(" " + ev.Tee + " " + string(ev.Kind))
	if ev.Backend != "" {
		b.WriteString(" backend=" + ev.Backend)
	}
	if ev.Leg != "" {
		b.WriteString(" leg=" + ev.Leg)
	}
	b.WriteString(" offset=" + strconv.FormatUint(ev.Offset, 10))
	for _, kv := range [][2]string{{"user", ev.User}, {"role", ev.Role}, {"source", ev.Source},
		{"auth", ev.Auth}, {"key", ev.KeyFingerprint}, {"from_user", ev.FromUser}, {"from_leg", ev.FromLeg}} {
		if kv[1] != "" {
			b.WriteString(" " + kv[0] + "=" + kv[1])
		}
	}
	if s := ev.Swap; s != nil {
		fmt.Fprintf(&b, " mode=%s cut=%d handed=%d drained=%d", s.Mode, s.Cut, s.Handed, s.Drained)
	}
	if s := ev.FrontendSwap; s != nil {
		fmt.Fprintf(&b, " to=%q", s.To)
	}
	if ev.Reason != "" {
		b.WriteString(" reason=" + strconv.Quote(ev.Reason))
	}
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeAccess prints the SSH service, users with their roles, and the live
// sessions.
func writeAccess(w io.Writer, info daemon.AccessInfo) error {
	tw := newTable(w)
	if s := info.SSH; s != nil {
		fmt.Fprintf(tw, "ssh:\t%s\n", s.Listen)
		fmt.Fprintf(tw, "host key:\t%s (%s)\n", s.Fingerprint, s.HostKey)
		fmt.Fprintf(tw, "known_hosts:\t%s\n", s.KnownHosts)
	} else {
		fmt.Fprintf(tw, "ssh:\toff\n")
	}
	fmt.Fprintf(tw, "audit:\t%s\n", orDash(info.Audit))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "USER\tGROUPS\tROLES")
	for _, u := range info.Users {
		var roles []string
		for t, r := range u.Roles {
			roles = append(roles, t+"="+r)
		}
		sort.Strings(roles)
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, orDash(strings.Join(u.Groups, ",")), orDash(strings.Join(roles, " ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(info.Sessions) == 0 {
		_, err := fmt.Fprintln(w, "no sessions")
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "USER\tTEE\tROLE\tSERVICE\tFROM\tAUTH")
	for _, s := range info.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.User, s.Tee, s.Role, s.Service, s.Source, s.Auth)
	}
	return tw.Flush()
}
