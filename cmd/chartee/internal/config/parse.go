package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	_ "chartee/backends" // every backend type, registered in chardev
	"chartee/chardev"
	"chartee/tee"
)

// Load reads and parses the config file at path. A file that cannot be read
// is a plain error; a file with problems gives an ErrorList of all of them.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a whole config file. file names it in messages. The error,
// when not nil, is an ErrorList holding every problem found, each with
// file:line:col. Parse opens no device and touches no file: it only checks
// and decodes. Non-fatal findings go to Config.Warnings.
func Parse(file string, data []byte) (*Config, error) {
	w := &walker{file: file, mode: modeFile}
	root := w.parseYAML(data)
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	cfg := w.config(root)
	if len(w.errs) > 0 {
		w.errs.sort()
		return nil, w.errs
	}
	w.warns.sort()
	cfg.Warnings = w.warns
	return cfg, nil
}

// yamlLineErr matches go-yaml's syntax errors, which carry a line only.
var yamlLineErr = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML parses data, which must hold at most one document, into its
// root node (nil for an empty document).
func (w *walker) parseYAML(data []byte) (root *yaml.Node) {
	defer func() {
		// A parser bug must not take the daemon (or `chartee check`)
		// down: it is reported like any syntax error.
		if r := recover(); r != nil {
			w.errf(nil, "", "YAML parser failed: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		w.yamlErr(err)
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		w.yamlErr(err)
		return nil
	default:
		w.errf(&extra, "", "a config file holds one YAML document; remove the second one (---)")
		return nil
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		return doc.Content[0]
	}
	return &doc
}

// yamlErr records a YAML syntax error with its line.
func (w *walker) yamlErr(err error) {
	msg := err.Error()
	if m := yamlLineErr.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		w.errf(&yaml.Node{Line: line}, "", "YAML syntax: %s", m[2])
		return
	}
	w.errf(nil, "", "YAML syntax: %s", strings.TrimPrefix(msg, "yaml: "))
}

// topKeys, teeKeys, ... are the keys each section accepts, sorted for
// messages.
var (
	topKeys      = []string{"access", "control", "log", "metrics", "ssh", "tees", "web"}
	controlKeys  = []string{"listen", "socket", "token_file"}
	metricsKeys  = []string{"listen"}
	logKeys      = []string{"format", "level"}
	teeKeys      = []string{"access", "backends", "drain_timeout", "exclusive_idle", "frontend", "input", "input_buffer", "input_pacing", "line_ending", "name", "scrollback", "watch"}
	backoffKeys  = []string{"initial", "max"}
	legKeys      = []string{"input", "name", "on_overflow", "queue", "replay"}
	frontendKeys = []string{"failover", "reconnect"}
)

// config walks the whole file.
func (w *walker) config(root *yaml.Node) *Config {
	cfg := &Config{File: w.file}
	if root == nil {
		w.errf(nil, "", "the file is empty: a config needs at least `tees:` with one tee")
		return cfg
	}
	ps, ok := w.pairs(root, "", "the config")
	if !ok {
		return cfg
	}
	var teesGiven bool
	var refs []grantRef
	for _, p := range ps {
		switch p.name {
		case "access":
			w.accessSection(p.val, "access", &cfg.Access)
		case "ssh":
			w.sshSection(p.val, "ssh", &cfg.SSH)
		case "web":
			w.webSection(p.val, "web", &cfg.Web)
		case "control":
			w.control(p.val, "control", &cfg.Control)
		case "metrics":
			w.metrics(p.val, "metrics", &cfg.Metrics)
		case "log":
			for _, q := range w.fixedSection(p.val, "log", logKeys) {
				switch q.name {
				case "level":
					cfg.Log.Level = w.enum(q.val, "log.level", "debug", "info", "warn", "error")
				case "format":
					cfg.Log.Format = w.enum(q.val, "log.format", "text", "json")
				}
			}
		case "tees":
			teesGiven = true
			cfg.Tees = w.tees(p.val, "tees", &refs)
		default:
			// x- keys are free, to hold anchors: x-tls: &tls {...}.
			if !strings.HasPrefix(p.name, "x-") {
				w.unknownKey(p, "", "the config", topKeys)
			}
		}
	}
	if !teesGiven {
		w.errf(root, "tees", "required: a config needs at least one tee")
	}
	w.checkAccess(cfg, root, refs)
	return cfg
}

// fixedSection returns the entries of a fixed-key section, reporting unknown
// keys.
func (w *walker) fixedSection(n *yaml.Node, path string, known []string) []pair {
	what := path[strings.LastIndexByte(path, '.')+1:]
	ps, _ := w.pairs(n, path, what)
	out := ps[:0]
	for _, p := range ps {
		if !slices.Contains(known, p.name) {
			w.unknownKey(p, path, what, known)
			continue
		}
		out = append(out, p)
	}
	return out
}

// metrics decodes the metrics section.
func (w *walker) metrics(n *yaml.Node, path string, m *Metrics) {
	ps := w.fixedSection(n, path, metricsKeys)
	for _, q := range ps {
		m.Listen = w.listenAddr(q.val, "metrics.listen")
		if m.Listen != "" && !chardev.IsLoopback(m.Listen) {
			w.warnf(q.val, "metrics.listen", "%s is reachable from the network; /metrics has no authentication", m.Listen)
		}
	}
	w.claimAll(n, ps, path, m.Claims())
}

// control decodes the control section.
func (w *walker) control(n *yaml.Node, path string, c *Control) {
	var listenNode *yaml.Node
	ps := w.fixedSection(n, path, controlKeys)
	for _, p := range ps {
		switch p.name {
		case "socket":
			c.Socket = w.str(p.val, "control.socket")
		case "listen":
			listenNode = p.val
			c.Listen = w.listenAddr(p.val, "control.listen")
		case "token_file":
			c.TokenFile = w.str(p.val, "control.token_file")
		}
	}
	w.claimAll(n, ps, path, c.Claims())
	if c.Listen != "" {
		if c.TokenFile == "" {
			w.errf(listenNode, "control.listen", "needs control.token_file: a TCP control API without a token would let anyone who can connect drive every tee")
		}
		if !chardev.IsLoopback(c.Listen) {
			w.warnf(listenNode, "control.listen", "%s is reachable from the network without TLS; the token crosses it in clear", c.Listen)
		}
	}
}

// tees decodes the list of tees, checking names are unique.
func (w *walker) tees(n *yaml.Node, path string, refs *[]grantRef) []*Tee {
	n = w.deref(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list of tees, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		w.errf(n, path, "at least one tee is required")
	}
	var out []*Tee
	names := map[string]*yaml.Node{}
	for i, item := range n.Content {
		t, nameNode := w.tee(item, index(path, i), refs)
		if t == nil {
			continue
		}
		if nameNode != nil && t.Name != "" {
			if first, dup := names[t.Name]; dup {
				w.errf(nameNode, index(path, i)+".name", "duplicate tee name %q%s", t.Name, w.firstAt(first))
				continue
			}
			names[t.Name] = nameNode
		}
		out = append(out, t)
	}
	return out
}

// tee decodes one tee.
func (w *walker) tee(n *yaml.Node, path string, refs *[]grantRef) (*Tee, *yaml.Node) {
	n = w.deref(n)
	ps, ok := w.pairs(n, path, "a tee")
	if !ok {
		return nil, nil
	}
	t := &Tee{Pos: w.pos(n)}
	var nameNode, scrollNode, feNode *yaml.Node
	var replays []replayAt
	for _, p := range ps {
		pp := join(path, p.name)
		switch p.name {
		case "name":
			nameNode = p.val
			t.Name = w.name(p.val, pp)
		case "input":
			if s := w.enum(p.val, pp, "shared", "exclusive"); s != "" {
				t.Input, _ = tee.ParseInputMode(s)
			}
		case "exclusive_idle":
			t.ExclusiveIdle = w.duration(p.val, pp)
		case "input_buffer":
			t.InputBuffer = w.size(p.val, pp)
		case "scrollback":
			scrollNode = p.val
			t.Scrollback = w.size(p.val, pp)
		case "drain_timeout":
			t.DrainTimeout = w.duration(p.val, pp)
		case "frontend":
			feNode = p.val
			t.Frontend = w.frontend(p.val, pp)
		case "backends":
			t.Backends = w.backends(p.val, pp, &replays)
		case "access":
			t.Access = w.grants(p.val, pp, refs)
		case "watch":
			t.Watches = w.watches(p.val, pp)
		case "input_pacing":
			t.Pacing = w.pacing(p.val, pp)
		case "line_ending":
			t.LineEnding = w.lineEnding(p.val, pp)
		default:
			w.unknownKey(p, path, "a tee", teeKeys)
		}
	}
	if nameNode == nil {
		w.errf(n, path, "name: required")
	}
	if feNode == nil {
		w.errf(n, path, "frontend: required (the device the tee fans out)")
	}
	if t.Name != "" {
		t.nameDevices()
	}
	if t.ExclusiveIdle > 0 && t.Input != tee.Exclusive {
		w.warnf(n, join(path, "exclusive_idle"), "has no effect without input: exclusive")
	}
	scroll := t.Scrollback
	if scroll == 0 {
		scroll = tee.DefaultScrollback
	}
	for _, r := range replays {
		if r.n > scroll {
			how := "the default scrollback"
			if scrollNode != nil {
				how = "the tee's scrollback"
			}
			w.errf(r.node, r.path, "%s is more than %s (%s): a leg cannot replay more than the tee keeps", chardev.Size(r.n), how, chardev.Size(scroll))
		}
	}
	return t, nameNode
}

// replayAt is a backend's replay, checked against its tee's scrollback.
type replayAt struct {
	n    int
	node *yaml.Node
	path string
}

// ReservedBackendNames are the backends services join their sessions'
// legs to (a tee refuses a session whose backend name a configured
// backend already has), with who uses each. They are reserved whether
// or not the service is configured, since a reload may add it.
var ReservedBackendNames = map[string]string{
	"ssh": "the ssh service's sessions",
	"web": "the web service's browser sessions",
}

// backends decodes a tee's backend list, checking names are unique.
func (w *walker) backends(n *yaml.Node, path string, replays *[]replayAt) []*Backend {
	n = w.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list of backends, got %s", describe(n))
		return nil
	}
	var out []*Backend
	names := map[string]*yaml.Node{}
	for i, item := range n.Content {
		b, meta := w.backend(item, index(path, i))
		if b == nil {
			continue
		}
		if meta.nameNode != nil && b.Name != "" {
			if who, ok := ReservedBackendNames[b.Name]; ok {
				w.errf(meta.nameNode, index(path, i)+".name", "backend name %q is reserved for %s; choose another name", b.Name, who)
				continue
			}
			if first, dup := names[b.Name]; dup {
				w.errf(meta.nameNode, index(path, i)+".name", "duplicate backend name %q in this tee%s", b.Name, w.firstAt(first))
				continue
			}
			names[b.Name] = meta.nameNode
		}
		if b.Leg.Replay > 0 {
			*replays = append(*replays, replayAt{b.Leg.Replay, meta.replayNode, index(path, i) + ".replay"})
		}
		out = append(out, b)
	}
	return out
}

