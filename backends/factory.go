package backends

import (
	"context"
	"fmt"

	"chartee/chardev"
)

// opener adapts a type's open function to chardev.Factory.Open, checking
// the spec's type first: a factory handed another type's spec (a caller's
// bug) answers an error naming both rather than panicking. A failed open
// returns a nil Chardev, never a typed nil.
func opener[S any, PS interface {
	*S
	chardev.Spec
}, D chardev.Chardev](typ string, open func(context.Context, PS) (D, error)) func(context.Context, chardev.Spec) (chardev.Chardev, error) {
	return func(ctx context.Context, spec chardev.Spec) (chardev.Chardev, error) {
		s, ok := spec.(PS)
		if !ok {
			return nil, fmt.Errorf("%s: spec is %T, want %T", typ, spec, s)
		}
		dev, err := open(ctx, s)
		if err != nil {
			return nil, err
		}
		return dev, nil
	}
}
