package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"chartee/chardev"
	"chartee/cmd/chartee/internal/api"
	"chartee/cmd/chartee/internal/config"
	"chartee/tee"
)

// defaultSocket is where a packaged chartee serves its control API (the
// systemd unit's RuntimeDirectory).
const defaultSocket = "/run/chartee/control.sock"

const ctlUsage = `Usage: chartee ctl [--socket PATH | --url URL --token-file FILE] [--json] COMMAND

Commands:
  list                                  the tees, one line each
  show TEE                              a tee's frontend, line settings, backends and legs
  attach TEE SPEC                       add a backend (SPEC has name=...)
  detach TEE NAME                       remove a backend and its legs
  swap TEE NAME SPEC [--mode overlap] [--drain-timeout 2s]
                                        hot-swap a backend to a new device
  swap-frontend TEE SPEC                replace the tee's frontend device
  reload                                re-read the daemon's config file
  upgrade [--binary PATH] [--timeout 10s]
                                        hand the running daemon over to a new binary (default:
                                        its own path, re-read from disk) without dropping a
                                        client; refused, or rolled back with the reason, when
                                        it cannot take over cleanly within the timeout
  tail TEE NAME [-f] [--offset N]       print what a ringbuf backend holds (-f: keep following;
                                        N counts the bytes it received, 0: its oldest kept)
  events                                follow events of every tee (Ctrl-C ends)
  send TEE [TEXT] [--file F] [--line] [--force]
                                        type into the frontend (TEXT understands \r \n \t \e \xHH;
                                        --line appends the tee's line ending); prints the bytes
                                        written and the output offset to wait from
  break TEE [--duration 250ms]          send a break on the frontend
  sysrq TEE KEY [--force]               magic SysRq: a break, then KEY (h: help)
  wait TEE REGEX [--timeout 60s] [--from now|start|OFFSET] [--strip-ansi]
                                        wait until the output matches (RE2); exit 0 printing the
                                        offset and the match, exit 1 on timeout with the last lines
  show-access                           SSH host key fingerprint, users and their roles, sessions

SPEC is QEMU-style "TYPE,key=value,..." with the keys of the config file,
for example "file,name=cap,path=/var/log/console.log,format=timestamped" or
"tcp-listen,name=ro,listen=127.0.0.1:7001,protocol=telnet", or @FILE.yaml
holding one backend (or device) as YAML.

The socket is --socket, else $CHARTEE_SOCKET, else ` + defaultSocket + `
(or, when that does not exist, the socket of a running "chartee" demo).
`

// ctlFlags are every ctl flag; which command takes which is checked after
// parsing, so that flags may go anywhere on the line.
type ctlFlags struct {
	socket, url, tokenFile string
	json                   bool
	mode                   string
	drainTimeout           time.Duration
	follow                 bool
	offset                 uint64
	// automation
	file, from        string
	line, force       bool
	stripANSI         bool
	duration, timeout time.Duration
	binary            string
}

// ctlFlagCommands says which commands take a command-specific flag.
var ctlFlagCommands = map[string][]string{
	"mode":          {"swap"},
	"drain-timeout": {"swap"},
	"f":             {"tail"},
	"follow":        {"tail"},
	"offset":        {"tail"},
	"file":          {"send"},
	"line":          {"send"},
	"force":         {"send", "sysrq"},
	"duration":      {"break"},
	"timeout":       {"wait", "upgrade"},
	"from":          {"wait"},
	"strip-ansi":    {"wait"},
	"binary":        {"upgrade"},
}

// ctlOptionalLast lists commands whose last argument may be left out.
var ctlOptionalLast = map[string]bool{"send": true}

// ctlArgs is how many arguments each command takes.
var ctlArgs = map[string]struct {
	n     int
	usage string
}{
	"list":          {0, "list"},
	"show":          {1, "show TEE"},
	"attach":        {2, "attach TEE SPEC"},
	"detach":        {2, "detach TEE NAME"},
	"swap":          {3, "swap TEE NAME SPEC [--mode handover|overlap] [--drain-timeout D]"},
	"swap-frontend": {2, "swap-frontend TEE SPEC"},
	"reload":        {0, "reload"},
	"upgrade":       {0, "upgrade [--binary PATH] [--timeout 10s]"},
	"tail":          {2, "tail TEE NAME [-f] [--offset N]"},
	"events":        {0, "events"},
	"send":          {2, "send TEE [TEXT] [--file F] [--line] [--force]"},
	"break":         {1, "break TEE [--duration 250ms]"},
	"sysrq":         {2, "sysrq TEE KEY [--force]"},
	"wait":          {2, "wait TEE REGEX [--timeout 60s] [--from now|start|OFFSET] [--strip-ansi]"},
	"show-access":   {0, "show-access"},
}