// backendMeta is where a backend's name and replay are, for checks that
// span backends.
type backendMeta struct{ nameNode, replayNode *yaml.Node }

// backend decodes one backend: the leg keys and a device. It returns nil
// when the device's type is missing or unknown.
func (w *walker) backend(n *yaml.Node, path string) (*Backend, backendMeta) {
	n = w.deref(n)
	b := &Backend{}
	var meta backendMeta
	inputGiven := false
	d, _ := w.device(n, path, "backend", legKeys, func(p pair) {
		pp := join(path, p.name)
		switch p.name {
		case "name":
			meta.nameNode = p.val
			b.Name = w.name(p.val, pp)
		case "input":
			inputGiven = true
			b.Leg.Input = w.boolean(p.val, pp)
		case "replay":
			meta.replayNode = p.val
			w.legKey(p, pp, &b.Leg)
		default:
			w.legKey(p, pp, &b.Leg)
		}
	})
	if n != nil && n.Kind == yaml.MappingNode && meta.nameNode == nil {
		w.errf(n, path, "name: required")
	}
	if d == nil {
		return nil, meta
	}
	b.Device = *d
	if !inputGiven {
		b.Leg.Input = d.Factory.Input
	}
	if cg, ok := d.Spec.(chardev.ControlGranter); ok {
		b.Leg.Control = cg.GrantsControl()
	}
	return b, meta
}

