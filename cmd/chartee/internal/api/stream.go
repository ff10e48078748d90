package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"chartee/chardev"
	"chartee/tee"
)

// maxDataResponse bounds the body of a GET .../data without follow: a
// reader asks again from X-Chartee-Next until it equals X-Chartee-End.
// It keeps one response's memory bounded whatever the ring's size.
const maxDataResponse = 1 << 20

// followChunk is the most a follower is sent in one write.
const followChunk = 32 << 10

// scrollbackOf finds backend name's ring buffer.
func scrollbackOf(t *tee.Tee, name string) (chardev.ScrollbackReader, error) {
	dev, ok := t.Device(name)
	if !ok {
		for _, b := range t.Stats().Backends {
			if b.Name == name && b.Source != "" {
				return nil, newError(CodeNotRingbuf, "backend %q of tee %q is a listener (one leg per client), not a ringbuf", name, t.Name())
			}
		}
		return nil, newError(CodeNotFound, "tee %q has no backend %q with an open device", t.Name(), name)
	}
	sr, ok := dev.(chardev.ScrollbackReader)
	if !ok {
		return nil, newError(CodeNotRingbuf, "backend %q of tee %q is not a ringbuf", name, t.Name())
	}
	return sr, nil
}

// data serves GET /v1/tees/{tee}/backends/{name}/data.
func (s *Server) data(w http.ResponseWriter, r *http.Request) error {
	q, err := parseDataQuery(r.URL.Query())
	if err != nil {
		return err
	}
	t, err := s.lookupTee(r)
	if err != nil {
		return err
	}
	sr, err := scrollbackOf(t, r.PathValue("name"))
	if err != nil {
		return err
	}
	if q.Follow {
		s.follow(w, r, sr, q.Offset)
		return nil
	}
	s.readOnce(w, sr, q.Offset)
	return nil
}

func setDataHeaders(h http.Header) {
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

func formatOffset(v uint64) string { return strconv.FormatUint(v, 10) }

// readOnce sends what is kept from off on, at most maxDataResponse bytes.
func (s *Server) readOnce(w http.ResponseWriter, sr chardev.ScrollbackReader, off uint64) {
	oldest, end := sr.Bounds()
	start := max(off, oldest)
	var size uint64
	if end > start {
		size = min(end-start, maxDataResponse)
	}
	buf := make([]byte, size)
	n, next, missed := sr.ReadAt(off, buf)
	_, end = sr.Bounds()
	h := w.Header()
	setDataHeaders(h)
	h.Set(HeaderOffset, formatOffset(next-uint64(n)))
	h.Set(HeaderNext, formatOffset(next))
	h.Set(HeaderMissed, formatOffset(missed))
	h.Set(HeaderEnd, formatOffset(max(end, next)))
	h.Set("Content-Length", strconv.Itoa(n))
	w.WriteHeader(http.StatusOK)
	w.Write(buf[:n])
}

// follow streams from off on as output arrives. It ends at the first gap
// (the follower fell a whole ring behind), when the ring is closed (the
// backend went away), when the client leaves, or on Shutdown; the
// trailers then say where to resume and what the gap was.
func (s *Server) follow(w http.ResponseWriter, r *http.Request, sr chardev.ScrollbackReader, off uint64) {
	ctx, cancel := s.streamContext(r)
	defer cancel()
	rc := http.NewResponseController(w)
	// The request is all in; a read deadline would cancel a long stream.
	_ = rc.SetReadDeadline(time.Time{})

	buf := make([]byte, followChunk)
	n, next, missed := sr.ReadAt(off, buf)
	pos := next - uint64(n)
	_, end := sr.Bounds()
	h := w.Header()
	setDataHeaders(h)
	h.Set("Trailer", HeaderNext+", "+HeaderMissed)
	h.Set(HeaderOffset, formatOffset(pos))
	h.Set(HeaderMissed, formatOffset(missed))
	h.Set(HeaderEnd, formatOffset(max(end, next)))
	gap := uint64(0)
	defer func() {
		// Declared trailers take their values from the header map at the end.
		h.Set(HeaderNext, formatOffset(pos))
		h.Set(HeaderMissed, formatOffset(gap))
	}()
	if !s.writeChunk(rc, w, nil) {
		return
	}
	for {
		if n > 0 {
			if !s.writeChunk(rc, w, buf[:n]) {
				return
			}
			pos = next
		} else if err := sr.Wait(ctx, pos); err != nil {
			return // ring closed, client gone or shutdown
		}
		n, next, missed = sr.ReadAt(pos, buf)
		if missed > 0 {
			gap = missed
			return
		}
	}
}

// writeChunk writes p and flushes it under a fresh write deadline, so a
// follower that stops reading is dropped after WriteTimeout while a live
// one is never cut. It reports whether the client took it.
func (s *Server) writeChunk(rc *http.ResponseController, w http.ResponseWriter, p []byte) bool {
	_ = rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	if len(p) > 0 {
		if _, err := w.Write(p); err != nil {
			return false
		}
	}
	return rc.Flush() == nil
}

// events streams every tee's events as NDJSON, one flushed line per event,
// until the client leaves or Shutdown.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := s.streamContext(r)
	defer cancel()
	events, unsubscribe := s.d.Subscribe(256)
	defer unsubscribe()
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if !s.writeChunk(rc, w, nil) {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-events:
			if !ok {
				return nil
			}
			line, err := json.Marshal(e)
			if err != nil {
				s.log.Error("control API: encoding event", "err", err)
				continue
			}
			if !s.writeChunk(rc, w, append(line, '\n')) {
				return nil
			}
		}
	}
}

// streamContext ends when the client leaves or the server shuts down.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.streams, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}
