package tee

import (
	"fmt"
	"time"

	"chartee/chardev"
)

// maxPendingNotices bounds the notices queued for one leg: a person who
// is not reading needs the latest few, not an unbounded backlog.
const maxPendingNotices = 8

// notice queues text for the leg's device if it is a chardev.Noticer. The
// leg's own writer delivers it, between two data writes, so a notice never
// lands inside a write and never blocks the caller on the device.
func (l *leg) notice(text string) {
	if l.noticer == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return
	}
	if len(l.notices) >= maxPendingNotices {
		l.notices = l.notices[1:]
	}
	l.notices = append(l.notices, text)
	l.wakeLocked()
}

// deliverNoticesLocked hands the queued notices to the device with l.mu
// released, and reports whether there were any.
func (l *leg) deliverNoticesLocked() bool {
	if len(l.notices) == 0 {
		return false
	}
	texts := l.notices
	l.notices = nil
	l.mu.Unlock()
	for _, s := range texts {
		l.noticer.Notice(s)
	}
	l.mu.Lock()
	return true
}

// Notice shows text on every interactive leg of the tee (those whose
// device is a chardev.Noticer); raw legs never see it.
func (t *Tee) Notice(text string) {
	for _, l := range t.view.Load().legs {
		l.notice(text)
	}
}

// noticeFrontend tells interactive legs where the frontend is now.
func (t *Tee) noticeFrontend(format string, args ...any) {
	t.Notice(t.opts.Name + ": " + fmt.Sprintf(format, args...))
}

// refusedNotice tells l, once per lock episode, that its typing is being
// discarded because h holds the write lock, and how to ask for it. It
// runs under the input lock.
func (m *inputMerge) refusedNoticeLocked(t *Tee, l, h *leg) {
	if l.refusedEpoch == m.epoch {
		return
	}
	l.refusedEpoch = m.epoch
	who := h.name
	if h.peer != "" {
		who += " (" + h.peer + ")"
	}
	how := fmt.Sprintf("it is released after %s idle", m.idle.Round(time.Second))
	if k := escapeKey(l.dev); k != "" {
		how = fmt.Sprintf("%s l takes it once they are %s idle, %s s shows who has it", k, m.idle.Round(time.Second), k)
	}
	l.notice(fmt.Sprintf("%s: input discarded: the write lock is held by %s; %s", t.opts.Name, who, how))
}

// setHolderLocked gives the write lock to l (nil: nobody); a new holder
// starts a new episode, so refused legs are told again.
func (m *inputMerge) setHolderLocked(l *leg) {
	if m.holder != l {
		m.epoch++
	}
	m.holder = l
}

// escapeKey is the escape key of a leg's device, if it has one.
func escapeKey(dev chardev.Chardev) string {
	if e, ok := dev.(chardev.Escaper); ok {
		return e.EscapeKey()
	}
	return ""
}
