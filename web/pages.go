package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"chartee/chardev"
	"chartee/tee"
)

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Warn("web: render", "page", name, "err", err)
	}
}

// consoleInfo is one console as the index shows it.
type consoleInfo struct {
	Name       string     `json:"name"`
	Role       string     `json:"role"`
	FrontendUp bool       `json:"frontend_up"`
	Device     string     `json:"device"`
	LastError  string     `json:"last_error,omitempty"`
	InputMode  string     `json:"input_mode"`
	WriteLock  string     `json:"write_lock,omitempty"`
	Attached   []attached `json:"attached"`
}

// visible lists the consoles user may see, with their state.
func (s *Server) visible(user string) []consoleInfo {
	out := []consoleInfo{}
	for _, t := range s.opts.Consoles.Tees() {
		role := s.role(user, t.Name())
		if role == chardev.RoleNone {
			continue
		}
		st := t.Stats()
		out = append(out, consoleInfo{
			Name: st.Name, Role: role.String(), FrontendUp: st.Frontend.Up, Device: st.Frontend.Device,
			LastError: st.Frontend.LastError, InputMode: st.InputMode, WriteLock: lockHolder(st),
			Attached: attachedOf(st),
		})
	}
	return out
}

// attachedOf lists a tee's legs; a person's leg (SSH, browser) shows
// its user.
func attachedOf(st tee.Stats) []attached {
	out := []attached{}
	for _, l := range st.Legs {
		out = append(out, attached{Name: l.Name, User: l.User, Peer: l.Peer})
	}
	return out
}

// lockHolder names who holds the write lock: user and leg for a person.
func lockHolder(st tee.Stats) string {
	if st.WriteLockUser != "" {
		return st.WriteLockUser + " (" + st.WriteLock + ")"
	}
	return st.WriteLock
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	id := identityOf(r)
	s.render(w, "index.html", map[string]any{
		"User": id.user, "CSRF": id.csrf, "Consoles": s.visible(id.user), "Logout": id.session != "",
	})
}

func (s *Server) consoleList(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(s.visible(identityOf(r).user))
}

// consoleWatch streams the console list (server-sent events) whenever it
// changes, so the index updates live.
func (s *Server) consoleWatch(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "web: streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	user := identityOf(r).user
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var last []consoleInfo
	for {
		if cur := s.visible(user); last == nil || !reflect.DeepEqual(cur, last) {
			b, _ := json.Marshal(cur)
			if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
				return
			}
			fl.Flush()
			last = cur
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.wsCtx.Done():
			return
		case <-tick.C:
		}
	}
}

// console finds the tee of the request and the user's role on it; a
// console the user may not see does not exist for them.
func (s *Server) console(w http.ResponseWriter, r *http.Request) (*tee.Tee, identity, chardev.Role, bool) {
	id := identityOf(r)
	t, ok := s.opts.Consoles.Tee(r.PathValue("tee"))
	role := chardev.RoleNone
	if ok {
		role = s.role(id.user, t.Name())
	}
	if role == chardev.RoleNone {
		http.Error(w, "web: no such console", http.StatusNotFound)
		return nil, id, role, false
	}
	return t, id, role, true
}

func (s *Server) consolePage(w http.ResponseWriter, r *http.Request) {
	t, id, role, ok := s.console(w, r)
	if !ok {
		return
	}
	s.render(w, "console.html", map[string]any{
		"Tee": t.Name(), "User": id.user, "Role": role.String(), "Input": canType(role),
		"CSRF": id.csrf, "Logout": id.session != "",
	})
}

// scrollback downloads the console's recent output: its ring buffer
// backend if it has one (usually far larger), else the tee's scrollback.
func (s *Server) scrollback(w http.ResponseWriter, r *http.Request) {
	t, id, _, ok := s.console(w, r)
	if !ok {
		return
	}
	data := ringbufOf(t)
	if data == nil {
		data, _ = t.Scrollback()
	}
	name := fmt.Sprintf("%s-%s.log", t.Name(), time.Now().UTC().Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	w.Header().Set("Cache-Control", "no-store")
	w.Write(data)
	t.Emit(tee.Event{Kind: tee.EventAdmin, Backend: BackendName, User: id.user, Role: s.role(id.user, t.Name()).String(),
		Source: clientAddr(r), Reason: fmt.Sprintf("scrollback downloaded (%d bytes)", len(data))})
}

// ringbufOf copies the kept bytes of the tee's largest ring buffer, or
// returns nil when it has none.
func ringbufOf(t *tee.Tee) []byte {
	var best chardev.ScrollbackReader
	var size uint64
	t.Devices(func(_ string, dev chardev.Chardev) {
		if sr, ok := dev.(chardev.ScrollbackReader); ok {
			if o, n := sr.Bounds(); best == nil || n-o > size {
				best, size = sr, n-o
			}
		}
	})
	if best == nil {
		return nil
	}
	oldest, next := best.Bounds()
	out := make([]byte, 0, next-oldest)
	buf := make([]byte, 64<<10)
	for off := oldest; off < next; {
		n, nx, _ := best.ReadAt(off, buf)
		if n == 0 {
			break
		}
		out = append(out, buf[:n]...)
		off = nx
	}
	return out
}
