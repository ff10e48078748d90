package ring

import (
	"bytes"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestCarryRestore: a buffer restored from what Carry wrote, whatever
// was written before and whatever its new size, serves the same offsets:
// every byte it keeps reads as in the old buffer, it keeps the newest
// min(old kept, new size), and writes after the restore continue the
// numbering as if one buffer had taken them all.
func TestCarryRestore(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.IntRange(1, 64).Draw(t, "size")
		newSize := rapid.IntRange(1, 64).Draw(t, "new size")
		ref := New(1 << 12) // keeps everything this test writes
		old := New(size)
		for _, w := range rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 1, 100)).Draw(t, "before") {
			ref.Write(w)
			old.Write(w)
		}
		var mem bytes.Buffer
		written, kept, err := old.Carry(&mem)
		if err != nil {
			t.Fatal(err)
		}
		if written != old.Stats().Written || kept != int64(mem.Len()) || uint64(kept) != written-old.Stats().Oldest {
			t.Fatalf("carried %d bytes up to %d; buffer %+v", kept, written, old.Stats())
		}
		nb, err := Restore(newSize, written, bytes.NewReader(mem.Bytes()), kept)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range rapid.SliceOf(rapid.SliceOfN(rapid.Byte(), 1, 100)).Draw(t, "after") {
			ref.Write(w)
			nb.Write(w)
		}
		st := nb.Stats()
		if st.Written != ref.Stats().Written || st.Size != newSize {
			t.Fatalf("restored %+v, reference wrote %d", st, ref.Stats().Written)
		}
		if st.Written-st.Oldest > uint64(newSize) {
			t.Fatalf("keeps %d bytes in %d", st.Written-st.Oldest, newSize)
		}
		got, _, _ := readAll(nb, st.Oldest)
		want, _, _ := readAll(ref, st.Oldest)
		if !bytes.Equal(got, want) {
			t.Fatalf("from offset %d: %q, want %q", st.Oldest, got, want)
		}
		// Oldest is right: what an unbroken buffer of newSize would keep
		// when every byte since the carry's oldest is still there.
		if oldOldest := old.Stats().Oldest; st.Oldest < oldOldest {
			t.Fatalf("restored oldest %d before the old buffer's %d: bytes appeared from nowhere", st.Oldest, oldOldest)
		}
	})
}

// TestRestoreRefusesImpossibleState: more bytes kept than were ever
// written, or a short carried file, is an error.
func TestRestoreRefusesImpossibleState(t *testing.T) {
	if _, err := Restore(8, 3, strings.NewReader("abcd"), 4); err == nil {
		t.Fatal("4 bytes kept up to offset 3 accepted")
	}
	if _, err := Restore(8, 10, strings.NewReader("ab"), 4); err == nil {
		t.Fatal("a short carried file accepted")
	}
}
