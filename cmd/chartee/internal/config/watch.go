package config

import (
	"net/url"
	"reflect"
	"time"

	"go.yaml.in/yaml/v3"

	"chartee/tee"
	"chartee/watch"
)

var (
	watchKeys   = []string{"actions", "cooldown", "name", "pattern", "strip_ansi"}
	pacingKeys  = []string{"char_delay", "line_delay"}
	execKeys    = []string{"argv", "timeout"}
	webhookKeys = []string{"retries", "timeout", "url"}
	actionNames = []string{"event", "exec", "log", "send", "webhook"}
)

// maxWatches bounds a tee's watches: each costs a regexp pass per line.
const maxWatches = 1000

// watches decodes a tee's watch list, checking names are unique.
func (w *walker) watches(n *yaml.Node, path string) []watch.Spec {
	n = w.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		w.errf(n, path, "want a list of watches, got %s", describe(n))
		return nil
	}
	if len(n.Content) > maxWatches {
		w.errf(n, path, "%d watches: at most %d per tee", len(n.Content), maxWatches)
		return nil
	}
	var out []watch.Spec
	names := map[string]*yaml.Node{}
	for i, item := range n.Content {
		s, nameNode, ok := w.watch(item, index(path, i))
		if !ok {
			continue
		}
		if first, dup := names[s.Name]; dup {
			w.errf(nameNode, index(path, i)+".name", "duplicate watch name %q%s", s.Name, w.firstAt(first))
			continue
		}
		names[s.Name] = nameNode
		out = append(out, s)
	}
	return out
}

// watch decodes one watch.
func (w *walker) watch(n *yaml.Node, path string) (watch.Spec, *yaml.Node, bool) {
	var s watch.Spec
	n = w.deref(n)
	ps, ok := w.pairs(n, path, "a watch")
	if !ok {
		return s, nil, false
	}
	before := w.count
	var nameNode, patNode, actNode *yaml.Node
	for _, p := range ps {
		pp := join(path, p.name)
		switch p.name {
		case "name":
			nameNode = p.val
			s.Name = w.name(p.val, pp)
		case "pattern":
			patNode = p.val
			s.Pattern = w.str(p.val, pp)
			if s.Pattern != "" || w.count == before {
				re, err := watch.CompilePattern(s.Pattern)
				if err != nil {
					w.errf(p.val, pp, "%s", err)
				}
				s.Re = re
			}
		case "strip_ansi":
			s.StripANSI = w.boolean(p.val, pp)
		case "cooldown":
			s.Cooldown = w.duration(p.val, pp)
		case "actions":
			actNode = p.val
			s.Actions = w.actions(p.val, pp)
		default:
			w.unknownKey(p, path, "a watch", watchKeys)
		}
	}
	if nameNode == nil {
		w.errf(n, path, "name: required")
	}
	if patNode == nil {
		w.errf(n, path, "pattern: required (an RE2 regular expression)")
	}
	if actNode == nil {
		w.errf(n, path, "actions: required (event, log, exec, webhook or send)")
	}
	return s, nameNode, w.count == before
}

// actions decodes a watch's action list: "event", "log", or a one-key
// mapping {exec: ...}, {webhook: ...}, {send: ...}.
func (w *walker) actions(n *yaml.Node, path string) []watch.Action {
	n = w.deref(n)
	if n == nil || n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		w.errf(n, path, "want a non-empty list of actions (event, log, {exec: [...]}, {webhook: URL}, {send: TEXT}), got %s", describe(n))
		return nil
	}
	var out []watch.Action
	for i, item := range n.Content {
		if a, ok := w.action(item, index(path, i)); ok {
			out = append(out, a)
		}
	}
	return out
}

func (w *walker) action(n *yaml.Node, path string) (watch.Action, bool) {
	n = w.deref(n)
	if n == nil {
		return watch.Action{}, false
	}
	before := w.count
	if n.Kind == yaml.ScalarNode {
		switch k := w.enum(n, path, "event", "log"); k {
		case "event", "log":
			return watch.Action{Kind: watch.ActionKind(k)}, true
		}
		if w.count == before {
			w.errf(n, path, "want event or log, or a mapping {exec|webhook|send: ...}")
		}
		return watch.Action{}, false
	}
	ps, ok := w.pairs(n, path, "an action")
	if !ok {
		return watch.Action{}, false
	}
	if len(ps) != 1 {
		w.errf(n, path, "an action is one of event, log, {exec: ...}, {webhook: ...}, {send: ...}; this mapping has %d keys", len(ps))
		return watch.Action{}, false
	}
	p := ps[0]
	pp := join(path, p.name)
	a := watch.Action{Kind: watch.ActionKind(p.name), Retries: -1}
	switch p.name {
	case "exec":
		a.Argv, a.Timeout = w.execAction(p.val, pp)
	case "webhook":
		a.URL, a.Timeout, a.Retries = w.webhookAction(p.val, pp)
	case "send":
		text := w.str(p.val, pp)
		b, err := watch.ParseEscapes(text)
		if err != nil {
			w.errf(p.val, pp, "%s", err)
		} else if len(b) == 0 {
			w.errf(p.val, pp, "nothing to send")
		}
		a.Text = b
	default:
		w.unknownKey(p, path, "an action", actionNames)
	}
	return a, w.count == before
}

