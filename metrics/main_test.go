package metrics

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a tee, leg or HTTP goroutine outlives the
// tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