func (a *app) ctl(args []string) int {
	fs := newFlagSet("chartee ctl", a.stderr, ctlUsage)
	var f ctlFlags
	fs.StringVar(&f.socket, "socket", "", "control socket `path`")
	fs.StringVar(&f.url, "url", "", "control API over TCP, like http://127.0.0.1:7070 (needs --token-file)")
	fs.StringVar(&f.tokenFile, "token-file", "", "`file` holding the bearer token for --url")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of tables")
	fs.StringVar(&f.mode, "mode", "", "swap: handover (default) or overlap")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 0, "swap: how long the old leg may drain (default: the tee's)")
	fs.BoolVar(&f.follow, "f", false, "tail: keep following new output")
	fs.BoolVar(&f.follow, "follow", false, "same as -f")
	fs.StringVar(&f.file, "file", "", "send: type the contents of `file`")
	fs.BoolVar(&f.line, "line", false, "send: append the tee's line ending")
	fs.BoolVar(&f.force, "force", false, "send, sysrq: type even while a leg holds the exclusive write lock")
	fs.DurationVar(&f.duration, "duration", 0, "break: how long (default 250ms)")
	fs.DurationVar(&f.timeout, "timeout", 0, "wait: give up after this long (default 60s); upgrade: how long the new binary has to start and check the config, and then, after the cut, to be ready (default 10s each)")
	fs.StringVar(&f.from, "from", "", "wait: now (default), start (the scrollback's oldest byte) or a stream offset")
	fs.StringVar(&f.binary, "binary", "", "upgrade: the new chartee `binary` (default: the daemon's own path)")
	fs.BoolVar(&f.stripANSI, "strip-ansi", false, "wait: match the text with terminal escape sequences removed")
	fs.Uint64Var(&f.offset, "offset", 0, "tail: where to start, counted in bytes the ringbuf has received (0: the oldest byte it still holds)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) == 0 {
		fmt.Fprint(a.stderr, ctlUsage)
		return exitUsage
	}
	cmd, rest := pos[0], pos[1:]
	spec, ok := ctlArgs[cmd]
	if !ok {
		fmt.Fprintf(a.stderr, "chartee ctl: unknown command %q\n\n", cmd)
		fmt.Fprint(a.stderr, ctlUsage)
		return exitUsage
	}
	if len(rest) != spec.n && !(ctlOptionalLast[cmd] && len(rest) == spec.n-1) {
		fmt.Fprintf(a.stderr, "chartee ctl: usage: chartee ctl %s\n", spec.usage)
		return exitUsage
	}
	var misplaced error
	fs.Visit(func(fl *flag.Flag) {
		if cmds, ok := ctlFlagCommands[fl.Name]; ok && !slices.Contains(cmds, cmd) && misplaced == nil {
			misplaced = fmt.Errorf("chartee ctl: flag %s applies to %s only", flagName(fl.Name), strings.Join(cmds, ", "))
		}
	})
	if misplaced != nil {
		fmt.Fprintln(a.stderr, misplaced)
		return exitUsage
	}

	c, where, err := a.client(f)
	if err != nil {
		fmt.Fprintf(a.stderr, "chartee ctl: %v\n", err)
		return exitUsage
	}
	// Idle keep-alive connections would outlive the command (and, in
	// tests, trip goleak).
	defer c.Close()
	r := &ctlRun{c: c, f: f, out: a.stdout}
	if err := r.do(a.ctx, cmd, rest); err != nil {
		if errors.Is(err, errNoMatch) {
			return exitError // the report is printed
		}
		a.printCtlError(err, where)
		if errors.Is(err, errUsage) {
			return exitUsage
		}
		return exitError
	}
	return exitOK
}

// client picks the API endpoint: --url with a token, or a unix socket.
func (a *app) client(f ctlFlags) (*api.Client, string, error) {
	if f.url != "" {
		if f.socket != "" {
			return nil, "", errors.New("--socket and --url: give one")
		}
		if f.tokenFile == "" {
			return nil, "", errors.New("--url needs --token-file (the file holding the daemon's control token)")
		}
		tok, err := readToken(f.tokenFile)
		if err != nil {
			return nil, "", fmt.Errorf("--token-file: %w", err)
		}
		return api.NewTCPClient(f.url, tok), f.url, nil
	}
	if f.tokenFile != "" {
		return nil, "", errors.New("--token-file goes with --url")
	}
	sock := a.socketPath(f.socket)
	return api.NewClient(sock), sock, nil
}

