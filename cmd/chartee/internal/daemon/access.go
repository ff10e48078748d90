package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"chartee/access"
	"chartee/audit"
	"chartee/chardev"
	"chartee/cmd/chartee/internal/config"
	"chartee/sshd"
	"chartee/tee"
)

// accessState is who may reach the consoles and the services that let
// them in: the gate (policy and live sessions), the audit log and the SSH
// service. Its own lock: reloads change it while sessions read it.
type accessState struct {
	mu       sync.Mutex
	gate     *access.Gate
	audit    *audit.Log
	auditDev chardev.Chardev
	auditCfg config.Audit
	ssh      *sshd.Server
	sshCfg   config.SSH
}

// Gate is the access gate every service admits sessions through (the
// browser console uses it too). It is never nil.
func (d *Daemon) Gate() *access.Gate {
	d.acc.mu.Lock()
	defer d.acc.mu.Unlock()
	if d.acc.gate == nil {
		d.acc.gate = access.NewGate(nil, access.Limits{})
	}
	return d.acc.gate
}

// Audit is the audit log, or nil when none is configured.
func (d *Daemon) Audit() *audit.Log {
	d.acc.mu.Lock()
	defer d.acc.mu.Unlock()
	return d.acc.audit
}

// AuditRecord writes r to the audit log, if there is one.
func (d *Daemon) AuditRecord(r audit.Record) { d.Audit().Write(r) }

// prepareAccess compiles cfg's policy (reading authorized_keys files)
// before anything changes: a broken access section changes nothing.
func prepareAccess(cfg *config.Config) (*access.Policy, error) {
	pol, err := access.NewPolicy(cfg.Access.Policy)
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return pol, nil
}

// applyAccess puts the policy in force (re-checking live sessions), opens
// or changes the audit log and starts, changes or stops the SSH service.
func (d *Daemon) applyAccess(ctx context.Context, cfg *config.Config, pol *access.Policy) (warn []string, err error) {
	gate := d.Gate()
	gate.SetLimits(access.Limits{MaxSessions: cfg.SSH.MaxSessions, MaxSessionsPerUser: cfg.SSH.MaxSessionsUser})
	if changed, revoked := gate.SetPolicy(pol); changed+revoked > 0 {
		d.log.Info("access policy applied to live sessions", "changed", changed, "revoked", revoked)
	}
	if err := d.applyAudit(ctx, cfg.Access.Audit); err != nil {
		return nil, err
	}
	d.hookTees()
	return d.applySSH(cfg.SSH)
}

// applyAudit opens, reopens or closes the audit file. The file is a
// `file` device from the backend registry, so it rotates like a capture.
func (d *Daemon) applyAudit(ctx context.Context, ac config.Audit) error {
	a := &d.acc
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.audit != nil && ac == a.auditCfg {
		return nil
	}
	if a.audit != nil && ac.Path == a.auditCfg.Path && ac.Rotate == a.auditCfg.Rotate {
		a.audit.SetRecordInput(ac.RecordInput)
		a.auditCfg = ac
		return nil
	}
	var dev chardev.Chardev
	if ac.Path != "" {
		var err error
		if dev, err = openAuditFile(ctx, ac); err != nil {
			return err
		}
	}
	old := a.auditDev
	a.auditDev, a.auditCfg = dev, ac
	a.audit = nil
	if dev != nil {
		a.audit = audit.New(dev, audit.Options{RecordInput: ac.RecordInput, OnError: func(err error) {
			d.log.Error("audit log write failed", "file", ac.Path, "err", err)
		}})
	}
	if old != nil {
		old.Close()
	}
	return nil
}

// openAuditFile opens the audit file as a raw `file` device.
func openAuditFile(ctx context.Context, ac config.Audit) (chardev.Chardev, error) {
	f, err := chardev.Lookup("file")
	if err != nil {
		return nil, fmt.Errorf("daemon: audit: %w", err)
	}
	spec := f.NewSpec()
	raw, _ := json.Marshal(map[string]any{"path": ac.Path, "format": "raw", "direction": "out", "append": true,
		"rotate": map[string]any{"max_size": ac.Rotate.MaxSize, "keep": ac.Rotate.Keep, "compress": ac.Rotate.Compress}})
	if err := json.Unmarshal(raw, spec); err != nil {
		return nil, fmt.Errorf("daemon: audit: %w", err)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("daemon: audit: %w", err)
	}
	dev, err := f.Open(ctx, spec)
	if err != nil {
		return nil, fmt.Errorf("daemon: audit: %w", err)
	}
	return dev, nil
}

// hookTees makes every running tee report its input to the audit log.
func (d *Daemon) hookTees() {
	for _, t := range d.Tees() {
		d.hookTee(t)
	}
}

// Without an audit log a tee has no input hook at all: a hook costs each
// keystroke a copy and a goroutine start (see tee.SetInputHook), which was
// measurable in the keystroke round trip (docs/ENGINE.md, third pass).
// Reloads and tee starts are serialised (opMu) and applyAccess rehooks
// every tee after the audit log changes, so no tee misses one.
func (d *Daemon) hookTee(t *tee.Tee) {
	if d.Audit() == nil {
		t.SetInputHook(nil)
		return
	}
	name := t.Name()
	t.SetInputHook(func(who chardev.InputAuthor, p []byte) { d.Audit().Input(name, who, p) })
}

