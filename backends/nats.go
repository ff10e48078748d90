package backends

// The nats backend publishes a tee's output to NATS, optionally into a
// JetStream stream with acknowledgement, and types what arrives on an input
// subject into the frontend. It lets a fleet of appliances capture every
// console centrally and lets operators attach from anywhere (`chartee
// console`), over an existing distributed engine rather than a home-made
// protocol.
//
// Choices worth knowing (docs/FLEET.md says the same for operators):
//
//   - Offsets. The engine gives a device bytes, not stream offsets, and no
//     leg's first offset. So Chartee-Offset counts the bytes this device has
//     published, from 0, and every device (each open: start, reopen, swap)
//     gets a fresh random Chartee-Session. A consumer that sees the session
//     change knows the numbering restarted.
//   - Subject. It defaults to chartee.<appliance>.<tee>: the spec learns
//     its tee's name through chardev.TeeNamer (the config layer and the
//     daemon call SetTee). "{appliance}" in an explicit subject is replaced
//     by the appliance name, so one config file serves a whole fleet.
//   - Input. The `input` key belongs to the leg, not to the spec, so the
//     device always subscribes to <subject>.in; the engine discards what a
//     leg without input reads (counted as discarded), exactly as for any
//     other leg type, and exclusive mode treats every remote console on
//     that subject as one leg.
//   - Delivery. With jetstream each Write waits for the stream's ack and
//     retries the same message (same Nats-Msg-Id, so the stream drops a
//     duplicate) until it is stored or the device is closed. With
//     on_overflow: block that loses no byte through a cluster failover;
//     the leg's queue absorbs the outage. Core NATS is at most once: a
//     Write waits through a reconnection, but a subscriber that is not
//     there does not get the bytes.
//   - Open does not wait for the servers: an appliance must boot and serve
//     its consoles while NATS is down. The connection is made, and remade,
//     in the background; Describe says when it is down.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"chartee/chardev"
)

func init() {
	chardev.Register("nats", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewNATSSpec() },
		Open:    natsOpen,
		Inherit: natsInherit,
		// A capture first: typing from anywhere on the cluster is opted
		// into with `input: true`.
		Input: false,
	})
}

// Interface guards.
var (
	_ chardev.Spec      = (*NATSSpec)(nil)
	_ chardev.Chardev   = (*NATSConn)(nil)
	_ chardev.Describer = (*NATSConn)(nil)
)

// Headers on every output message.
const (
	// NATSHeaderOffset is the number of bytes the publishing device had
	// published before this message, in decimal.
	NATSHeaderOffset = "Chartee-Offset"
	// NATSHeaderSession identifies the publishing device; it changes when
	// the leg is reopened or swapped, and Chartee-Offset restarts at 0.
	NATSHeaderSession = "Chartee-Session"
	// NATSHeaderAppliance names the appliance (host) that published.
	NATSHeaderAppliance = "Chartee-Appliance"
)

// Subject suffixes: output is published on <subject>.out, input is read
// from <subject>.in.
const (
	NATSOutSuffix = ".out"
	NATSInSuffix  = ".in"
)

// natsApplianceToken is replaced by the appliance name in `subject`.
const natsApplianceToken = "{appliance}"

const (
	natsDefaultConnectTimeout = 5 * time.Second
	natsDefaultAckTimeout     = 5 * time.Second
	natsReconnectWait         = 250 * time.Millisecond
	natsRetryMin              = 20 * time.Millisecond
	natsRetryMax              = time.Second
	natsMaxMessage            = 64 << 10 // bytes of output per message at most
	natsInputQueue            = 256      // input messages waiting for Read
	natsCloseFlush            = time.Second
)

// NATSSpec configures the nats backend.
type NATSSpec struct {
	// Servers are the NATS URLs (nats://host:4222, tls://host:4222); the
	// client picks one and moves to another when it fails.
	Servers []string `yaml:"servers" json:"servers"`
	// Subject is the base subject: output goes to <subject>.out, input is
	// read from <subject>.in. "{appliance}" is replaced by Appliance.
	Subject string `yaml:"subject" json:"subject"`
	// Appliance names this chartee in the Chartee-Appliance header and in
	// the subject; empty is the host name up to its first dot.
	Appliance string `yaml:"appliance" json:"appliance"`
	// Creds is a NATS credentials file (user JWT and NKey seed).
	Creds string `yaml:"creds" json:"creds"`
	// TLS, when set, verifies the servers with this CA and offers a client
	// certificate; tls:// URLs use TLS with the system roots without it.
	TLS *NetClientTLS `yaml:"tls" json:"tls"`
	// JetStream, when set, publishes output with acknowledgement into a
	// stream.
	JetStream *NATSJetStream `yaml:"jetstream" json:"jetstream"`
	// ConnectTimeout bounds each connection attempt.
	ConnectTimeout chardev.Duration `yaml:"connect_timeout" json:"connect_timeout"`

	// tee is the name of the tee the backend is attached to, for the
	// default subject; set by SetTee, never from config.
	tee string
}