// socketPath resolves the control socket: the flag, $CHARTEE_SOCKET, the
// packaged default, or a running demo's.
func (a *app) socketPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if env := a.getenv("CHARTEE_SOCKET"); env != "" {
		return env
	}
	def := a.defaultSocket()
	if _, err := os.Stat(def); err == nil {
		return def
	}
	if demo, err := demoSocketPath(a.getenv, false); err == nil {
		if _, err := os.Stat(demo); err == nil {
			return demo
		}
	}
	return def
}

// defaultSocket is the packaged daemon's socket path.
func (a *app) defaultSocket() string {
	if a.systemSocket != "" {
		return a.systemSocket
	}
	return defaultSocket
}

// printCtlError prints the API's message and details, or a hint when the
// daemon could not be reached.
func (a *app) printCtlError(err error, where string) {
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		fmt.Fprintf(a.stderr, "chartee ctl: %s (%s)\n", apiErr.Message, apiErr.Code)
		for _, d := range apiErr.Details {
			fmt.Fprintf(a.stderr, "  %s\n", d)
		}
		return
	}
	if errors.Is(err, errUsage) {
		fmt.Fprintf(a.stderr, "chartee ctl: %s\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return
	}
	var list config.ErrorList
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintf(a.stderr, "chartee ctl: %s\n", e.Error())
		}
		return
	}
	if noDaemon(err) {
		fmt.Fprintf(a.stderr, "chartee ctl: no chartee daemon at %s (%s)\n", where, dialCause(err))
		fmt.Fprintln(a.stderr, "chartee ctl: hint: start one (chartee run FILE, or chartee for the demo), or name its socket with --socket or $CHARTEE_SOCKET (a packaged daemon's is "+defaultSocket+")")
		return
	}
	fmt.Fprintf(a.stderr, "chartee ctl: %v\n", err)
}

// noDaemon reports whether err means nothing answers at the endpoint: no
// socket file, a stale one, or a refused TCP connection.
func noDaemon(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED)
}

