package cli

import (
	"fmt"
	"slices"
	"strings"

	"chartee/chardev"
)

const completionUsage = `Usage: chartee completion bash|zsh|fish

Prints a completion script for the shell: subcommands, ctl commands,
backend types (chartee types), and files for run and check. Install:
  bash: chartee completion bash > /etc/bash_completion.d/chartee
        (or: source <(chartee completion bash) in ~/.bashrc)
  zsh:  chartee completion zsh > "${fpath[1]}/_chartee"
  fish: chartee completion fish > ~/.config/fish/completions/chartee.fish
`

func (a *app) completion(args []string) int {
	fs := newFlagSet("chartee completion", a.stderr, completionUsage)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return flagExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprint(a.stderr, "chartee completion: want one shell: bash, zsh or fish\n")
		return exitUsage
	}
	w := completionWords()
	switch pos[0] {
	case "bash":
		fmt.Fprintf(a.stdout, bashCompletion, w.cmds, w.ctl, w.types)
	case "zsh":
		fmt.Fprintf(a.stdout, zshCompletion, w.cmds, w.ctl, w.types)
	case "fish":
		fmt.Fprintf(a.stdout, fishCompletion, w.cmds, w.ctl, w.types)
	default:
		fmt.Fprintf(a.stderr, "chartee completion: unknown shell %q: want bash, zsh or fish\n", pos[0])
		return exitUsage
	}
	return exitOK
}

type words struct{ cmds, ctl, types string }

// completionWords are the words to complete, from the same tables the
// command line dispatches on.
func completionWords() words {
	var ctl []string
	for c := range ctlArgs {
		ctl = append(ctl, c)
	}
	slices.Sort(ctl)
	var types []string
	for _, t := range chardev.Types() {
		if !strings.HasSuffix(t, "-test") {
			types = append(types, t)
		}
	}
	return words{strings.Join(commandNames(), " "), strings.Join(ctl, " "), strings.Join(types, " ")}
}

const bashCompletion = `# bash completion for chartee (chartee completion bash)
_chartee() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "%[1]s" -- "$cur"))
        return
    fi
    case ${COMP_WORDS[1]} in
    ctl)
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--socket --url --token-file --json --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "%[2]s" -- "$cur"))
        fi ;;
    types) COMPREPLY=($(compgen -W "%[3]s" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
    help) COMPREPLY=($(compgen -W "%[1]s" -- "$cur")) ;;
    run|check) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -o default -F _chartee chartee
`

const zshCompletion = `#compdef chartee
# zsh completion for chartee (chartee completion zsh)
_chartee() {
    if (( CURRENT == 2 )); then
        compadd -- %[1]s
        return
    fi
    case $words[2] in
    ctl) compadd -- %[2]s ;;
    types) compadd -- %[3]s ;;
    completion) compadd -- bash zsh fish ;;
    help) compadd -- %[1]s ;;
    run|check) _files ;;
    esac
}
compdef _chartee chartee
`

const fishCompletion = `# fish completion for chartee (chartee completion fish)
complete -c chartee -f
complete -c chartee -n '__fish_use_subcommand' -a '%[1]s'
complete -c chartee -n '__fish_seen_subcommand_from ctl' -a '%[2]s'
complete -c chartee -n '__fish_seen_subcommand_from types' -a '%[3]s'
complete -c chartee -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'
complete -c chartee -n '__fish_seen_subcommand_from help' -a '%[1]s'
complete -c chartee -n '__fish_seen_subcommand_from run check' -F
`
