package backends

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"chartee/chardev"
)

// TestRingbufCarry: a ring buffer carried through a memfd serves the
// same offsets in the new process: a download resumed at any offset gets
// the same bytes, and output after the cut continues the numbering.
func TestRingbufCarry(t *testing.T) {
	spec := RingbufSpec{Size: 64}
	old, err := NewRingbuf(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	var all []byte
	for i := range 30 {
		line := []byte{byte('a' + i%26), '\n'}
		all = append(all, line...)
		old.Write(line)
	}
	old.Freeze()
	if _, err := old.Read(make([]byte, 1)); !errors.Is(err, chardev.ErrFrozen) {
		t.Fatalf("Read on a frozen ringbuf: %v", err)
	}
	c, err := old.Carry()
	if err != nil {
		t.Fatal(err)
	}
	dev, err := ringbufInherit(&spec, c)
	if err != nil {
		t.Fatal(err)
	}
	nr := dev.(*Ringbuf)
	defer nr.Close()
	oldOldest, oldNext := old.Bounds()
	if o, n := nr.Bounds(); o != oldOldest || n != oldNext {
		t.Fatalf("bounds %d..%d, were %d..%d", o, n, oldOldest, oldNext)
	}
	nr.Write([]byte("after\n"))
	all = append(all, "after\n"...)
	from, _ := nr.Bounds()
	p := make([]byte, 128)
	n, next, missed := nr.ReadAt(from, p)
	if !bytes.Equal(p[:n], all[from:]) || next != uint64(len(all)) || missed != 0 {
		t.Fatalf("read from %d: %q next %d missed %d, want %q", from, p[:n], next, missed, all[from:])
	}
	// The carried memfd was taken and closed.
	if _, err := c.Files[0].Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the memfd is still open in the new process: %v", err)
	}
}

// TestRingbufInheritRefusesABadMemfd: a memfd that does not hold what the
// state says is an error, not a buffer of garbage.
func TestRingbufInheritRefusesABadMemfd(t *testing.T) {
	r, _ := NewRingbuf(RingbufSpec{Size: 64})
	defer r.Close()
	r.Write([]byte("hello"))
	c, err := r.Carry()
	if err != nil {
		t.Fatal(err)
	}
	c.State = []byte(`{"written":5,"kept":6}`)
	if _, err := ringbufInherit(&RingbufSpec{Size: 64}, c); err == nil {
		t.Fatal("a memfd of 5 bytes accepted for 6")
	}
}