// frontend decodes a tee's frontend: a single-stream device, its
// reconnect pacing and its failover devices.
//
// `reconnect` here is always the tee's own backoff (the engine reopens a
// failed frontend), even for tcp-connect, whose spec has a reconnect
// section of the same shape for when it is a backend.
func (w *walker) frontend(n *yaml.Node, path string) Frontend {
	n = w.deref(n)
	var fe Frontend
	d, meta := w.device(n, path, "frontend", frontendKeys, func(p pair) {
		pp := join(path, p.name)
		switch p.name {
		case "reconnect":
			fe.Reconnect = w.backoff(p.val, pp)
		case "failover":
			fe.Failover = w.failover(p.val, pp)
		}
	})
	if d != nil {
		w.checkSingleStream(path, "frontend", d, meta)
		fe.Device = *d
	}
	return fe
}

// failover decodes the list of spare frontend devices.
func (w *walker) failover(n *yaml.Node, path string) []Device {
	n = w.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list of devices, got %s", describe(n))
		return nil
	}
	var out []Device
	for i, item := range n.Content {
		item = w.deref(item)
		d, meta := w.device(item, index(path, i), "failover device", nil, nil)
		if d == nil {
			continue
		}
		w.checkSingleStream(index(path, i), "failover device", d, meta)
		out = append(out, *d)
	}
	return out
}

