//go:build linux

package backends

import (
	"errors"
	"sync"
	"syscall"
)

// readPoller says when a client whose leg keeps no reader goroutine
// (chardev.ReadWaiter) has something to read: one epoll set and one
// goroutine for every such client of the process, the goroutine running
// only while some client waits. Go's own poller wakes only a goroutine
// parked on the socket, which is what an idle client should not need:
// 2 KiB of stack and a 480-byte goroutine each.
//
// A socket can be in several epoll sets: Go's poller keeps its own
// registration, untouched. Each wait is one-shot and known by a token (the
// event's data), never by its descriptor number, which a closed socket
// gives up for the next one; a wait is deregistered through the
// connection (syscall.RawConn.Control), so never on a descriptor that has
// already been closed and reused.
type readPoller struct {
	mu      sync.Mutex
	epfd    int // 0 until first use
	initErr error
	pipe    [2]int // the loop's wake-up: a wait cancelled, the set may be empty
	waits   map[uint64]readWait
	next    uint64 // last token given; 0 is the pipe
	running bool
	fired   []func() // the loop's, reused
}

type readWait struct {
	rc    syscall.RawConn
	ready func()
}

// readPoll is the process's read poller.
var readPoll readPoller

const readPollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

// errReadPoll: the process could not make its epoll set.
var errReadPoll = errors.New("read poller unavailable")

func (p *readPoller) initLocked() error {
	if p.epfd != 0 || p.initErr != nil {
		return p.initErr
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		p.initErr = errors.Join(errReadPoll, err)
		return p.initErr
	}
	if err := syscall.Pipe2(p.pipe[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		syscall.Close(epfd)
		p.initErr = errors.Join(errReadPoll, err)
		return p.initErr
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN} // token 0
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.pipe[0], &ev); err != nil {
		syscall.Close(epfd)
		syscall.Close(p.pipe[0])
		syscall.Close(p.pipe[1])
		p.initErr = errors.Join(errReadPoll, err)
		return p.initErr
	}
	p.epfd = epfd
	p.waits = map[uint64]readWait{}
	return nil
}

// add calls ready once rc's socket is readable (or hung up, or failed),
// or when cancel is called with the returned token. It reports false,
// and never calls ready, if the socket cannot be waited for (closed).
func (p *readPoller) add(rc syscall.RawConn, ready func()) (uint64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.initLocked() != nil {
		return 0, false
	}
	tok := p.next + 1
	var err error
	cerr := rc.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: readPollEvents, Fd: int32(uint32(tok)), Pad: int32(uint32(tok >> 32))}
		err = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	})
	if cerr != nil || err != nil {
		return 0, false
	}
	p.next = tok
	p.waits[tok] = readWait{rc: rc, ready: ready}
	if !p.running {
		p.running = true
		go p.loop()
	}
	return tok, true
}

// cancel ends the wait tok, if it is still pending, and returns its ready
// for the caller to call; nil if it fired already (or tok is 0).
func (p *readPoller) cancel(tok uint64) func() {
	if tok == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.waits[tok]
	if !ok {
		return nil
	}
	p.removeLocked(tok, w)
	if len(p.waits) == 0 && p.running {
		// Let the loop see the set is empty and end.
		_, _ = syscall.Write(p.pipe[1], []byte{0})
	}
	return w.ready
}

func (p *readPoller) removeLocked(tok uint64, w readWait) {
	delete(p.waits, tok)
	_ = w.rc.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	if len(p.waits) == 0 {
		p.waits = map[uint64]readWait{} // a map never shrinks: a new one once a crowd has left
	}
}

// loop waits for the set's events and calls each ready outside the lock.
// It ends when no wait is left.
func (p *readPoller) loop() {
	events := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err == syscall.EINTR {
			continue
		}
		p.mu.Lock()
		fired := p.fired[:0]
		if err != nil {
			// Cannot happen with a valid set; should it, every waiter
			// reads (blocking, as without the poller) and the poller
			// is not used again.
			p.initErr = errors.Join(errReadPoll, err)
			for tok, w := range p.waits {
				p.removeLocked(tok, w)
				fired = append(fired, w.ready)
			}
		}
		for _, ev := range events[:max(n, 0)] {
			tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if tok == 0 {
				var b [64]byte
				for {
					if n, _ := syscall.Read(p.pipe[0], b[:]); n <= 0 {
						break
					}
				}
				continue
			}
			if w, ok := p.waits[tok]; ok {
				p.removeLocked(tok, w)
				fired = append(fired, w.ready)
			}
		}
		done := len(p.waits) == 0
		if done {
			p.running = false
			p.fired = nil
		} else {
			p.fired = fired
		}
		p.mu.Unlock()
		for i, ready := range fired {
			fired[i] = nil
			ready()
		}
		if done {
			return
		}
	}
}
