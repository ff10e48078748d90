package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"sync"
	"time"
)

// session is a logged-in browser.
type session struct {
	id      string
	user    string
	created time.Time
	seen    time.Time
}

// sessions are kept in memory: a daemon restart logs everyone out, which
// is what an appliance's operators expect.
type sessions struct {
	mu   sync.Mutex
	m    map[string]*session
	idle time.Duration // a session unused this long ends
	max  time.Duration // and none lives longer than this
	now  func() time.Time
	key  []byte // HMAC key for CSRF tokens
}

func newSessions(idle, max time.Duration) *sessions {
	return &sessions{m: map[string]*session{}, idle: idle, max: max, now: time.Now, key: randomBytes(32)}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return b
}

func randomToken() string { return base64.RawURLEncoding.EncodeToString(randomBytes(32)) }

func (s *sessions) create(user string) *session {
	now := s.now()
	se := &session{id: randomToken(), user: user, created: now, seen: now}
	s.mu.Lock()
	s.m[se.id] = se
	s.pruneLocked(now)
	s.mu.Unlock()
	return se
}

// get returns the live session with this id and marks it used.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if s.expired(se, now) {
		delete(s.m, id)
		return nil, false
	}
	se.seen = now
	return se, true
}

func (s *sessions) expired(se *session, now time.Time) bool {
	return now.Sub(se.seen) > s.idle || now.Sub(se.created) > s.max
}

func (s *sessions) pruneLocked(now time.Time) {
	for id, se := range s.m {
		if s.expired(se, now) {
			delete(s.m, id)
		}
	}
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
}

// csrf is the token a page must echo on state-changing requests: bound to
// the session (or, behind a trusted proxy, the user), unguessable without
// the server's key.
func (s *sessions) csrf(binding string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(binding))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (s *sessions) checkCSRF(binding, token string) bool {
	want := s.csrf(binding)
	return token != "" && subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}
