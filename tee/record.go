package tee

import (
	"fmt"

	"chartee/chardev"
)

// Input recorders (a capture with direction in or both) are fed by their
// leg's own writer, not by the frontend input writer: a capture that is
// rotating, compressing, or a FIFO nobody reads must not stop typing for
// every leg. The input writer only queues a copy of the input for each
// recorder leg, bounded by maxRecordBacklog; beyond it the input is not
// recorded, counted, and told by a drop event.

// maxRecordBacklog bounds the input waiting for one leg's recorder.
const maxRecordBacklog = 64 << 10

// inputRecord is input waiting for a leg's recorder. before is the stream
// offset when it was sent to the frontend: output from that offset on (an
// echo of it, say) is written to the device after it, output before it
// first, so a capture of both directions shows a key before its echo.
type inputRecord struct {
	before uint64
	who    chardev.InputAuthor
	b      []byte
}

// queueRecord queues p, typed by who and about to be written to the
// frontend at stream offset at, for l's recorder. It never waits.
func (l *leg) queueRecord(at uint64, who chardev.InputAuthor, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return
	}
	if l.recBytes+len(p) > maxRecordBacklog {
		l.c.recDropped.Add(uint64(len(p)))
		if !l.recDropping {
			l.recDropping = true
			l.t.emit(Event{Kind: EventDrop, Backend: l.backend.name, Leg: l.name, Offset: at,
				Reason: "input capture queue full (the device is not taking input records): input not recorded"})
		}
		return
	}
	l.recDropping = false
	if n := len(l.records); n > 0 && l.records[n-1].before == at && l.records[n-1].who == who {
		l.records[n-1].b = append(l.records[n-1].b, p...)
	} else {
		l.records = append(l.records, inputRecord{before: at, who: who, b: append([]byte(nil), p...)})
	}
	l.recBytes += len(p)
	l.wakeLocked()
}

// recordDueLocked reports whether the head input record is to be written
// before any more output: no output is queued (or may be written now)
// that comes before it.
func (l *leg) recordDueLocked() bool {
	if len(l.records) == 0 {
		return false
	}
	if l.q.len() == 0 || l.held {
		return true
	}
	f := l.q.front()
	return f.c.off+uint64(f.skip) >= l.records[0].before
}

// deliverRecordLocked hands the head input record to the device, with
// l.mu released for the call, if it is due.
func (l *leg) deliverRecordLocked() bool {
	if !l.recordDueLocked() {
		return false
	}
	r := l.records[0]
	l.records[0] = inputRecord{}
	l.records = l.records[1:]
	if len(l.records) == 0 {
		l.records = nil
	}
	l.recBytes -= len(r.b)
	l.mu.Unlock()
	var err error
	if l.attributed != nil {
		err = l.attributed.RecordInputFrom(r.who, r.b)
	} else {
		err = l.recorder.RecordInput(r.b)
	}
	l.mu.Lock()
	if err != nil {
		l.failLocked(fmt.Errorf("record input: %w", err))
	}
	return true
}

// limitBatchLocked trims the write batch so it ends before the head input
// record's offset: that record is written first.
func (l *leg) limitBatchLocked() {
	if len(l.records) == 0 {
		return
	}
	limit := l.records[0].before
	for i := range l.wbufs {
		s := l.q.at(i)
		start := s.c.off + uint64(s.skip)
		if start >= limit {
			l.wbufs = l.wbufs[:i]
			return
		}
		if end := start + uint64(len(l.wbufs[i])); end > limit {
			l.wbufs[i] = l.wbufs[i][:limit-start]
			l.wbufs = l.wbufs[:i+1]
			return
		}
	}
}
