package backends

import (
	"context"
	"strings"
	"testing"

	"chartee/chardev"
)

// foreignSpec is no registered type's spec.
type foreignSpec struct{}

func (*foreignSpec) Validate() error { return nil }

// TestFactoriesCheckTheSpecType hands every registered type's Open and
// Listen a spec of another type: each must answer an error naming the type,
// never panic.
func TestFactoriesCheckTheSpecType(t *testing.T) {
	for _, typ := range chardev.Types() {
		f, err := chardev.Lookup(typ)
		if err != nil {
			t.Fatal(err)
		}
		check := func(what string, call func() (any, error)) {
			t.Helper()
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("%s %s with a foreign spec panicked: %v", typ, what, r)
				}
			}()
			v, err := call()
			if err == nil || !strings.HasPrefix(err.Error(), typ+": ") {
				t.Errorf("%s %s with a foreign spec: %v, %v; want an error starting %q", typ, what, v, err, typ+": ")
			}
			if err == nil {
				if c, ok := v.(interface{ Close() error }); ok {
					c.Close()
				}
			}
		}
		if f.Open != nil {
			check("Open", func() (any, error) { return f.Open(context.Background(), &foreignSpec{}) })
		}
		if f.Listen != nil {
			check("Listen", func() (any, error) { return f.Listen(context.Background(), &foreignSpec{}) })
		}
	}
}