var _ chardev.TeeNamer = (*NATSSpec)(nil)

// SetTee tells the spec which tee it belongs to, for the default subject
// chartee.<appliance>.<tee>.
func (s *NATSSpec) SetTee(name string) { s.tee = name }

// NATSJetStream is the `jetstream` section of the nats backend.
type NATSJetStream struct {
	// Stream is the stream that stores <subject>.out; it must exist (an
	// operator creates it once for the whole fleet).
	Stream string `yaml:"stream" json:"stream"`
	// AckTimeout is how long one publish waits for the stream's ack before
	// it is sent again.
	AckTimeout chardev.Duration `yaml:"ack_timeout" json:"ack_timeout"`
}

// NewNATSSpec returns a spec with the defaults: a 5s connect timeout.
func NewNATSSpec() *NATSSpec {
	return &NATSSpec{ConnectTimeout: chardev.Duration(natsDefaultConnectTimeout)}
}

// Validate checks the spec; errors name the key.
func (s *NATSSpec) Validate() error {
	if len(s.Servers) == 0 {
		return errors.New("servers: required (a list of NATS URLs, like nats://127.0.0.1:4222)")
	}
	for _, u := range s.Servers {
		if _, err := natsServerURL(u); err != nil {
			return fmt.Errorf("servers: %w", err)
		}
	}
	if s.Appliance != "" {
		if err := natsCheckToken(s.Appliance); err != nil {
			return fmt.Errorf("appliance %q: %w", s.Appliance, err)
		}
	}
	if s.Subject != "" || s.tee != "" {
		// Without a subject and before SetTee (an API body being decoded),
		// the default cannot be judged yet; Open checks it.
		if _, err := s.subject(); err != nil {
			return err
		}
	}
	if s.TLS != nil {
		if err := s.TLS.Validate(); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	if s.ConnectTimeout < 0 {
		return fmt.Errorf("connect_timeout %s: must not be negative", s.ConnectTimeout)
	}
	if js := s.JetStream; js != nil {
		if js.Stream == "" {
			return errors.New("jetstream: stream: required (the name of the stream that stores <subject>.out)")
		}
		if strings.ContainsAny(js.Stream, " \t\r\n.*>/\\") {
			return fmt.Errorf("jetstream: stream %q: a stream name cannot contain spaces, '.', '*', '>', '/' or '\\'", js.Stream)
		}
		if js.AckTimeout < 0 {
			return fmt.Errorf("jetstream: ack_timeout %s: must not be negative", js.AckTimeout)
		}
	}
	return nil
}

// appliance is the configured appliance name or the short host name.
func (s *NATSSpec) appliance() string {
	if s.Appliance != "" {
		return s.Appliance
	}
	return NATSDefaultAppliance()
}

// NATSDefaultAppliance is the host name up to its first dot, with any
// character that cannot be in a subject token replaced by '_'.
func NATSDefaultAppliance() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	h, _, _ = strings.Cut(h, ".")
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == '*' || r == '>' || r == 0x7f {
			return '_'
		}
		return r
	}, h)
}

// subject is the base subject with the appliance filled in, checked.
func (s *NATSSpec) subject() (string, error) {
	base := s.Subject
	if base == "" {
		if s.tee == "" {
			return "", errors.New("subject: required outside a tee (the default is chartee." + natsApplianceToken + ".<tee>)")
		}
		base = "chartee." + natsApplianceToken + "." + s.tee
	}
	subj := strings.ReplaceAll(base, natsApplianceToken, s.appliance())
	if err := NATSCheckSubject(subj); err != nil {
		return "", fmt.Errorf("subject %q: %w", s.Subject, err)
	}
	return subj, nil
}

