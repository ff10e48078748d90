package watch

import "bytes"

// prefilter finds, in one pass over the text, where the literal prefixes
// of every alternative that has one occur, so that a hundred watches cost
// one scan of a chunk plus a regexp run at each candidate, instead of a
// hundred regexp scans. An alternative without a literal prefix of two
// bytes or more is searched with its regexp as before.
type prefilter struct {
	// seen has a bit for every byte pair that starts some prefix.
	seen    [1 << 16 / 64]uint64
	buckets map[uint16][]prefixRef
	n       int // alternatives with a prefix
}

// prefixRef is one alternative's literal prefix.
type prefixRef struct {
	pat, branch int
	lit         []byte
}

// minPrefix is the shortest prefix worth filtering on.
const minPrefix = 2

func newPrefilter(comp []compiled, pats []int) *prefilter {
	pf := &prefilter{buckets: map[uint16][]prefixRef{}}
	for _, k := range pats {
		for j, lit := range comp[k].prefixes {
			if len(lit) < minPrefix {
				continue
			}
			key := uint16(lit[0])<<8 | uint16(lit[1])
			pf.seen[key/64] |= 1 << (key % 64)
			pf.buckets[key] = append(pf.buckets[key], prefixRef{pat: k, branch: j, lit: lit})
			pf.n++
		}
	}
	return pf
}

// hits records, for each pattern and alternative, the positions of its
// prefix in text, in order. hits[k][j] is reset first.
func (pf *prefilter) hits(text []byte, hits [][][]int) {
	for _, hk := range hits {
		for j := range hk {
			hk[j] = hk[j][:0]
		}
	}
	if pf.n == 0 {
		return
	}
	for i := 0; i+1 < len(text); i++ {
		key := uint16(text[i])<<8 | uint16(text[i+1])
		if pf.seen[key/64]&(1<<(key%64)) == 0 {
			continue
		}
		for _, r := range pf.buckets[key] {
			if bytes.HasPrefix(text[i:], r.lit) {
				hits[r.pat][r.branch] = append(hits[r.pat][r.branch], i)
			}
		}
	}
}
