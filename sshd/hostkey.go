package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// LoadOrCreateHostKey reads the host key at path. A missing file gets a
// new ed25519 key, written with mode 0600 (created exclusively, so two
// starts never race to different keys); created reports that. A file that
// exists but cannot be parsed is an error: a host key is never replaced
// silently, or every client's known_hosts would break (or worse, learn to
// ignore the warning).
func LoadOrCreateHostKey(path string) (signer ssh.Signer, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, false, fmt.Errorf("sshd: host key %s: %w (fix or remove it; chartee never replaces a host key on its own)", path, err)
		}
		return s, false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "chartee host key")
	if err != nil {
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateHostKey(path) // another process won the race
		}
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	if _, err := f.Write(pem.EncodeToMemory(block)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("sshd: host key: %w", err)
	}
	return s, true, nil
}
