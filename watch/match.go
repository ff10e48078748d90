package watch

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
)

// LookBack is the matcher's window: the most of one line a pattern is
// matched against. A match lies within one line (it cannot contain a
// newline); a line longer than LookBack is matched over a sliding window
// of its last LookBack/2 to LookBack bytes, so a match longer than
// LookBack/2 on such a line may be missed. Memory per tee is bounded by
// two windows (raw and ANSI-stripped) plus ContextLines lines each.
const LookBack = 4 << 10

// ContextLines is how many complete lines before a match are kept for
// its context (webhook payloads, `ctl wait` on timeout).
const ContextLines = 5

// Pattern is one compiled watch or wait pattern.
type Pattern struct {
	Name      string
	Re        *regexp.Regexp
	StripANSI bool // match the text with terminal escape sequences removed
}

// CompilePattern compiles an RE2 pattern for the stream matcher. A pattern
// that matches the empty string is refused: it would match everywhere.
func CompilePattern(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, errors.New("watch: pattern: empty")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("watch: pattern %q: %w", expr, err)
	}
	if re.Match(nil) {
		return nil, fmt.Errorf("watch: pattern %q matches the empty string, so it would match everywhere", expr)
	}
	return re, nil
}

// Match is one match of one pattern in the stream.
type Match struct {
	Pattern int    // index into the matcher's patterns
	Text    []byte // the matched text (ANSI-stripped if the pattern asks)
	Offset  uint64 // stream offset of the match's first byte
	End     uint64 // stream offset just past its last byte
	// Line is the line holding the match as seen so far (without its
	// line ending), Context the complete lines before it, oldest first.
	Line    []byte
	Context [][]byte
}

// Matcher matches patterns over a stream fed in order by Feed. It is not
// safe for concurrent use: one goroutine (the watch leg's writer) feeds it.
type Matcher struct {
	pats  []Pattern
	views [2]*lineView // raw, ANSI-stripped; nil when no pattern needs it
}

// NewMatcher returns a matcher for pats.
func NewMatcher(pats []Pattern) *Matcher {
	m := &Matcher{pats: pats}
	for i, p := range pats {
		v := 0
		if p.StripANSI {
			v = 1
		}
		if m.views[v] == nil {
			m.views[v] = &lineView{strip: v == 1, next: make([]int, len(pats))}
		}
		m.views[v].pats = append(m.views[v].pats, i)
	}
	return m
}

// Patterns are the matcher's patterns.
func (m *Matcher) Patterns() []Pattern { return m.pats }

// Feed matches chunk p, whose first byte has stream offset off, calling
// emit for each new match. Chunks must come in stream order; a gap (a
// dropped chunk) ends the current line.
func (m *Matcher) Feed(p []byte, off uint64, emit func(Match)) {
	for _, v := range m.views {
		if v != nil {
			v.feed(m.pats, p, off, emit)
		}
	}
}

// seg maps text[at:] to stream offsets from off on, up to the next seg.
type seg struct {
	at  int
	off uint64
}

// lineView is the current line of the stream, raw or stripped, with
// where each of its bytes came from and how far each pattern has matched.
type lineView struct {
	strip bool
	ansi  ansiState
	pats  []int // the matcher's patterns this view serves
	text  []byte
	segs  []seg
	// next[k] is the index in text where pattern k's next match may
	// start: past its last match on this line.
	next  []int
	ctx   [][]byte // last complete lines, oldest first
	endAt uint64   // stream offset just past the last byte fed
	fed   bool
}

func (v *lineView) feed(pats []Pattern, p []byte, off uint64, emit func(Match)) {
	if v.fed && off != v.endAt {
		v.endLine(pats, emit) // a gap: what came before is a line of its own
	}
	v.fed = true
	v.endAt = off + uint64(len(p))
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		v.appendText(pats, part, off, emit)
		if i < 0 {
			break
		}
		v.endLine(pats, emit)
		p, off = p[i+1:], off+uint64(i+1)
	}
	if len(v.text) > 0 {
		v.scan(pats, emit) // a prompt has no newline after it
	}
}