// NATSCheckSubject reports whether subj can be a base subject: dot
// separated non-empty tokens without spaces or wildcards.
func NATSCheckSubject(subj string) error {
	if subj == "" {
		return errors.New("empty")
	}
	for tok := range strings.SplitSeq(subj, ".") {
		if err := natsCheckToken(tok); err != nil {
			return err
		}
	}
	return nil
}

func natsCheckToken(tok string) error {
	switch {
	case tok == "":
		return errors.New("empty token (a leading, trailing or double '.')")
	case tok == "*" || tok == ">" || strings.ContainsAny(tok, "*>"):
		return errors.New("wildcards ('*', '>') cannot be published to")
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("spaces and control characters are not allowed")
	case strings.Contains(tok, "."):
		return errors.New("'.' separates tokens and cannot be part of a name")
	}
	return nil
}

// natsServerURL checks one server URL; a bare host:port means nats://.
func natsServerURL(s string) (string, error) {
	raw := s
	if !strings.Contains(s, "://") {
		raw = "nats://" + s
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%q: %v", s, err)
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return "", fmt.Errorf("%q: scheme %q: want nats, tls, ws or wss", s, u.Scheme)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("%q: missing host", s)
	}
	if u.Port() != "" {
		if _, err := strconv.ParseUint(u.Port(), 10, 16); err != nil {
			return "", fmt.Errorf("%q: bad port", s)
		}
	}
	return raw, nil
}

// natsOptions are the client options the backend and `chartee console`
// share: servers, credentials, TLS, endless reconnection.
func (s *NATSSpec) natsOptions(name string) ([]nats.Option, string, error) {
	urls := make([]string, len(s.Servers))
	for i, u := range s.Servers {
		var err error
		if urls[i], err = natsServerURL(u); err != nil {
			return nil, "", fmt.Errorf("servers: %w", err)
		}
	}
	timeout := s.ConnectTimeout.D()
	if timeout <= 0 {
		timeout = natsDefaultConnectTimeout
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(natsReconnectWait),
		nats.RetryOnFailedConnect(true),
		// Errors are reported through Describe and Write; the default
		// handlers would print to stderr.
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}),
	}
	if s.Creds != "" {
		if _, err := os.Stat(s.Creds); err != nil {
			return nil, "", fmt.Errorf("creds: %w", err)
		}
		opts = append(opts, nats.UserCredentials(s.Creds))
	}
	if s.TLS != nil {
		host := ""
		if u, err := url.Parse(urls[0]); err == nil {
			host = u.Hostname()
		}
		conf, err := s.TLS.config(host)
		if err != nil {
			return nil, "", err
		}
		opts = append(opts, nats.Secure(conf))
	}
	return opts, strings.Join(urls, ","), nil
}

// NATSConnect connects to the spec's servers like the backend does (used by
// `chartee console`): credentials, TLS and endless reconnection. Unlike the
// backend it waits for the first connection, so a wrong URL is reported.
func NATSConnect(s *NATSSpec, name string) (*nats.Conn, error) {
	opts, urls, err := s.natsOptions(name)
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.RetryOnFailedConnect(false))
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", urls, err)
	}
	return nc, nil
}

