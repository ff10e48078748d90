package config

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that nothing here leaves a goroutine behind: parsing
// must never start one (it opens no device).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
