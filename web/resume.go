package web

// resumeStart is what the server tells a page at hello: given the offset
// the page asked to resume from (resume false for a first connection) and
// the offset the engine started its leg at, how many bytes are lost and
// whether the stream the page held is not this one at all.
func resumeStart(want uint64, resume bool, start uint64) (lost uint64, restarted bool) {
	switch {
	case !resume:
		return 0, false
	case want > start:
		// The engine starts a resuming leg at want or later; earlier
		// means it treated want as beyond its stream.
		return 0, true
	}
	return start - want, false
}

// streamPos is a page's bookkeeping of the stream (static/console.js does
// exactly this): the offset of the next byte it expects and how many
// bytes it has been told it lost. It is here so the arithmetic is tested.
type streamPos struct {
	next    uint64
	lost    uint64
	started bool
}

// from is the offset to resume from, and whether there is one.
func (p *streamPos) from() (uint64, bool) { return p.next, p.started }

func (p *streamPos) hello(h helloMsg) {
	if h.Restarted || !p.started {
		p.lost = 0
	} else {
		p.lost += h.Lost
	}
	p.next, p.started = h.Offset, true
}

func (p *streamPos) at(m atMsg) {
	p.lost += m.Lost
	p.next = m.Offset
}

func (p *streamPos) data(n int) { p.next += uint64(n) }