func natsOpen(ctx context.Context, spec chardev.Spec) (chardev.Chardev, error) {
	s, ok := spec.(*NATSSpec)
	if !ok {
		return nil, fmt.Errorf("nats: spec is %T, want *NATSSpec", spec)
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	subj, err := s.subject()
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	session, err := natsSessionID()
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	d := &NATSConn{
		subject:   subj,
		appliance: s.appliance(),
		session:   session,
		in:        make(chan *nats.Msg, natsInputQueue),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	opts, urls, err := s.natsOptions("chartee " + d.appliance + " " + subj)
	if err != nil {
		d.cancel()
		return nil, fmt.Errorf("nats: %w", err)
	}
	d.urls = urls
	d.nc, err = nats.Connect(urls, opts...)
	if err != nil {
		d.cancel()
		return nil, fmt.Errorf("nats %s: %w", urls, err)
	}
	// The subscription is remembered by the client and renewed on every
	// reconnection, also when the first connection is still to come.
	if d.sub, err = d.nc.ChanSubscribe(subj+NATSInSuffix, d.in); err != nil {
		d.nc.Close()
		d.cancel()
		return nil, fmt.Errorf("nats %s: subscribe %s: %w", urls, subj+NATSInSuffix, err)
	}
	if js := s.JetStream; js != nil {
		d.stream = js.Stream
		d.ackTimeout = js.AckTimeout.D()
		if d.ackTimeout <= 0 {
			d.ackTimeout = natsDefaultAckTimeout
		}
		if d.js, err = jetstream.New(d.nc); err != nil {
			_ = d.Close()
			return nil, fmt.Errorf("nats: jetstream: %w", err)
		}
		if err := d.checkStream(ctx); err != nil {
			_ = d.Close()
			return nil, err
		}
	}
	return d, nil
}

// checkStream reports a stream that does not exist, when the servers can
// say so now; while they are unreachable it checks nothing (Write will
// retry and Describe will tell).
func (d *NATSConn) checkStream(ctx context.Context) error {
	if !d.nc.IsConnected() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.ackTimeout)
	defer cancel()
	st, err := d.js.Stream(ctx, d.stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("nats %s: jetstream stream %q not found (create it first, e.g. nats stream add %s --subjects 'chartee.>')", d.urls, d.stream, d.stream)
	}
	if err != nil {
		return nil // unreachable just now: Write will retry and tell
	}
	out := d.subject + NATSOutSuffix
	name, err := d.js.StreamNameBySubject(ctx, out)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("nats %s: jetstream stream %q does not store %s (its subjects: %s)", d.urls, d.stream, out, strings.Join(st.CachedInfo().Config.Subjects, ", "))
	case err == nil && name != d.stream:
		return fmt.Errorf("nats %s: %s is stored by stream %q, not %q", d.urls, out, name, d.stream)
	}
	return nil
}

func natsSessionID() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// NATSConn is a nats backend device: Write publishes on <subject>.out,
// Read returns what arrives on <subject>.in.
type NATSConn struct {
	urls       string
	subject    string
	appliance  string
	session    string
	stream     string // "": core NATS
	ackTimeout time.Duration

	nc  *nats.Conn
	js  jetstream.JetStream
	sub *nats.Subscription
	in  chan *nats.Msg

	ctx    context.Context // cancelled by Close: ends waits in Read and Write
	cancel context.CancelFunc
	once   sync.Once

	wmu    sync.Mutex // one Write at a time, so offsets follow the bytes
	offset uint64     // bytes published; guarded by wmu
	// pending is the length of the message being published (guarded
	// by wmu); carried by an upgrade that cut it (nats_carry.go).
	pending int

	fmu                 sync.Mutex // a process upgrade's freezes
	frozen, wfrozen     chan struct{}
	isFrozen, isWFrozen bool

	rmu  sync.Mutex
	rest []byte // the unread part of an input message; guarded by rmu

	smu     sync.Mutex
	lastErr error // the last publish failure still being retried
	retries atomic.Uint64
}

// Retries counts publishes sent again after a failure (a timeout, no
// responders during a leader election, a lost connection).
func (d *NATSConn) Retries() uint64 { return d.retries.Load() }

// Session is this device's Chartee-Session header value.
func (d *NATSConn) Session() string { return d.session }

// Subject is the base subject, with the appliance filled in.
func (d *NATSConn) Subject() string { return d.subject }

// Describe names the device and says when it is not delivering.
func (d *NATSConn) Describe() string {
	desc := "nats " + d.urls + " " + d.subject
	if d.stream != "" {
		desc += " (jetstream " + d.stream + ")"
	}
	if d.ctx.Err() != nil {
		return desc + " (closed)"
	}
	if !d.nc.IsConnected() {
		desc += " (disconnected"
		if err := d.nc.LastError(); err != nil {
			desc += ": " + err.Error()
		}
		return desc + ")"
	}
	d.smu.Lock()
	defer d.smu.Unlock()
	if d.lastErr != nil {
		desc += " (retrying: " + d.lastErr.Error() + ")"
	}
	return desc
}

func (d *NATSConn) closedErr() error {
	return fmt.Errorf("nats %s: %w", d.subject, net.ErrClosed)
}

// Read returns bytes typed on <subject>.in, a message at a time (a message
// longer than p is returned over several Reads).
func (d *NATSConn) Read(p []byte) (int, error) {
	d.rmu.Lock()
	defer d.rmu.Unlock()
	frozen, _ := d.freezeChans()
	for len(d.rest) == 0 {
		select {
		case m := <-d.in:
			d.rest = m.Data
		case <-d.ctx.Done():
			return 0, d.closedErr()
		case <-frozen:
			return 0, fmt.Errorf("nats %s: %w", d.subject, chardev.ErrFrozen)
		}
	}
	n := copy(p, d.rest)
	d.rest = d.rest[n:]
	return n, nil
}

