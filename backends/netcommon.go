package backends

// This file holds what the network backend types (tcp-listen, tcp-connect,
// unix-listen, unix-connect, udp) share: their common spec sections (TLS,
// reconnect, the options of a listening backend), the protocol names and
// wrapping, the client allow-list and the reconnect backoff.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"chartee/backends/escape"
	"chartee/backends/telnet"
	"chartee/chardev"
)

// Protocol names for the `protocol` key of the stream types.
const (
	ProtocolRaw     = "raw"     // bytes as they are
	ProtocolTelnet  = "telnet"  // RFC 854 telnet with option negotiation
	ProtocolRFC2217 = "rfc2217" // telnet with the RFC 2217 COM-PORT-OPTION
)

// On-full policies for the `on_full` key of the listening types.
const (
	OnFullReject     = "reject"      // refuse the new client
	OnFullKickOldest = "kick-oldest" // close the oldest client to make room
)

// netRejectLine is what a client refused for lack of room reads before the
// connection closes, so a person at a terminal knows why.
const netRejectLine = "chartee: too many clients\r\n"

// Defaults applied by NewSpec and by the dialers.
const (
	netDefaultConnectTimeout   = 10 * time.Second
	netDefaultReconnectInitial = 250 * time.Millisecond
	netDefaultReconnectMax     = 30 * time.Second
	netTLSHandshakeTimeout     = 10 * time.Second
	netRejectWriteTimeout      = 100 * time.Millisecond
)

// netCheckProtocol reports whether p names a known protocol. The empty
// string is raw, so a zero spec works.
func netCheckProtocol(p string) error {
	switch p {
	case "", ProtocolRaw, ProtocolTelnet, ProtocolRFC2217:
		return nil
	}
	return fmt.Errorf("protocol %q: want raw, telnet or rfc2217", p)
}

// netCheckOnFull reports whether p names a known on-full policy; empty is
// reject.
func netCheckOnFull(p string) error {
	switch p {
	case "", OnFullReject, OnFullKickOldest:
		return nil
	}
	return fmt.Errorf("on_full %q: want reject or kick-oldest", p)
}

// netCheckListenAddr checks a host:port to listen on. An empty host is
// refused: ":2000" silently meaning "every interface" is how consoles end up
// on the internet, so listening everywhere has to be written as 0.0.0.0 or
// [::].
func netCheckListenAddr(key, addr string) error {
	if addr == "" {
		return fmt.Errorf("%s: required (host:port, like 127.0.0.1:2000)", key)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port: %v", key, addr, err)
	}
	if host == "" {
		return fmt.Errorf("%s %q: give a host (127.0.0.1 for this machine only, 0.0.0.0 or [::] for every address)", key, addr)
	}
	if port == "" {
		return fmt.Errorf("%s %q: missing port", key, addr)
	}
	return nil
}

// netCheckDialAddr checks a host:port to connect to.
func netCheckDialAddr(key, addr string) error {
	if addr == "" {
		return fmt.Errorf("%s: required (host:port)", key)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: want host:port: %v", key, addr, err)
	}
	if host == "" || port == "" {
		return fmt.Errorf("%s %q: want host:port", key, addr)
	}
	return nil
}

// NetServeOptions are the keys every listening stream type (tcp-listen,
// unix-listen) shares: how many clients, what they speak, and how they are
// greeted and timed out.
type NetServeOptions struct {
	// MaxClients caps the connected clients; 0 is unlimited.
	MaxClients int `yaml:"max_clients" json:"max_clients"`
	// OnFull says what happens to a client beyond MaxClients: reject (it
	// reads a short notice and is closed) or kick-oldest.
	OnFull string `yaml:"on_full" json:"on_full"`
	// Protocol is raw, telnet or rfc2217.
	Protocol string `yaml:"protocol" json:"protocol"`
	// Control lets RFC 2217 clients change the line settings.
	Control bool `yaml:"control" json:"control"`
	// Escape is the key that starts a local command, like "^E". Unset, it
	// is ^E for telnet and none for raw and rfc2217; "none" turns it off.
	Escape string `yaml:"escape" json:"escape"`
	// Notices shows one-line notices ("[chartee] console0: now on
	// /dev/ttyUSB1 (failover)", a refused keystroke in exclusive mode) to
	// telnet clients. Unset, it is on for telnet; raw and rfc2217 streams
	// never get them.
	Notices *bool `yaml:"notices" json:"notices,omitempty"`
	// Banner is sent to each client when it connects.
	Banner string `yaml:"banner" json:"banner"`
	// IdleTimeout closes a client when nothing went either way for that
	// long; 0 never does.
	IdleTimeout chardev.Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// TLS, when set, serves TLS instead of plain bytes.
	TLS *NetServerTLS `yaml:"tls" json:"tls"`
}