// execAction decodes [prog, args...] or {argv: [...], timeout: D}.
func (w *walker) execAction(n *yaml.Node, path string) ([]string, time.Duration) {
	n = w.deref(n)
	var timeout time.Duration
	var argvNode *yaml.Node
	argvPath := path
	if n != nil && n.Kind == yaml.MappingNode {
		for _, p := range w.fixedSection(n, path, execKeys) {
			switch p.name {
			case "argv":
				argvNode, argvPath = p.val, join(path, "argv")
			case "timeout":
				timeout = w.duration(p.val, join(path, "timeout"))
			}
		}
		if argvNode == nil {
			w.errf(n, path, "argv: required (the program and its arguments; no shell)")
			return nil, timeout
		}
	} else {
		argvNode = n
	}
	argvNode = w.deref(argvNode)
	if argvNode == nil || argvNode.Kind != yaml.SequenceNode || len(argvNode.Content) == 0 {
		w.errf(argvNode, argvPath, "want a list [program, args...] (run without a shell), got %s", describe(argvNode))
		return nil, timeout
	}
	var argv []string
	for i, a := range argvNode.Content {
		argv = append(argv, w.str(a, index(argvPath, i)))
	}
	if argv[0] == "" {
		w.errf(argvNode.Content[0], index(argvPath, 0), "the program must not be empty")
	}
	return argv, timeout
}

// webhookAction decodes URL or {url: U, timeout: D, retries: N}.
func (w *walker) webhookAction(n *yaml.Node, path string) (string, time.Duration, int) {
	n = w.deref(n)
	var timeout time.Duration
	retries := -1
	urlNode, urlPath := n, path
	if n != nil && n.Kind == yaml.MappingNode {
		urlNode = nil
		for _, p := range w.fixedSection(n, path, webhookKeys) {
			switch p.name {
			case "url":
				urlNode, urlPath = p.val, join(path, "url")
			case "timeout":
				timeout = w.duration(p.val, join(path, "timeout"))
			case "retries":
				var r int
				w.scalar(p.val, join(path, "retries"), reflect.ValueOf(&r).Elem())
				if r < 0 || r > 10 {
					w.errf(p.val, join(path, "retries"), "%d: want 0 to 10", r)
				}
				retries = r
			}
		}
		if urlNode == nil {
			w.errf(n, path, "url: required")
			return "", timeout, retries
		}
	}
	before := w.count
	s := w.str(urlNode, urlPath)
	if w.count > before {
		return "", timeout, retries
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		w.errf(urlNode, urlPath, "%q: want an http:// or https:// URL", s)
	}
	return s, timeout, retries
}

// pacing decodes input_pacing.
func (w *walker) pacing(n *yaml.Node, path string) tee.Pacing {
	var p tee.Pacing
	for _, pr := range w.fixedSection(n, path, pacingKeys) {
		switch pr.name {
		case "char_delay":
			p.CharDelay = w.duration(pr.val, join(path, "char_delay"))
		case "line_delay":
			p.LineDelay = w.duration(pr.val, join(path, "line_delay"))
		}
	}
	if p.CharDelay > maxPacing || p.LineDelay > maxPacing {
		w.errf(n, path, "a delay of more than %s would make the console unusable", maxPacing)
	}
	return p
}

// maxPacing bounds input pacing delays.
const maxPacing = 10 * time.Second

// lineEnding decodes line_ending: text with send escapes, like '\r\n'.
func (w *walker) lineEnding(n *yaml.Node, path string) []byte {
	before := w.count
	s := w.str(n, path)
	if w.count > before {
		return nil
	}
	b, err := watch.ParseEscapes(s)
	switch {
	case err != nil:
		w.errf(n, path, "%s", err)
	case len(b) == 0 || len(b) > 4:
		w.errf(n, path, "%q: want 1 to 4 bytes, like '\\r' or '\\r\\n'", s)
	}
	return b
}