// checkSingleStream refuses a listening device where one stream is needed.
func (w *walker) checkSingleStream(path, role string, d *Device, meta deviceMeta) {
	if meta.specOK && d.IsSource() {
		hint := "use it as a backend"
		if d.Factory.Open != nil {
			hint = "give it the options of its single-stream form (udp: remote), or use it as a backend"
		}
		w.errf(meta.typeNode, join(path, "type"), "%s cannot be a %s: it listens for clients, each becoming a leg of its own; %s", d.Type, role, hint)
	}
}

// device decodes a device mapping: its type, the type's own keys, and the
// keys in extra, which it hands to onExtra. It returns nil when the type
// is missing or unknown; the spec is validated only when every one of its
// keys decoded.
func (w *walker) device(n *yaml.Node, path, what string, extra []string, onExtra func(pair)) (*Device, deviceMeta) {
	n = w.deref(n)
	var meta deviceMeta
	ps, ok := w.pairs(n, path, what)
	if !ok {
		return nil, meta
	}
	var d *Device
	var sch *schema
	var typePair *pair
	for i := range ps {
		if ps[i].name == "type" {
			typePair = &ps[i]
		}
	}
	if typePair == nil {
		w.errf(n, path, "type: required (one of: %s)", strings.Join(chardev.Types(), ", "))
	} else {
		before := w.count
		name := w.str(typePair.val, join(path, "type"))
		if w.count > before {
			// The type is not a string; already reported.
		} else if name == "" {
			w.errf(typePair.val, join(path, "type"), "must not be empty (one of: %s)", strings.Join(chardev.Types(), ", "))
		} else if f, err := chardev.Lookup(name); err != nil {
			msg := fmt.Sprintf("unknown backend type %q", name)
			if s := suggest(name, chardev.Types()); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			w.errf(typePair.val, join(path, "type"), "%s (known: %s)", msg, strings.Join(chardev.Types(), ", "))
		} else {
			spec := f.NewSpec()
			d = &Device{Type: name, Spec: spec, Factory: f, Pos: w.pos(n)}
			meta.typeNode = typePair.val
			sch = schemaOfSpec(spec)
		}
	}
	specOK := true
	for _, p := range ps {
		switch {
		case p.name == "type":
		case slices.Contains(extra, p.name):
			onExtra(p)
		case d == nil:
			// Without a type, its keys cannot be judged.
		default:
			before := w.count
			if f, ok := sch.fields[p.name]; ok {
				w.value(p.val, join(path, p.name), f, reflect.ValueOf(d.Spec).Elem().FieldByIndex(f.index))
			} else {
				known := slices.Concat(extra, []string{"type"}, sch.keys)
				slices.Sort(known)
				known = slices.Compact(known)
				w.unknownKey(p, path, d.Type, known)
			}
			specOK = specOK && w.count == before
		}
	}
	if d == nil || !specOK {
		return d, meta
	}
	if err := d.Spec.Validate(); err != nil {
		w.validateErr(n, ps, path, d.Type, err)
		return d, meta
	}
	meta.specOK = true
	d.Canonical = canonical(d.Type, d.Spec)
	w.exposureWarning(n, ps, path, d)
	w.claimAll(n, ps, path, chardev.ClaimsOf(d.Spec))
	return d, meta
}

