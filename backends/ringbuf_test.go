package backends

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"chartee/backends/ring"
	"chartee/chardev"
)

func TestRingbufRegistered(t *testing.T) {
	fac, err := chardev.Lookup("ringbuf")
	if err != nil {
		t.Fatal(err)
	}
	if fac.Input || fac.Open == nil {
		t.Fatalf("factory Input=%v Open set=%v", fac.Input, fac.Open != nil)
	}
	spec, ok := fac.NewSpec().(*RingbufSpec)
	if !ok || spec.Size != 1<<20 {
		t.Fatalf("NewSpec = %#v", fac.NewSpec())
	}
	spec.Size = 16
	dev, err := fac.Open(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	sb, ok := dev.(chardev.ScrollbackReader)
	if !ok {
		t.Fatalf("%T is not a ScrollbackReader", dev)
	}
	dev.Write([]byte("0123456789abcdefXYZ"))
	if oldest, next := sb.Bounds(); oldest != 3 || next != 19 {
		t.Fatalf("Bounds = %d, %d", oldest, next)
	}
	if got := chardev.Describe(dev); got != "ringbuf 16" {
		t.Fatalf("Describe = %q", got)
	}
	if _, err := fac.Open(context.Background(), NewFileSpec()); err == nil || !strings.HasPrefix(err.Error(), "ringbuf: spec is") {
		t.Fatalf("Open with a foreign spec: %v", err)
	}
}

func TestRingbufSpecValidate(t *testing.T) {
	for _, size := range []chardev.Size{-1, 2 << 30} {
		spec := RingbufSpec{Size: size}
		if err := spec.Validate(); err == nil || !strings.HasPrefix(err.Error(), "ringbuf: size") {
			t.Errorf("Validate(size %d) = %v", size, err)
		}
		if _, err := NewRingbuf(spec); err == nil {
			t.Errorf("NewRingbuf(size %d) accepted it", size)
		}
	}
	r, err := NewRingbuf(RingbufSpec{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := chardev.Describe(r); got != "ringbuf 1MiB" {
		t.Fatalf("zero spec: %q", got)
	}
}

func TestRingbufReadAtReportsMissed(t *testing.T) {
	r, err := NewRingbuf(RingbufSpec{Size: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Write([]byte("hello, "))
	r.Write([]byte("world"))
	p := make([]byte, 64)
	n, next, missed := r.ReadAt(0, p)
	if string(p[:n]) != "o, world" || next != 12 || missed != 4 {
		t.Fatalf("ReadAt(0) = %q next %d missed %d", p[:n], next, missed)
	}
}

func TestRingbufReadBlocksUntilClose(t *testing.T) {
	r, err := NewRingbuf(RingbufSpec{Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 8))
		readErr <- err
	}()
	r.Write([]byte("output"))
	select {
	case err := <-readErr:
		t.Fatalf("Read returned before Close: %v", err)
	default:
	}
	r.Close()
	if err := <-readErr; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close = %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
	if err := r.Wait(context.Background(), 6); !errors.Is(err, ring.ErrClosed) {
		t.Fatalf("Wait after Close = %v", err)
	}
	p := make([]byte, 16)
	if n, _, _ := r.ReadAt(0, p); string(p[:n]) != "output" {
		t.Fatalf("kept after Close: %q", p[:n])
	}
}

// TestRingbufFollowers plays the appliance's follow=1 readers: several
// goroutines follow the device through ScrollbackReader while the engine
// writes, and each must see the whole stream.
func TestRingbufFollowers(t *testing.T) {
	var want bytes.Buffer
	for i := range 300 {
		fmt.Fprintf(&want, "output line %d\r\n", i)
	}
	r, err := NewRingbuf(RingbufSpec{Size: chardev.Size(want.Len())})
	if err != nil {
		t.Fatal(err)
	}
	var dev chardev.Chardev = r
	sb := dev.(chardev.ScrollbackReader)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const followers = 3
	got := make([]bytes.Buffer, followers)
	errs := make([]error, followers)
	var wg sync.WaitGroup
	for i := range followers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ringbufFollow(ctx, sb, &got[i])
		}()
	}
	for line := range bytes.Lines(want.Bytes()) {
		if _, err := dev.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	dev.Close()
	wg.Wait()
	for i := range followers {
		if errs[i] != nil {
			t.Fatalf("follower %d: %v", i, errs[i])
		}
		if !bytes.Equal(got[i].Bytes(), want.Bytes()) {
			t.Fatalf("follower %d read %d bytes, want %d", i, got[i].Len(), want.Len())
		}
	}
}

// ringbufFollow copies sb from offset 0 to w until the device closes.
func ringbufFollow(ctx context.Context, sb chardev.ScrollbackReader, w *bytes.Buffer) error {
	p := make([]byte, 100)
	var off uint64
	for {
		n, next, missed := sb.ReadAt(off, p)
		if missed != 0 {
			return fmt.Errorf("missed %d bytes", missed)
		}
		w.Write(p[:n])
		off = next
		if n > 0 {
			continue
		}
		if err := sb.Wait(ctx, off); errors.Is(err, ring.ErrClosed) {
			return nil
		} else if err != nil {
			return err
		}
	}
}