// dialCause is the system's reason without the Go request around it.
func dialCause(err error) string {
	for _, e := range []error{syscall.ENOENT, syscall.ECONNREFUSED, syscall.EACCES} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// ctlRun is one ctl command.
type ctlRun struct {
	c   *api.Client
	f   ctlFlags
	out io.Writer
}

func (r *ctlRun) do(ctx context.Context, cmd string, args []string) error {
	run, ok := ctlCommands[cmd]
	if !ok {
		return usageError("unknown command %q", cmd)
	}
	return run(r, ctx, args)
}

// ctlCommands runs each ctl command, its arguments already counted.
var ctlCommands = map[string]func(r *ctlRun, ctx context.Context, args []string) error{
	"list":          (*ctlRun).list,
	"show-access":   (*ctlRun).showAccess,
	"show":          (*ctlRun).show,
	"attach":        (*ctlRun).attach,
	"detach":        (*ctlRun).detach,
	"swap":          (*ctlRun).swap,
	"swap-frontend": (*ctlRun).swapFrontend,
	"reload":        (*ctlRun).reload,
	"upgrade":       func(r *ctlRun, ctx context.Context, _ []string) error { return r.upgrade(ctx) },
	"tail":          (*ctlRun).tail,
	"send":          (*ctlRun).send,
	"break":         (*ctlRun).sendBreak,
	"sysrq":         (*ctlRun).sysrq,
	"wait":          (*ctlRun).wait,
	"events":        (*ctlRun).events,
}

// answer prints v as JSON with --json, else as human writes it.
func (r *ctlRun) answer(v any, human func() error) error {
	if r.f.json {
		return r.printJSON(v)
	}
	return human()
}

func (r *ctlRun) list(ctx context.Context, _ []string) error {
	ts, err := r.c.Tees(ctx)
	if err != nil {
		return err
	}
	return r.answer(api.TeeList{Tees: ts}, func() error { return writeList(r.out, ts) })
}

func (r *ctlRun) showAccess(ctx context.Context, _ []string) error {
	info, err := r.c.Access(ctx)
	if err != nil {
		return err
	}
	return r.answer(info, func() error { return writeAccess(r.out, info) })
}

func (r *ctlRun) show(ctx context.Context, args []string) error {
	t, err := r.c.Tee(ctx, args[0])
	if err != nil {
		return err
	}
	return r.answer(t, func() error { return writeShow(r.out, t, time.Now()) })
}

func (r *ctlRun) attach(ctx context.Context, args []string) error {
	body, name, err := attachBody(args[1])
	if err != nil {
		return err
	}
	if err := r.c.Attach(ctx, args[0], body); err != nil {
		return err
	}
	return r.answer(map[string]string{"tee": args[0], "attached": name}, func() error {
		fmt.Fprintf(r.out, "attached backend %s to tee %s\n", name, args[0])
		fmt.Fprintf(r.out, "note: the config file is the truth: a reload (SIGHUP, chartee ctl reload) removes %s unless the file has it too\n", name)
		return nil
	})
}

func (r *ctlRun) detach(ctx context.Context, args []string) error {
	if err := r.c.Detach(ctx, args[0], args[1]); err != nil {
		return err
	}
	return r.answer(map[string]string{"tee": args[0], "detached": args[1]}, func() error {
		fmt.Fprintf(r.out, "detached backend %s from tee %s\n", args[1], args[0])
		return nil
	})
}

func (r *ctlRun) swap(ctx context.Context, args []string) error {
	if _, err := tee.ParseSwapMode(r.f.mode); err != nil {
		return usageError("--mode: %v", err)
	}
	body, err := swapBody(args[2], args[1])
	if err != nil {
		return err
	}
	rep, err := r.c.Swap(ctx, args[0], args[1], api.SwapRequest{
		Spec: body, Mode: r.f.mode, DrainTimeout: chardev.Duration(r.f.drainTimeout),
	})
	if err != nil {
		return err
	}
	return r.answer(rep, func() error { writeSwapReport(r.out, args[0], rep); return nil })
}

func (r *ctlRun) swapFrontend(ctx context.Context, args []string) error {
	body, err := config.DeviceSpecToJSON(args[1])
	if err != nil {
		return err
	}
	rep, err := r.c.SwapFrontend(ctx, args[0], body)
	if err != nil {
		return err
	}
	return r.answer(rep, func() error { writeFrontendSwapReport(r.out, args[0], rep); return nil })
}

func (r *ctlRun) reload(ctx context.Context, _ []string) error {
	rep, err := r.c.Reload(ctx)
	if err != nil {
		return err
	}
	return r.answer(rep, func() error { writeReloadReport(r.out, rep); return nil })
}

// tail writes a ring buffer's bytes raw: a buffered writer would hold
// back a followed console's output.
func (r *ctlRun) tail(ctx context.Context, args []string) error {
	err := r.c.Data(ctx, args[0], args[1], r.f.offset, r.f.follow, r.out)
	if r.f.follow && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// events prints the event stream until interrupted, flushing each event:
// they are rare and must show at once.
func (r *ctlRun) events(ctx context.Context, _ []string) error {
	bw := bufio.NewWriter(r.out)
	err := r.c.Events(ctx, func(ev tee.Event) error {
		if r.f.json {
			b, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			bw.Write(append(b, '\n'))
		} else {
			writeEvent(bw, ev)
		}
		return bw.Flush()
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

func (r *ctlRun) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = r.out.Write(append(b, '\n'))
	return err
}

// attachBody converts a command-line spec to the API's JSON body for an
// attach, and returns the backend name it carries.
func attachBody(spec string) (json.RawMessage, string, error) {
	body, err := config.SpecToJSON(spec)
	if err != nil {
		return nil, "", err
	}
	var named struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(body, &named); err != nil {
		return nil, "", fmt.Errorf("spec: %w", err)
	}
	return body, named.Name, nil
}

// swapBody converts a command-line spec to the body's spec for a swap of
// backend name. The spec may leave the name out: it is the backend being
// swapped, so a "TYPE,key=value" spec without one gets name=NAME.
func swapBody(spec, name string) (json.RawMessage, error) {
	if !strings.HasPrefix(spec, "@") && !cliHasKey(spec, "name") {
		spec += ",name=" + name
	}
	return config.SpecToJSON(spec)
}

// cliHasKey reports whether a "TYPE,key=value,..." spec gives key. Commas
// inside values are doubled, as in QEMU, so a single comma separates
// options.
func cliHasKey(spec, key string) bool {
	var item strings.Builder
	check := func() bool {
		k, _, ok := strings.Cut(item.String(), "=")
		item.Reset()
		return ok && k == key
	}
	for i := 0; i < len(spec); i++ {
		switch {
		case spec[i] == ',' && i+1 < len(spec) && spec[i+1] == ',':
			item.WriteByte(',')
			i++
		case spec[i] == ',':
			if check() {
				return true
			}
		default:
			item.WriteByte(spec[i])
		}
	}
	return check()
}
