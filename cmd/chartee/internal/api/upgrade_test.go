package api

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUpgradeEndpoint: the report reaches the client before the after
// function runs (the old process exits there); refusals and rollbacks
// come back with their codes, details and reasons; a server without an
// Upgrader says it cannot.
func TestUpgradeEndpoint(t *testing.T) {
	afterRan := make(chan struct{})
	var gotBinary string
	e := newEnv(t, Options{Upgrade: func(_ context.Context, req UpgradeRequest) (UpgradeReport, func(), error) {
		binary := req.Binary
		gotBinary = binary
		switch binary {
		case "/refuse":
			return UpgradeReport{}, nil, &Error{Code: CodeUpgradeRefused, Status: 409,
				Message: "upgrade: refused", Details: []string{"tee a: frontend x cannot be carried yet"}}
		case "/fail":
			return UpgradeReport{}, nil, errors.New("upgrade: rolled back: the new process exited before it was ready: exit status 1")
		}
		return UpgradeReport{Binary: binary, OldVersion: "v1", NewVersion: "v2", NewPID: 42, Elapsed: time.Millisecond},
			func() { close(afterRan) }, nil
	}})
	rep, err := e.c.Upgrade(ctxT(t), UpgradeRequest{Binary: "/usr/bin/chartee"})
	if err != nil || rep.NewVersion != "v2" || rep.NewPID != 42 || gotBinary != "/usr/bin/chartee" {
		t.Fatalf("Upgrade = %+v, %v (binary %q)", rep, err, gotBinary)
	}
	select {
	case <-afterRan:
	case <-time.After(5 * time.Second):
		t.Fatal("the after function did not run")
	}

	_, err = e.c.Upgrade(ctxT(t), UpgradeRequest{Binary: "/refuse"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeUpgradeRefused || ae.Status != http.StatusConflict || len(ae.Details) != 1 {
		t.Fatalf("refusal: %#v", err)
	}
	_, err = e.c.Upgrade(ctxT(t), UpgradeRequest{Binary: "/fail"})
	if !errors.As(err, &ae) || ae.Code != CodeUpgradeFailed || ae.Status != http.StatusBadGateway ||
		!strings.Contains(ae.Message, "exit status 1") {
		t.Fatalf("rollback: %#v", err)
	}

	plain := newEnv(t, Options{})
	if _, err := plain.c.Upgrade(ctxT(t), UpgradeRequest{}); !errors.As(err, &ae) || ae.Code != CodeUnsupported {
		t.Fatalf("without an Upgrader: %v", err)
	}
}

// TestInheritedSocketIsNotRemovedUntilOwned: a process that inherited the
// control socket and fails before taking over must leave the socket file
// to the old process; once it owns it, closing removes it.
func TestInheritedSocketIsNotRemovedUntilOwned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	for _, own := range []bool{false, true} {
		b, err := ListenUnix(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := b.File()
		if err != nil {
			t.Fatal(err)
		}
		in, err := InheritUnix(path, f)
		if err != nil {
			t.Fatal(err)
		}
		if own {
			in.Own()
		}
		in.Close()
		_, statErr := os.Stat(path)
		if exists := statErr == nil; exists == own {
			t.Errorf("own=%v: socket file exists=%v after the inheritor closed", own, exists)
		}
		b.Close()
	}
}
