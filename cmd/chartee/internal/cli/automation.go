package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"chartee/cmd/chartee/internal/api"
)

// errNoMatch is a wait that timed out: exit 1, its report already printed.
var errNoMatch = errors.New("no match")

// maxSendFile bounds --file: the daemon's input buffer is 64 KiB by default.
const maxSendFile = 1 << 20

// send is `ctl send TEE [TEXT] [--file F] [--line] [--force]`.
func (r *ctlRun) send(ctx context.Context, args []string) error {
	req := api.SendRequest{Line: r.f.line, Force: r.f.force}
	if len(args) > 1 {
		req.Text = args[1]
	}
	if r.f.file != "" {
		data, err := readSendFile(r.f.file)
		if err != nil {
			return err
		}
		req.Data = data
	}
	if req.Text == "" && req.Data == nil && !req.Line {
		return usageError("send: give TEXT, --file F or --line")
	}
	res, err := r.c.Send(ctx, args[0], req)
	if err != nil {
		return err
	}
	if r.f.json {
		return r.printJSON(res)
	}
	fmt.Fprintf(r.out, "sent %d bytes to tee %s; its answer starts at or after offset %d (wait --from %d)\n",
		res.Written, args[0], res.Offset, res.Offset)
	return nil
}

func readSendFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--file: %w", err)
	}
	defer f.Close()
	buf := make([]byte, maxSendFile+1)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("--file %s: %w", path, err)
	}
	if n > maxSendFile {
		return nil, fmt.Errorf("--file %s: larger than %d bytes", path, maxSendFile)
	}
	return buf[:n], nil
}

// sendBreak is `ctl break TEE [--duration D]`.
func (r *ctlRun) sendBreak(ctx context.Context, args []string) error {
	req := api.BreakRequest{}
	if r.f.duration > 0 {
		req.Duration = r.f.duration.String()
	}
	res, err := r.c.Break(ctx, args[0], req)
	if err != nil {
		return err
	}
	if r.f.json {
		return r.printJSON(res)
	}
	fmt.Fprintf(r.out, "sent a %s break to tee %s\n", res.Duration, args[0])
	return nil
}

// sysrq is `ctl sysrq TEE KEY`.
func (r *ctlRun) sysrq(ctx context.Context, args []string) error {
	res, err := r.c.Sysrq(ctx, args[0], api.SysrqRequest{Key: args[1], Force: r.f.force})
	if err != nil {
		return err
	}
	if r.f.json {
		return r.printJSON(res)
	}
	fmt.Fprintf(r.out, "sent break + SysRq %s to tee %s at offset %d\n", res.Key, args[0], res.Offset)
	return nil
}

// wait is `ctl wait TEE REGEX [--timeout D] [--from now|start|N] [--strip-ansi]`.
func (r *ctlRun) wait(ctx context.Context, args []string) error {
	if _, err := regexp.Compile(args[1]); err != nil {
		return usageError("wait: pattern: %v", err)
	}
	if _, _, err := api.ParseFrom(r.f.from); err != nil {
		return usageError("--from: %v", err)
	}
	req := api.WaitRequest{Pattern: args[1], From: r.f.from, StripANSI: r.f.stripANSI}
	if r.f.timeout > 0 {
		req.Timeout = r.f.timeout.String()
	}
	res, err := r.c.Wait(ctx, args[0], req)
	if err != nil {
		return err
	}
	if r.f.json {
		if err := r.printJSON(res); err != nil {
			return err
		}
	} else if res.Matched {
		fmt.Fprintf(r.out, "%d %s\n", res.Offset, res.Match)
	} else {
		fmt.Fprintf(r.out, "no match for %q on tee %s within %s; last lines seen:\n", args[1], args[0], timeoutOr(r.f.timeout))
		for _, l := range res.LastLines {
			fmt.Fprintf(r.out, "  %s\n", l)
		}
	}
	if !res.Matched {
		return errNoMatch
	}
	return nil
}

func timeoutOr(d time.Duration) string {
	if d > 0 {
		return d.String()
	}
	return "60s"
}
