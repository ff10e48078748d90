package tee

// Memory bounds, as stated in docs/DESIGN.md ("Memory"). A queued span is
// charged the memory it keeps alive, so these hold whatever the frontend's
// read sizes are; TestQueueBoundsLegMemory checks them with runtime/metrics.

// legSlack is what a leg holds beyond its queue's charge: the leg's
// partly filled compact buffer, its write batch and its own structures.
const legSlack = 8 << 10

// legMemoryBound is the most heap a leg with queue limit q keeps alive:
// its queue's charge (at most q, plus the one chunk a queue always
// accepts, up to a read buffer) and legSlack.
func legMemoryBound(q int, o Options) int {
	o = o.withDefaults()
	if q <= 0 {
		q = defaultQueue
	}
	return q + o.ReadSize + chunkOverhead + legSlack
}

// teeMemoryBound is the most heap a tee keeps alive apart from its legs:
// scrollback (chunks kept by reference are at least half full, and the
// oldest may reach a read buffer past its size; plus a scratch buffer),
// the input buffer (merged input buffers are at least a quarter full),
// and the chunks being read and fanned out.
func teeMemoryBound(o Options) int {
	o = o.withDefaults()
	return 2*(o.Scrollback+o.ReadSize) + scratchSize + 4*o.InputBuffer + 2*o.ReadSize + 32<<10
}