// deviceMeta is what the walk knows about a device beyond the Device:
// where its type is, and whether its spec decoded and validated.
type deviceMeta struct {
	typeNode *yaml.Node
	specOK   bool
}

// schemaOfSpec returns the schema of the struct a spec points to.
func schemaOfSpec(spec chardev.Spec) *schema {
	return schemaOf(reflect.TypeOf(spec).Elem())
}

// validateErr reports a spec's own validation error at the key it names
// when the mapping has that key, else at the mapping.
func (w *walker) validateErr(n *yaml.Node, ps []pair, path, typ string, err error) {
	msg := strings.TrimPrefix(err.Error(), typ+": ")
	key := msg
	if i := strings.IndexAny(key, ": "); i >= 0 {
		key = key[:i]
	}
	key, _, _ = strings.Cut(key, ".")
	for _, p := range ps {
		if p.name == key {
			// The message names the key already; the CLI needs it
			// as the path to give its column.
			at := path
			if w.mode == modeCLI {
				at = join(path, p.name)
			}
			w.errf(p.key, at, "%s: %s", typ, msg)
			return
		}
	}
	w.errf(n, path, "%s: %s", typ, msg)
}

// exposureWarning warns about each address of a device that is reachable
// from beyond this machine without TLS.
func (w *walker) exposureWarning(n *yaml.Node, ps []pair, path string, d *Device) {
	for _, c := range chardev.ClaimsOf(d.Spec) {
		if !c.Exposed || c.Encrypted {
			continue
		}
		what := "without TLS"
		if !c.CanEncrypt {
			what = "(this type has no TLS)"
		}
		at, node := w.claimAt(n, ps, path, c)
		w.warnf(node, at, "%s %s is reachable from the network %s", d.Type, c.Address, what)
	}
}

// claimAll records what a device or service holds exclusively (see
// chardev.Claimer), reporting a second holder of the same address or path
// at the key that names it. n is the section's mapping, ps its entries;
// an address that can never clash (port 0) is not recorded.
func (w *walker) claimAll(n *yaml.Node, ps []pair, path string, cs []chardev.Claim) {
	if w.mode != modeFile {
		return
	}
	for _, c := range cs {
		id := c.ID()
		if id == "" {
			continue
		}
		at, node := w.claimAt(n, ps, path, c)
		if w.claims == nil {
			w.claims = map[string]*yaml.Node{}
		}
		if first, dup := w.claims[id]; dup {
			verb := "is already bound"
			if !c.IsBind() {
				verb = "is already used"
			}
			w.errf(node, at, "%s %s %s%s", c.Space, c.Address, verb, w.firstAt(first))
			continue
		}
		w.claims[id] = node
	}
}

// claimAt is where a claim is written: the value of its key when the
// section gives it, else the section itself.
func (w *walker) claimAt(n *yaml.Node, ps []pair, path string, c chardev.Claim) (string, *yaml.Node) {
	for _, p := range ps {
		if p.name == c.Key {
			return join(path, p.name), derefPlain(p.val)
		}
	}
	return path, n
}

