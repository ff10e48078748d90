package backends

import (
	"context"
	"errors"
	"os"
	"testing"

	"chartee/chardev"
)

func TestNull(t *testing.T) {
	f, err := chardev.Lookup("null")
	if err != nil {
		t.Fatal(err)
	}
	if f.Input {
		t.Error("null legs should not type into the frontend by default")
	}
	spec := f.NewSpec()
	if err := spec.Validate(); err != nil {
		t.Fatal(err)
	}
	dev, err := f.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := dev.Write([]byte("discarded")); n != 9 || err != nil {
		t.Errorf("Write = %d, %v; want 9, nil", n, err)
	}
	serialAssertCloseUnblocksRead(t, dev)
	if _, err := dev.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: %v, want os.ErrClosed", err)
	}
	if _, err := dev.Read(make([]byte, 1)); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close: %v, want os.ErrClosed", err)
	}
	var zero Null
	if n, err := zero.Write([]byte("ok")); n != 2 || err != nil {
		t.Errorf("zero Null: Write = %d, %v", n, err)
	}
	serialAssertCloseUnblocksRead(t, &zero)
}