// applySSH starts, reconfigures, moves or stops the SSH service. The
// access lock is not held while a server closes: its sessions' last
// audit records need it.
func (d *Daemon) applySSH(sc config.SSH) ([]string, error) {
	a := &d.acc
	cfg := sshConfig(sc)
	a.mu.Lock()
	if a.ssh != nil && sc.Listen == a.sshCfg.Listen && sc.HostKey == a.sshCfg.HostKey {
		a.ssh.Reconfigure(cfg)
		a.sshCfg = sc
		a.mu.Unlock()
		return nil, nil
	}
	old := a.ssh
	a.ssh, a.sshCfg = nil, config.SSH{}
	a.mu.Unlock()
	var warn []string
	if old != nil {
		// A new address or host key: the sessions of the old listener
		// end with it.
		if n := old.Sessions(); n > 0 {
			warn = append(warn, fmt.Sprintf("ssh: listener or host key changed: %d sessions closed", n))
		}
		old.Close()
	}
	if sc.Listen == "" {
		return warn, nil
	}
	opts := sshd.Options{Gate: d.Gate(), Consoles: d, Logger: d.log.With("service", "ssh"), Audit: d.AuditRecord}
	if d.listener != nil {
		ln, err := d.listener(CarrySSH, sc.Listen)
		if err != nil {
			return warn, fmt.Errorf("ssh: %w", err)
		}
		opts.Listener = ln
	}
	srv, err := sshd.New(cfg, opts)
	if err != nil {
		return warn, err
	}
	a.mu.Lock()
	a.ssh, a.sshCfg = srv, sc
	a.mu.Unlock()
	return warn, nil
}

func sshConfig(sc config.SSH) sshd.Config {
	return sshd.Config{Listen: sc.Listen, HostKey: sc.HostKey, Escape: sc.Escape, Leg: sc.Leg,
		MaxAuthTries: sc.MaxAuthTries, MaxStartups: sc.MaxStartups, HandshakeTimeout: sc.HandshakeTimeout,
		Keepalive: sc.Keepalive, KeepaliveCount: sc.KeepaliveCount, Password: sc.Password}
}

// CarrySSH is the name the SSH service's listening socket is handed over
// under in a process upgrade.
const CarrySSH = "ssh"

// SSHListener is the SSH service's address as configured and a duplicate
// of its listening socket, for a process upgrade to hand over (f is nil
// without an SSH service).
func (d *Daemon) SSHListener() (addr string, f *os.File, err error) {
	d.acc.mu.Lock()
	srv, addr := d.acc.ssh, d.acc.sshCfg.Listen
	d.acc.mu.Unlock()
	if srv == nil {
		return "", nil, nil
	}
	f, err = srv.File()
	return addr, f, err
}

// SSH is the running SSH service, or nil.
func (d *Daemon) SSH() *sshd.Server {
	d.acc.mu.Lock()
	defer d.acc.mu.Unlock()
	return d.acc.ssh
}

// stopSSH closes the SSH service (before the tees stop, so sessions end
// with a clean exit).
func (d *Daemon) stopSSH() {
	d.acc.mu.Lock()
	srv := d.acc.ssh
	d.acc.ssh = nil
	d.acc.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// closeAudit closes the audit file after the tees' last events.
func (d *Daemon) closeAudit() {
	d.acc.mu.Lock()
	dev := d.acc.auditDev
	d.acc.auditDev, d.acc.audit = nil, nil
	d.acc.mu.Unlock()
	if dev != nil {
		dev.Close()
	}
}

// reopenAudit reopens the audit file (SIGUSR1, after logrotate).
func (d *Daemon) reopenAudit() error {
	d.acc.mu.Lock()
	dev := d.acc.auditDev
	d.acc.mu.Unlock()
	if r, ok := dev.(chardev.Reopener); ok {
		return r.Reopen()
	}
	return nil
}

// AccessInfo is what `chartee ctl show-access` shows.
type AccessInfo struct {
	SSH      *SSHInfo             `json:"ssh,omitempty"`
	Users    []UserInfo           `json:"users"`
	Sessions []access.SessionInfo `json:"sessions"`
	Audit    string               `json:"audit_file,omitempty"`
}

// SSHInfo describes the SSH service.
type SSHInfo struct {
	Listen      string `json:"listen"`
	Fingerprint string `json:"host_key_fingerprint"`
	HostKey     string `json:"host_key_file"`
	KnownHosts  string `json:"known_hosts_line"`
}

// UserInfo is a user and their roles per tee.
type UserInfo struct {
	Name   string            `json:"name"`
	Groups []string          `json:"groups,omitempty"`
	Roles  map[string]string `json:"roles"`
}

// AccessInfo describes users, roles, sessions and the SSH service.
func (d *Daemon) AccessInfo() AccessInfo {
	var info AccessInfo
	if srv := d.SSH(); srv != nil {
		info.SSH = &SSHInfo{Listen: srv.Addr(), Fingerprint: srv.Fingerprint(), HostKey: srv.Config().HostKey,
			KnownHosts: srv.KnownHostsLine()}
	}
	d.acc.mu.Lock()
	info.Audit = d.acc.auditCfg.Path
	d.acc.mu.Unlock()
	gate := d.Gate()
	info.Sessions = gate.Sessions()
	pol := gate.Policy()
	if pol == nil {
		return info
	}
	var names []string
	for _, t := range d.Tees() {
		names = append(names, t.Name())
	}
	for _, u := range pol.Users() {
		ui := UserInfo{Name: u, Groups: pol.Groups(u), Roles: map[string]string{}}
		for _, c := range pol.Consoles(u, names) {
			ui.Roles[c.Tee] = c.Role.String()
		}
		info.Users = append(info.Users, ui)
	}
	return info
}
