package config

import (
	"testing"
	"time"

	"chartee/tee"
	"chartee/watch"
)

func withWatch(watchYAML string) string {
	return "tees:\n  - name: t\n    frontend: {type: null}\n    watch:\n      - " + watchYAML + "\n"
}

func TestParseWatches(t *testing.T) {
	cfg := mustParse(t, `
tees:
  - name: vm
    frontend: {type: null}
    input_pacing: {char_delay: 2ms, line_delay: 50ms}
    line_ending: '\r\n'
    watch:
      - name: panic
        pattern: 'Kernel panic - not syncing|BUG: unable to handle'
        strip_ansi: true
        actions: [event, log, {exec: [/usr/local/bin/page-oncall, "{tee}"]}, {webhook: "https://hooks.example/x"}]
        cooldown: 1m
      - name: login-prompt
        pattern: 'login: $'
        actions:
          - {send: "root\n"}
          - exec: {argv: [/bin/true], timeout: 5s}
          - webhook: {url: "http://127.0.0.1:9/x", timeout: 2s, retries: 0}
`)
	tc := cfg.Tees[0]
	if tc.Pacing != (tee.Pacing{CharDelay: 2 * time.Millisecond, LineDelay: 50 * time.Millisecond}) {
		t.Errorf("pacing %+v", tc.Pacing)
	}
	if tc.Options().InputPacing != tc.Pacing {
		t.Errorf("pacing does not reach the engine options")
	}
	if string(tc.Enter()) != "\r\n" {
		t.Errorf("line ending %q", tc.Enter())
	}
	if len(tc.Watches) != 2 {
		t.Fatalf("%d watches", len(tc.Watches))
	}
	p := tc.Watches[0]
	if p.Name != "panic" || !p.StripANSI || p.Cooldown != time.Minute || p.Re == nil || !p.Re.MatchString("BUG: unable to handle x") {
		t.Errorf("panic watch %+v", p)
	}
	kinds := []watch.ActionKind{}
	for _, a := range p.Actions {
		kinds = append(kinds, a.Kind)
	}
	if len(kinds) != 4 || kinds[2] != watch.ActExec || p.Actions[2].Argv[1] != "{tee}" || p.Actions[3].URL != "https://hooks.example/x" || p.Actions[3].Retries != -1 {
		t.Errorf("panic actions %+v", p.Actions)
	}
	l := tc.Watches[1].Actions
	if string(l[0].Text) != "root\n" || l[1].Timeout != 5*time.Second || l[2].Retries != 0 || l[2].Timeout != 2*time.Second {
		t.Errorf("login actions %+v", l)
	}
	if string(mustParse(t, withBackend("{name: a, type: null}")).Tees[0].Enter()) != "\r" {
		t.Errorf("default line ending is not CR")
	}
}

func TestParseWatchErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"typo in watch", withWatch("{name: a, pattern: x, actions: [log], coldown: 1s}"),
			`test.yaml:5:47: tees[0].watch[0].coldown: unknown key for a watch; did you mean "cooldown"?`},
		{"bad regexp", withWatch("{name: a, pattern: 'a(', actions: [log]}"),
			"test.yaml:5:28: tees[0].watch[0].pattern: watch: pattern \"a(\": error parsing regexp: missing closing )"},
		{"empty match", withWatch("{name: a, pattern: 'x*', actions: [log]}"),
			"test.yaml:5:28: tees[0].watch[0].pattern: watch: pattern \"x*\" matches the empty string"},
		{"no actions", withWatch("{name: a, pattern: x}"), "test.yaml:5:9: tees[0].watch[0]: actions: required"},
		{"unknown action", withWatch("{name: a, pattern: x, actions: [page]}"),
			`test.yaml:5:41: tees[0].watch[0].actions[0]: "page" is not one of event, log`},
		{"unknown action map", withWatch("{name: a, pattern: x, actions: [{mail: x}]}"),
			`test.yaml:5:42: tees[0].watch[0].actions[0].mail: unknown key for an action`},
		{"exec not a list", withWatch("{name: a, pattern: x, actions: [{exec: /bin/true}]}"),
			"test.yaml:5:48: tees[0].watch[0].actions[0].exec: want a list [program, args...]"},
		{"exec typo", withWatch("{name: a, pattern: x, actions: [{exec: {argv: [x], timout: 1s}}]}"),
			`test.yaml:5:60: tees[0].watch[0].actions[0].exec.timout: unknown key`},
		{"webhook scheme", withWatch("{name: a, pattern: x, actions: [{webhook: 'ftp://x/'}]}"),
			`test.yaml:5:51: tees[0].watch[0].actions[0].webhook: "ftp://x/": want an http:// or https:// URL`},
		{"webhook retries", withWatch("{name: a, pattern: x, actions: [{webhook: {url: 'http://x/', retries: 99}}]}"),
			"test.yaml:5:79: tees[0].watch[0].actions[0].webhook.retries: 99: want 0 to 10"},
		{"send escape", withWatch(`{name: a, pattern: x, actions: [{send: 'a\q'}]}`),
			`test.yaml:5:48: tees[0].watch[0].actions[0].send: watch: escape at byte 1: unknown \q`},
		{"duplicate watch", "tees:\n  - name: t\n    frontend: {type: null}\n    watch:\n      - {name: a, pattern: x, actions: [log]}\n      - {name: a, pattern: y, actions: [log]}\n",
			`test.yaml:6:16: tees[0].watch[1].name: duplicate watch name "a" (first at line 5)`},
		{"pacing typo", "tees:\n  - name: t\n    frontend: {type: null}\n    input_pacing: {char_dealy: 2ms}\n",
			`test.yaml:4:20: tees[0].input_pacing.char_dealy: unknown key`},
		{"line ending", "tees:\n  - name: t\n    frontend: {type: null}\n    line_ending: ''\n",
			`test.yaml:4:18: tees[0].line_ending: "": want 1 to 4 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErrors(t, parseErrs(t, tt.text), []string{tt.want})
		})
	}
}