// GrantsControl makes the `control` key the legs' permission to change the
// frontend's line settings and modem lines (chardev.ControlGranter): without
// it the engine refuses every RFC 2217 change however the key is set.
func (o *NetServeOptions) GrantsControl() bool { return o.Control }

// Validate checks the shared listening options.
func (o *NetServeOptions) Validate() error {
	if o.MaxClients < 0 {
		return fmt.Errorf("max_clients %d: must not be negative", o.MaxClients)
	}
	if err := netCheckOnFull(o.OnFull); err != nil {
		return err
	}
	if err := netCheckProtocol(o.Protocol); err != nil {
		return err
	}
	if _, err := netEscapeKey(o.Escape, o.Protocol); err != nil {
		return err
	}
	if o.Notices != nil && *o.Notices && o.Protocol != ProtocolTelnet {
		return fmt.Errorf("notices: only telnet clients can be shown notices, not protocol %s (its bytes are a raw stream)", netProtocolName(o.Protocol))
	}
	if o.TLS != nil {
		if err := o.TLS.Validate(); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	return nil
}

// NetServerTLS is the `tls` section of a listening type.
type NetServerTLS struct {
	// Cert and Key are PEM files: the server's certificate (chain) and key.
	Cert string `yaml:"cert" json:"cert"`
	Key  string `yaml:"key" json:"key"`
	// ClientCA, when set, is a PEM bundle of the CAs a client certificate
	// must chain to; clients without one are refused.
	ClientCA string `yaml:"client_ca" json:"client_ca"`
}

// Validate checks that the certificate comes with its key.
func (t *NetServerTLS) Validate() error {
	switch {
	case t.Cert == "":
		return errors.New("cert: required")
	case t.Key == "":
		return errors.New("key: required with cert")
	}
	return nil
}

// config loads the files named by the section.
func (t *NetServerTLS) config() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if t.ClientCA != "" {
		pool, err := netLoadCertPool(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca: %w", err)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// NetClientTLS is the `tls` section of a connecting type.
type NetClientTLS struct {
	// CA is a PEM bundle the server's certificate must chain to; empty
	// uses the system's roots.
	CA string `yaml:"ca" json:"ca"`
	// ServerName is the name checked in the server's certificate; empty
	// uses the host of the address.
	ServerName string `yaml:"server_name" json:"server_name"`
	// Cert and Key, when set, are the client certificate and key offered
	// to servers that ask for one.
	Cert string `yaml:"cert" json:"cert"`
	Key  string `yaml:"key" json:"key"`
}

// Validate checks that a client certificate comes with its key.
func (t *NetClientTLS) Validate() error {
	switch {
	case t.Cert != "" && t.Key == "":
		return errors.New("key: required with cert")
	case t.Key != "" && t.Cert == "":
		return errors.New("cert: required with key")
	}
	return nil
}

// config loads the files named by the section; defaultName is the server
// name used when the section gives none.
func (t *NetClientTLS) config(defaultName string) (*tls.Config, error) {
	conf := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if conf.ServerName == "" {
		conf.ServerName = defaultName
	}
	if t.CA != "" {
		pool, err := netLoadCertPool(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls: ca: %w", err)
		}
		conf.RootCAs = pool
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

func netLoadCertPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate found", path)
	}
	return pool, nil
}

// NetReconnect is the `reconnect` section of a connecting type. Its
// presence turns reconnection on; zero fields take the defaults (250ms,
// 30s).
type NetReconnect struct {
	// Initial is the wait before the first redial after a loss.
	Initial chardev.Duration `yaml:"initial" json:"initial"`
	// Max caps the wait, which doubles after each failed dial.
	Max chardev.Duration `yaml:"max" json:"max"`
}

// Validate checks that the cap is not below the first wait.
func (r *NetReconnect) Validate() error {
	if r.Max != 0 && r.Initial > r.Max {
		return fmt.Errorf("max %s: less than initial %s", r.Max, r.Initial)
	}
	return nil
}

func (r *NetReconnect) backoff() *chardev.Backoff {
	b := &chardev.Backoff{Initial: r.Initial.D(), Max: r.Max.D(), Jitter: true}
	if b.Initial <= 0 {
		b.Initial = netDefaultReconnectInitial
	}
	if b.Max <= 0 {
		b.Max = max(netDefaultReconnectMax, b.Initial)
	}
	return b
}

// netAllowList is the `allow` key parsed: client networks allowed to
// connect. An empty list allows everyone.
type netAllowList []netip.Prefix

// netParseAllow parses CIDRs ("10.0.0.0/8", "::1/128"); a bare address
// means that one host.
func netParseAllow(cidrs []string) (netAllowList, error) {
	var list netAllowList
	for _, s := range cidrs {
		p, err := netParseAllowEntry(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("allow %q: want a CIDR like 192.168.1.0/24 or an address", s)
		}
		list = append(list, p)
	}
	return list, nil
}

// netParseAllowEntry parses one entry. IPv4-mapped IPv6 networks
// (::ffff:10.0.0.0/104) become the IPv4 network they mean, since client
// addresses are unmapped before matching; zoned addresses are refused.
func netParseAllowEntry(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		a, aerr := netip.ParseAddr(s)
		if aerr != nil {
			return netip.Prefix{}, err
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zoned address")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if a := p.Addr(); a.Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("mapped prefix shorter than /96")
		}
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// allows reports whether a client at addr may connect. Addresses without
// an IP (unix sockets) are allowed: the socket file's mode guards those.
func (l netAllowList) allows(addr net.Addr) bool {
	if len(l) == 0 {
		return true
	}
	var ap netip.AddrPort
	switch a := addr.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return true
	}
	ip := ap.Addr().Unmap()
	for _, p := range l {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// DefaultEscape is the escape key of interactive legs when none is
// configured: conserver's ^E, which clashes with neither telnet's ^],
// OpenSSH's ~ nor picocom's and screen's ^A.
const DefaultEscape = "^E"

// netEscapeKey parses the `escape` key: unset is DefaultEscape for telnet
// and none (0) for raw and rfc2217 streams; "none" (or "off") is none.
func netEscapeKey(s, protocol string) (byte, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		if protocol != ProtocolTelnet {
			return 0, nil
		}
		s = DefaultEscape
	case "none", "off":
		return 0, nil
	}
	return escape.ParseKey(s)
}

// netNotices reports whether clients get notices: telnet unless turned off.
func netNotices(o *NetServeOptions) bool {
	if o.Protocol != ProtocolTelnet {
		return false
	}
	return o.Notices == nil || *o.Notices
}

func netProtocolName(p string) string {
	if p == "" {
		return ProtocolRaw
	}
	return p
}

// netServeConfig is what the protocol layer of an accepted client needs.
type netServeConfig struct {
	protocol string
	control  bool
	banner   string
	escape   byte // 0: none
	notices  bool // clients are chardev.Noticers
}

// netWrapServer puts the configured protocol on an accepted connection and
// greets the client with the banner. For raw the connection itself is the
// device; telnet sends the banner after its option requests.
func netWrapServer(conn net.Conn, c netServeConfig) (chardev.Chardev, error) {
	var dev chardev.Chardev
	switch c.protocol {
	case "", ProtocolRaw:
		if c.banner != "" {
			if _, err := io.WriteString(conn, c.banner); err != nil {
				return nil, fmt.Errorf("banner: %w", err)
			}
		}
		dev = conn
	case ProtocolTelnet, ProtocolRFC2217:
		dev = telnet.NewServer(conn, netTelnetServerConfig(c))
	default:
		return nil, netCheckProtocol(c.protocol)
	}
	if c.escape != 0 {
		// Outside the protocol layer, so the key is matched in what the
		// client typed, not in telnet's bytes.
		dev = escape.Wrap(dev, c.escape)
	}
	return dev, nil
}

// netTelnetServerConfig is the telnet configuration of c's clients.
func netTelnetServerConfig(c netServeConfig) telnet.Config {
	return telnet.Config{
		RFC2217: c.protocol == ProtocolRFC2217,
		Control: c.control,
		Banner:  c.banner,
	}
}

// netWrapClient puts the configured protocol on a dialed connection. With
// rfc2217 the result is a chardev.LineController, Breaker and
// ModemController.
func netWrapClient(conn net.Conn, protocol string) (chardev.Chardev, error) {
	switch protocol {
	case "", ProtocolRaw:
		return conn, nil
	case ProtocolTelnet, ProtocolRFC2217:
		return telnet.NewClient(conn, telnet.Config{RFC2217: protocol == ProtocolRFC2217}), nil
	}
	return nil, netCheckProtocol(protocol)
}
