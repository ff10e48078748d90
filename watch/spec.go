package watch

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// ActionKind names what a watch does on a match.
type ActionKind string

// Action kinds.
const (
	ActEvent   ActionKind = "event"   // an event on /v1/events
	ActLog     ActionKind = "log"     // a log line
	ActExec    ActionKind = "exec"    // run a program (argv, no shell)
	ActWebhook ActionKind = "webhook" // POST JSON to a URL
	ActSend    ActionKind = "send"    // type text into the console
)

// Defaults of the actions' limits.
const (
	DefaultExecTimeout    = 30 * time.Second
	DefaultWebhookTimeout = 10 * time.Second
	DefaultWebhookRetries = 3
)

// Action is one thing a watch does.
type Action struct {
	Kind    ActionKind
	Argv    []string      // exec: program and arguments; "{tee}", "{watch}", "{match}", "{offset}" are replaced
	URL     string        // webhook
	Text    []byte        // send
	Timeout time.Duration // exec, webhook; 0: the default
	Retries int           // webhook: attempts after the first; -1: the default
}

// String is a stable description, for logs and reload diffs.
func (a Action) String() string {
	switch a.Kind {
	case ActExec:
		return fmt.Sprintf("exec%q timeout=%s", a.Argv, a.Timeout)
	case ActWebhook:
		return fmt.Sprintf("webhook %s timeout=%s retries=%d", a.URL, a.Timeout, a.Retries)
	case ActSend:
		return "send " + QuoteEscapes(a.Text)
	}
	return string(a.Kind)
}

// Spec is one watch of a tee, as configured.
type Spec struct {
	Name      string
	Pattern   string
	Re        *regexp.Regexp
	StripANSI bool
	Cooldown  time.Duration
	Actions   []Action
}

// String is a stable description: two specs with equal strings are the
// same watch (reload keeps its cooldown state).
func (s Spec) String() string {
	var acts []string
	for _, a := range s.Actions {
		acts = append(acts, a.String())
	}
	return fmt.Sprintf("%s /%s/ strip=%t cooldown=%s [%s]", s.Name, s.Pattern, s.StripANSI, s.Cooldown, strings.Join(acts, ", "))
}
