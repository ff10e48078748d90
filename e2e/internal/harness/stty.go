package harness

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// SttySettings is what matters of a tty's termios for a serial line.
type SttySettings struct {
	Baud     int
	DataBits int    // cs5..cs8
	Parity   string // none, even, odd (mark/space: cmspar)
	StopBits int    // 1 or 2
	Flags    map[string]bool
	Raw      string
}

var speedRE = regexp.MustCompile(`speed (\d+) baud`)

func parseStty(out string) SttySettings {
	s := SttySettings{Flags: map[string]bool{}, Raw: out}
	if m := speedRE.FindStringSubmatch(out); m != nil {
		s.Baud, _ = strconv.Atoi(m[1])
	}
	for _, w := range strings.Fields(strings.ReplaceAll(out, ";", " ")) {
		if strings.HasPrefix(w, "-") {
			s.Flags[w[1:]] = false
		} else {
			s.Flags[w] = true
		}
	}
	for _, cs := range []string{"cs5", "cs6", "cs7", "cs8"} {
		if s.Flags[cs] {
			s.DataBits = int(cs[2] - '0')
		}
	}
	switch {
	case !s.Flags["parenb"]:
		s.Parity = "none"
	case s.Flags["cmspar"] && s.Flags["parodd"]:
		s.Parity = "mark"
	case s.Flags["cmspar"]:
		s.Parity = "space"
	case s.Flags["parodd"]:
		s.Parity = "odd"
	default:
		s.Parity = "even"
	}
	s.StopBits = 1
	if s.Flags["cstopb"] {
		s.StopBits = 2
	}
	return s
}

func execOutput(program string, args ...string) (string, error) {
	out, err := exec.Command(program, args...).CombinedOutput()
	return string(out), err
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