// Write publishes p on <subject>.out: one message per call, or several
// when p is larger than a message may be. With jetstream it returns once
// the stream has stored every byte, however long that takes; only Close
// (or an error retrying cannot fix) ends it early, and then it reports the
// bytes that were stored.
func (d *NATSConn) Write(p []byte) (int, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	written := 0
	for written < len(p) {
		n := min(len(p)-written, d.maxMessage())
		if d.pending > 0 {
			// The message a process upgrade cut: the same bytes
			// again, under the same Nats-Msg-Id.
			n = min(n, d.pending)
		}
		d.pending = n
		if err := d.publish(p[written : written+n]); err != nil {
			return written, err
		}
		d.pending = 0
		written += n
		d.offset += uint64(n)
	}
	return written, nil
}

// maxMessage is how much output goes in one message: natsMaxMessage, or
// less when the server allows less (leaving room for the headers).
func (d *NATSConn) maxMessage() int {
	limit := natsMaxMessage
	if mp := int(d.nc.MaxPayload()); mp > 0 && mp-1024 < limit {
		limit = max(mp-1024, 256)
	}
	return limit
}

// publish sends one message until it is accepted (core: handed to the
// client; jetstream: acknowledged by the stream).
func (d *NATSConn) publish(data []byte) error {
	off := strconv.FormatUint(d.offset, 10)
	msg := &nats.Msg{Subject: d.subject + NATSOutSuffix, Data: data, Header: nats.Header{}}
	msg.Header.Set(NATSHeaderOffset, off)
	msg.Header.Set(NATSHeaderSession, d.session)
	msg.Header.Set(NATSHeaderAppliance, d.appliance)
	wait := natsRetryMin
	for {
		err := d.publishOnce(msg, d.session+"-"+off)
		if err == nil {
			d.setLastErr(nil)
			return nil
		}
		if d.ctx.Err() != nil {
			return d.closedErr()
		}
		select {
		case <-d.writeFrozen():
			return fmt.Errorf("nats %s: publish: %w", d.subject, chardev.ErrFrozen)
		default:
		}
		if natsPermanent(err) {
			return fmt.Errorf("nats %s: publish: %w", d.subject, err)
		}
		d.setLastErr(err)
		d.retries.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-d.ctx.Done():
			t.Stop()
			return d.closedErr()
		case <-d.writeFrozen():
			t.Stop()
			return fmt.Errorf("nats %s: publish: %w", d.subject, chardev.ErrFrozen)
		case <-t.C:
		}
		wait = min(2*wait, natsRetryMax)
	}
}

func (d *NATSConn) publishOnce(msg *nats.Msg, id string) error {
	if d.js == nil {
		if !d.nc.IsConnected() {
			// Buffered while reconnecting, the bytes would be lost
			// with the buffer if it overflows; wait instead, so the
			// leg's queue (and on_overflow) decides.
			return nats.ErrConnectionReconnecting
		}
		return d.nc.PublishMsg(msg)
	}
	ctx, cancel := context.WithTimeout(d.ctx, d.ackTimeout)
	defer cancel()
	_, err := d.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(id),
		jetstream.WithExpectStream(d.stream),
		jetstream.WithRetryAttempts(0))
	return err
}

// natsPermanent reports a publish error that retrying cannot fix: the
// stream refused the message (wrong stream for the subject, too large), a
// bad subject.
func natsPermanent(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) && api.Code == 400 {
		return true
	}
	return errors.Is(err, nats.ErrBadSubject) || errors.Is(err, nats.ErrMaxPayload)
}

func (d *NATSConn) setLastErr(err error) {
	d.smu.Lock()
	d.lastErr = err
	d.smu.Unlock()
}

// Close stops a waiting Read or Write, flushes what core NATS still holds
// (briefly), and closes the connection with every goroutine of its client.
func (d *NATSConn) Close() error {
	d.once.Do(func() {
		d.cancel()
		if d.js == nil && d.nc.IsConnected() {
			// Best effort: the bytes were already reported written.
			_ = d.nc.FlushTimeout(natsCloseFlush)
		}
		_ = d.sub.Unsubscribe()
		d.nc.Close()
	})
	return nil
}