// appendText adds bytes of one line (no newline), stripping escapes in a
// stripped view and sliding the window when the line outgrows it.
func (v *lineView) appendText(pats []Pattern, p []byte, off uint64, emit func(Match)) {
	for j := 0; j < len(p); {
		if len(v.text) >= LookBack {
			v.slide(pats, emit)
		}
		room := LookBack - len(v.text)
		if !v.strip {
			n := min(room, len(p)-j)
			v.addSeg(off + uint64(j))
			v.text = append(v.text, p[j:j+n]...)
			j += n
			continue
		}
		for ; j < len(p) && len(v.text) < LookBack; j++ {
			if v.ansi.keep(p[j]) {
				v.addSeg(off + uint64(j))
				v.text = append(v.text, p[j])
			}
		}
	}
}

// addSeg records that the next text byte comes from stream offset off.
func (v *lineView) addSeg(off uint64) {
	if n := len(v.segs); n > 0 {
		last := v.segs[n-1]
		if last.off+uint64(len(v.text)-last.at) == off {
			return
		}
	}
	v.segs = append(v.segs, seg{at: len(v.text), off: off})
}

// offsetOf is the stream offset of text[i].
func (v *lineView) offsetOf(i int) uint64 {
	k := len(v.segs) - 1
	for k > 0 && v.segs[k].at > i {
		k--
	}
	s := v.segs[k]
	return s.off + uint64(i-s.at)
}

// slide matches the full window, then drops its older half.
func (v *lineView) slide(pats []Pattern, emit func(Match)) {
	v.scan(pats, emit)
	half := LookBack / 2
	base := v.offsetOf(half)
	v.text = append(v.text[:0], v.text[half:]...)
	segs := v.segs[:0]
	segs = append(segs, seg{at: 0, off: base})
	for _, s := range v.segs {
		if s.at > half {
			segs = append(segs, seg{at: s.at - half, off: s.off})
		}
	}
	v.segs = segs
	for _, k := range v.pats {
		v.next[k] = max(0, v.next[k]-half)
	}
}

// endLine matches the completed line and starts a new one.
func (v *lineView) endLine(pats []Pattern, emit func(Match)) {
	v.scan(pats, emit)
	if len(v.text) > 0 || len(v.segs) > 0 {
		line := bytes.TrimRight(v.text, "\r")
		if len(v.ctx) == ContextLines {
			copy(v.ctx, v.ctx[1:])
			v.ctx = v.ctx[:ContextLines-1]
		}
		v.ctx = append(v.ctx, bytes.Clone(line))
	}
	v.text, v.segs = v.text[:0], v.segs[:0]
	for _, k := range v.pats {
		v.next[k] = 0
	}
}

// scan reports each pattern's matches in the line that start at or after
// where its last match ended. The line is matched whole, so ^ and \b see
// their real context; trailing carriage returns are left out so that $
// means the end of the line on a CRLF console.
func (v *lineView) scan(pats []Pattern, emit func(Match)) {
	text := bytes.TrimRight(v.text, "\r")
	if len(text) == 0 {
		return
	}
	for _, k := range v.pats {
		if v.next[k] >= len(text) {
			continue
		}
		for _, loc := range pats[k].Re.FindAllIndex(text, -1) {
			if loc[0] < v.next[k] || loc[1] == loc[0] {
				continue
			}
			v.next[k] = loc[1]
			emit(Match{
				Pattern: k,
				Text:    bytes.Clone(text[loc[0]:loc[1]]),
				Offset:  v.offsetOf(loc[0]),
				End:     v.offsetOf(loc[1]-1) + 1,
				Line:    bytes.Clone(text),
				Context: v.context(),
			})
		}
	}
}

func (v *lineView) context() [][]byte {
	out := make([][]byte, len(v.ctx))
	for i, l := range v.ctx {
		out[i] = bytes.Clone(l)
	}
	return out
}

// Context returns the last complete lines the raw view saw (or the
// stripped one when only stripped patterns exist), oldest first, plus the
// current partial line, for `ctl wait`'s timeout report.
func (m *Matcher) Context() [][]byte {
	v := m.views[0]
	if v == nil {
		v = m.views[1]
	}
	if v == nil {
		return nil
	}
	out := v.context()
	if t := bytes.TrimRight(v.text, "\r"); len(t) > 0 {
		out = append(out, bytes.Clone(t))
	}
	return out
}
