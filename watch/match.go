package watch

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"sort"
)

// LookBack bounds the matcher's window: a match lies within one line (it
// cannot contain a newline), and of a line still being printed at most
// LookBack bytes are kept between two chunks. A line longer than that is
// matched over a sliding window of its last LookBack/2 to LookBack bytes
// where it crosses a chunk boundary, so a match longer than LookBack/2
// there may be missed. Memory per tee is bounded by that window, one
// chunk and ContextLines lines, for the raw and the ANSI-stripped view.
const LookBack = 4 << 10

// ContextLines is how many complete lines before a match are kept for
// its context (webhook payloads, `ctl wait` on timeout).
const ContextLines = 5

// Pattern is one compiled watch or wait pattern. ^ and $ are line anchors:
// they match at the start and end of a line (a line's CR LF or LF is not
// part of it), and $ also at the end of what has been printed so far, so
// that a prompt with no newline after it matches.
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
	if tree, err := syntax.Parse(expr, syntax.Perl); err != nil || nullable(tree) {
		return nil, fmt.Errorf("watch: pattern %q matches the empty string, so it would match everywhere", expr)
	}
	return re, nil
}

// nullable reports whether t can match an empty string somewhere (like
// x*, $ or \b), which would make a match at every position.
func nullable(t *syntax.Regexp) bool {
	switch t.Op {
	case syntax.OpNoMatch, syntax.OpLiteral, syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return t.Op == syntax.OpLiteral && len(t.Rune) == 0
	case syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpPlus, syntax.OpCapture:
		return nullable(t.Sub[0])
	case syntax.OpRepeat:
		return t.Min == 0 || nullable(t.Sub[0])
	case syntax.OpConcat:
		for _, s := range t.Sub {
			if !nullable(s) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, s := range t.Sub {
			if nullable(s) {
				return true
			}
		}
		return false
	}
	return true // empty match, line and text anchors, word boundaries
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

// compiled is a pattern prepared for the fast path: its top-level
// alternatives compiled apart in multi-line mode, so each keeps its
// literal prefix (which Go's regexp finds with a vectorized search) and a
// hundred patterns cost a hundred fast scans of a chunk, not a hundred
// slow ones.
type compiled struct {
	line     *regexp.Regexp   // the pattern, for one line at a time
	branches []*regexp.Regexp // (?m) alternatives, for many lines at once
	// prefixes[j] is the literal every match of branches[j] starts with
	// ("" if none): the prefilter finds those, so the regexp runs only
	// where one occurs.
	prefixes [][]byte
}

func compile(re *regexp.Regexp) compiled {
	c := compiled{line: re}
	// Parsed with ^ and $ as line anchors (OneLine off), so that the
	// alternatives, printed back, keep them as line anchors.
	tree, err := syntax.Parse(re.String(), syntax.Perl&^syntax.OneLine)
	if err != nil || anchoredToText(tree) {
		// \A or \z mean the text of one line here, which many lines at
		// once would not give: this pattern is matched line by line.
		return c
	}
	alts := []*syntax.Regexp{tree}
	if tree.Op == syntax.OpAlternate {
		alts = tree.Sub
	}
	for _, a := range alts {
		b, err := regexp.Compile("(?m:" + a.String() + ")")
		if err != nil {
			return compiled{line: re}
		}
		c.branches = append(c.branches, b)
		var lit []byte
		if a.Op == syntax.OpLiteral || (a.Op == syntax.OpConcat && a.Sub[0].Op == syntax.OpLiteral) {
			// Only a branch that starts with a literal (no anchor, no
			// \\b before it), so that running it from the literal's
			// position cannot change what it means.
			p, _ := b.LiteralPrefix()
			lit = []byte(p)
		}
		c.prefixes = append(c.prefixes, lit)
	}
	return c
}

// anchoredToText reports whether t uses \A or \z.
func anchoredToText(t *syntax.Regexp) bool {
	if t.Op == syntax.OpBeginText || t.Op == syntax.OpEndText {
		return true
	}
	for _, s := range t.Sub {
		if anchoredToText(s) {
			return true
		}
	}
	return false
}

// finder searches one pattern in one text: it remembers, per
// alternative, how far through the prefilter's hits it has got.
type finder struct {
	c    *compiled
	text []byte
	hits [][]int // per branch; nil for a branch searched by regexp alone
	cur  []int
}

// find is the leftmost-first match of the pattern in text at or after
// pos, as regexp would find it on text[pos:]: the leftmost start, ties
// going to the earlier alternative.
func (f *finder) find(pos int) (start, end int, ok bool) {
	start = -1
	for j, br := range f.c.branches {
		s, e, found := f.branch(j, br, pos)
		if found && (start < 0 || s < start) {
			start, end = s, e
		}
	}
	return start, end, start >= 0
}

func (f *finder) branch(j int, br *regexp.Regexp, pos int) (int, int, bool) {
	if f.hits == nil || len(f.c.prefixes[j]) < minPrefix {
		if loc := br.FindIndex(f.text[pos:]); loc != nil {
			return pos + loc[0], pos + loc[1], true
		}
		return 0, 0, false
	}
	hits := f.hits[j]
	for ; f.cur[j] < len(hits); f.cur[j]++ {
		h := hits[f.cur[j]]
		if h < pos {
			continue
		}
		// Within the hit's line: a match spanning lines is not one.
		le := len(f.text)
		if i := bytes.IndexByte(f.text[h:], '\n'); i >= 0 {
			le = h + i
		}
		if loc := br.FindIndex(f.text[h:le]); loc != nil && loc[0] == 0 {
			return h, h + loc[1], true
		}
	}
	return 0, 0, false
}

// Matcher matches patterns over a stream fed in order by Feed. It is not
// safe for concurrent use: one goroutine (the watch leg's writer) feeds it.
type Matcher struct {
	pats  []Pattern
	comp  []compiled
	views [2]*lineView // raw, ANSI-stripped; nil when no pattern needs it
}

// NewMatcher returns a matcher for pats.
func NewMatcher(pats []Pattern) *Matcher {
	m := &Matcher{pats: pats}
	for i, p := range pats {
		m.comp = append(m.comp, compile(p.Re))
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
			v.feed(m.comp, p, off, emit)
		}
	}
}

// seg maps text[at:] to stream offsets from off on, up to the next seg.
type seg struct {
	at  int
	off uint64
}

// lineView is the text being matched, raw or stripped: the line still
// being printed plus the chunk being fed, with the CR of every CR LF left
// out and where each byte came from.
type lineView struct {
	strip bool
	ansi  ansiState
	pats  []int // the matcher's patterns this view serves
	text  []byte
	segs  []seg
	// next[k] is the index in text where pattern k's next match may
	// start: past its last match.
	next  []int
	ctx   [][]byte // last complete lines, oldest first
	endAt uint64   // stream offset just past the last byte fed
	fed   bool

	pf   *prefilter
	hits [][][]int // per pattern, per branch: prefix positions in text
}

func (v *lineView) feed(comp []compiled, p []byte, off uint64, emit func(Match)) {
	if v.fed && off != v.endAt && len(v.text) > 0 {
		// A gap: what came before is a line of its own.
		v.add([]byte{'\n'}, v.endAt-1, false)
	}
	v.fed = true
	v.endAt = off + uint64(len(p))
	v.add(p, off, v.strip)
	if v.pf == nil {
		v.pf = newPrefilter(comp, v.pats)
		v.hits = make([][][]int, len(comp))
		for _, k := range v.pats {
			v.hits[k] = make([][]int, len(comp[k].branches))
		}
	}
	v.pf.hits(bytes.TrimSuffix(v.text, []byte{'\r'}), v.hits)
	for _, k := range v.pats {
		v.scan(k, &comp[k], emit)
	}
	v.keepLastLine()
}

// add appends p (stream offset off) to text, leaving out the CR of each
// CR LF — one split across chunks too — and escapes in a stripped view.
func (v *lineView) add(p []byte, off uint64, strip bool) {
	for i := 0; i < len(p); {
		c := p[i]
		if strip && !v.ansi.keep(c) {
			i++
			continue
		}
		if c == '\n' && len(v.text) > 0 && v.text[len(v.text)-1] == '\r' {
			v.popByte()
		}
		if !strip && c != '\r' && c != '\n' {
			// Copy the run up to the next CR or LF at once.
			j := i + 1
			for j < len(p) && p[j] != '\r' && p[j] != '\n' {
				j++
			}
			v.addSeg(off + uint64(i))
			v.text = append(v.text, p[i:j]...)
			i = j
			continue
		}
		v.addSeg(off + uint64(i))
		v.text = append(v.text, c)
		i++
	}
}

func (v *lineView) popByte() {
	v.text = v.text[:len(v.text)-1]
	if n := len(v.segs); n > 0 && v.segs[n-1].at == len(v.text) {
		v.segs = v.segs[:n-1]
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
	k := sort.Search(len(v.segs), func(j int) bool { return v.segs[j].at > i }) - 1
	s := v.segs[max(k, 0)]
	return s.off + uint64(i-s.at)
}

// scan reports pattern k's new matches in text. Whole lines are searched
// many at once with the multi-line branches; the rest of a line after a
// match, and a line where a match would cross a newline, are searched on
// their own with the pattern itself.
func (v *lineView) scan(k int, c *compiled, emit func(Match)) {
	// A CR at the very end may be the first half of a CR LF: like the
	// CR of every CR LF, it is not part of the line.
	text := bytes.TrimSuffix(v.text, []byte{'\r'})
	f := finder{c: c, text: text, hits: v.hits[k], cur: make([]int, len(c.branches))}
	pos := v.next[k]
	for pos < len(text) {
		ls := bytes.LastIndexByte(text[:pos], '\n') + 1
		if pos != ls || len(c.branches) == 0 {
			pos = v.scanLine(k, c, ls, pos, emit)
			continue
		}
		s, e, ok := f.find(pos)
		if !ok {
			break
		}
		ls = bytes.LastIndexByte(text[:s], '\n') + 1
		if bytes.IndexByte(text[s:e], '\n') >= 0 {
			pos = v.scanLine(k, c, ls, ls, emit)
			continue
		}
		v.report(k, ls, s, e, emit)
		pos = v.scanLine(k, c, ls, e, emit)
	}
}

// scanLine reports pattern k's matches in the line starting at ls that
// start at or after from, and returns where the next line starts.
func (v *lineView) scanLine(k int, c *compiled, ls, from int, emit func(Match)) int {
	le := len(v.text)
	if i := bytes.IndexByte(v.text[ls:], '\n'); i >= 0 {
		le = ls + i
	}
	line := v.text[ls:le]
	if le == len(v.text) {
		line = bytes.TrimSuffix(line, []byte{'\r'}) // maybe half a CR LF
	}
	for _, loc := range c.line.FindAllIndex(line, -1) {
		if ls+loc[0] >= from && loc[1] > loc[0] {
			v.report(k, ls, ls+loc[0], ls+loc[1], emit)
		}
	}
	v.next[k] = max(v.next[k], from)
	return le + 1
}

// report emits a match at text[s:e] in the line starting at ls.
func (v *lineView) report(k, ls, s, e int, emit func(Match)) {
	if s < v.next[k] {
		return
	}
	v.next[k] = e
	le := len(v.text)
	if i := bytes.IndexByte(v.text[ls:], '\n'); i >= 0 {
		le = ls + i
	}
	emit(Match{
		Pattern: k,
		Text:    bytes.Clone(v.text[s:e]),
		Offset:  v.offsetOf(s),
		End:     v.offsetOf(e-1) + 1,
		Line:    bytes.Clone(v.lineText(ls, le)),
		Context: v.contextBefore(ls),
	})
}

// lineText is text[ls:le] without a CR that may be half a CR LF.
func (v *lineView) lineText(ls, le int) []byte {
	if le == len(v.text) {
		return bytes.TrimSuffix(v.text[ls:le], []byte{'\r'})
	}
	return v.text[ls:le]
}

// contextBefore is up to ContextLines complete lines before text[ls].
func (v *lineView) contextBefore(ls int) [][]byte {
	var out [][]byte
	end := ls - 1 // the newline ending the line before
	for end >= 0 && len(out) < ContextLines {
		start := bytes.LastIndexByte(v.text[:end], '\n') + 1
		out = append(out, bytes.Clone(v.text[start:end]))
		end = start - 1
	}
	for i := len(v.ctx) - 1; i >= 0 && len(out) < ContextLines; i-- {
		out = append(out, bytes.Clone(v.ctx[i]))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// keepLastLine drops the complete lines (remembering the last few as
// context) and keeps the line still being printed, at most LookBack of it.
func (v *lineView) keepLastLine() {
	cut := bytes.LastIndexByte(v.text, '\n') + 1
	if cut > 0 {
		v.remember(v.text[:cut-1])
	}
	if len(v.text)-cut > LookBack {
		cut = len(v.text) - LookBack/2
	}
	if cut == 0 {
		return
	}
	base := v.offsetOf(min(cut, len(v.text)-1))
	rest := len(v.text) - cut
	segs := v.segs[:0]
	if rest > 0 {
		segs = append(segs, seg{at: 0, off: base})
		for _, s := range v.segs {
			if s.at > cut {
				segs = append(segs, seg{at: s.at - cut, off: s.off})
			}
		}
	}
	v.segs = segs
	v.text = append(v.text[:0], v.text[cut:]...)
	for _, k := range v.pats {
		v.next[k] = max(0, v.next[k]-cut)
	}
}

// remember keeps the last ContextLines lines of complete, reusing the
// buffers of the lines it forgets.
func (v *lineView) remember(complete []byte) {
	var lines [][]byte
	end := len(complete)
	for len(lines) < ContextLines && end >= 0 {
		start := bytes.LastIndexByte(complete[:end], '\n') + 1
		lines = append(lines, complete[start:end])
		end = start - 1
	}
	for i := len(lines) - 1; i >= 0; i-- {
		var buf []byte
		if len(v.ctx) == ContextLines {
			buf = v.ctx[0][:0]
			copy(v.ctx, v.ctx[1:])
			v.ctx = v.ctx[:ContextLines-1]
		}
		v.ctx = append(v.ctx, append(buf, lines[i]...))
	}
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
	var out [][]byte
	for _, l := range v.ctx {
		out = append(out, bytes.Clone(l))
	}
	if t := bytes.TrimSuffix(v.text, []byte{'\r'}); len(t) > 0 {
		out = append(out, bytes.Clone(t))
	}
	return out
}
