package cli

import (
	"testing"

	"chartee/cmd/chartee/internal/config"
	"chartee/sshd"
	"chartee/web"
)

// TestReservedBackendNamesMatchServices: the names config reserves are
// the ones the services join their sessions to.
func TestReservedBackendNamesMatchServices(t *testing.T) {
	for _, name := range []string{sshd.Backend, web.BackendName} {
		if _, ok := config.ReservedBackendNames[name]; !ok {
			t.Errorf("config does not reserve backend name %q, which a service uses", name)
		}
	}
}