// canonical is the stable encoding of a device: its type and its spec as
// JSON (fields in declaration order, defaults included), so two devices
// with the same options compare equal however they were written.
func canonical(typ string, spec chardev.Spec) string {
	b, err := json.Marshal(spec)
	if err != nil {
		return typ + " " + fmt.Sprintf("%+v", spec)
	}
	return typ + " " + string(b)
}

// backoff decodes a reconnect section.
func (w *walker) backoff(n *yaml.Node, path string) tee.Backoff {
	var b tee.Backoff
	var maxNode *yaml.Node
	for _, p := range w.fixedSection(n, path, backoffKeys) {
		switch p.name {
		case "initial":
			b.Initial = w.duration(p.val, join(path, "initial"))
		case "max":
			maxNode = p.val
			b.Max = w.duration(p.val, join(path, "max"))
		}
	}
	if b.Initial > 0 && b.Max > 0 && b.Max < b.Initial {
		w.errf(maxNode, join(path, "max"), "%s is less than initial %s", b.Max, b.Initial)
	}
	return b
}

// Value helpers: each decodes one scalar, reporting a problem at it.

func (w *walker) str(n *yaml.Node, path string) string {
	var s string
	w.scalar(n, path, reflect.ValueOf(&s).Elem())
	return s
}

func (w *walker) boolean(n *yaml.Node, path string) bool {
	var b bool
	w.scalar(n, path, reflect.ValueOf(&b).Elem())
	return b
}

func (w *walker) size(n *yaml.Node, path string) int {
	var s chardev.Size
	w.scalar(n, path, reflect.ValueOf(&s).Elem())
	return int(s)
}

func (w *walker) duration(n *yaml.Node, path string) time.Duration {
	var d chardev.Duration
	w.scalar(n, path, reflect.ValueOf(&d).Elem())
	return d.D()
}

// enum decodes a string that must be one of options; "" when it is not.
func (w *walker) enum(n *yaml.Node, path string, options ...string) string {
	before := w.count
	s := w.str(n, path)
	if w.count > before {
		return ""
	}
	if slices.Contains(options, s) {
		return s
	}
	msg := fmt.Sprintf("%q is not one of %s", s, strings.Join(options, ", "))
	if g := suggest(s, options); g != "" {
		msg += fmt.Sprintf("; did you mean %q?", g)
	}
	w.errf(n, path, "%s", msg)
	return ""
}

// namePattern is what tee and backend names may hold: they appear in API
// paths, metric labels and file names.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// name decodes a tee or backend name.
func (w *walker) name(n *yaml.Node, path string) string {
	before := w.count
	s := w.str(n, path)
	if w.count > before {
		return ""
	}
	if !namePattern.MatchString(s) {
		if s == "" {
			w.errf(n, path, "must not be empty")
		} else {
			w.errf(n, path, "%q: want letters, digits, '.', '_' or '-' (up to 64, starting with a letter or digit)", s)
		}
		return ""
	}
	return s
}

// listenAddr decodes a host:port to listen on.
func (w *walker) listenAddr(n *yaml.Node, path string) string {
	before := w.count
	s := w.str(n, path)
	if w.count > before || s == "" {
		return s
	}
	host, port, err := net.SplitHostPort(s)
	switch {
	case err != nil:
		w.errf(n, path, "%q: want host:port, like 127.0.0.1:9100", s)
	case host == "":
		w.errf(n, path, "%q: give a host (127.0.0.1 for this machine only, 0.0.0.0 or [::] for every address)", s)
	case port == "":
		w.errf(n, path, "%q: missing port", s)
	default:
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			w.errf(n, path, "%q: port %q is not a number from 0 to 65535", s, port)
		}
	}
	return s
}

// legKey decodes a leg key that backends and the services' sessions (ssh,
// web) share: replay, queue, on_overflow. Other keys are left alone.
func (w *walker) legKey(p pair, path string, leg *tee.LegOptions) {
	switch p.name {
	case "replay":
		leg.Replay = w.size(p.val, path)
	case "queue":
		leg.Queue = w.size(p.val, path)
	case "on_overflow":
		if v := w.enum(p.val, path, "drop", "block", "disconnect"); v != "" {
			leg.Overflow, _ = tee.ParseOverflow(v)
		}
	}
}
