package backends

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"chartee/backends/capture"
	"chartee/chardev"
)

// fileOp is one call on a capture: output, input, or input by a user.
type fileOp struct {
	in   bool
	user string
	data []byte
}

func (op fileOp) apply(t testing.TB, f *File) {
	var err error
	switch {
	case !op.in:
		_, err = f.Write(op.data)
	case op.user != "":
		err = f.RecordInputFrom(chardev.InputAuthor{Identity: &chardev.Identity{User: op.user}}, op.data)
	default:
		err = f.RecordInput(op.data)
	}
	if err != nil {
		t.Fatalf("capture %+v: %v", op, err)
	}
}

// fileCarryOver freezes f, carries it and inherits it as the new process
// would, then lets go of f's descriptor the way an old process that
// committed does (it exits without closing anything).
func fileCarryOver(t testing.TB, f *File, spec FileSpec, clock capture.Clock) *File {
	t.Helper()
	if err := f.Freeze(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, chardev.ErrFrozen) {
		t.Fatalf("Read on a frozen capture: %v, want ErrFrozen", err)
	}
	c, err := f.Carry()
	if err != nil {
		t.Fatalf("Carry: %v", err)
	}
	nf, err := inheritFile(spec, c, clock)
	if err != nil {
		t.Fatalf("inherit: %v", err)
	}
	if err := nf.Thaw(); err != nil { // the commit
		t.Fatal(err)
	}
	f.release()
	return nf
}

// dirFiles reads every file in dir by name.
func dirFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestFileCarryIsSeamless: a capture carried across an upgrade at any
// point of any stream (lines cut mid-way, UTF-8 sequences cut in two,
// typists changing, size rotation) holds exactly the bytes one capture
// that never stopped writes, in every format: no second header, no extra
// line break, the same rotated files.
func TestFileCarryIsSeamless(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		format := rapid.SampledFrom([]FileFormat{FileRaw, FileTimestamped, FileAsciicast}).Draw(rt, "format")
		dir := rapid.SampledFrom([]FileDirection{FileOut, FileIn, FileBoth}).Draw(rt, "direction")
		rotate := rapid.SampledFrom([]chardev.Size{0, 40, 300}).Draw(rt, "max_size")
		pieces := rapid.SampledFrom([][]byte{[]byte("ab"), []byte("\n"), []byte("line\r\n"), []byte("\xe2\x82"), []byte("\xac"), []byte("\xf0\x9f\x98"), []byte("\x80x"), []byte("\xff")})
		ops := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) fileOp {
			op := fileOp{in: rapid.Bool().Draw(rt, "in")}
			if op.in {
				op.user = rapid.SampledFrom([]string{"", "ann", "bob"}).Draw(rt, "user")
			}
			for _, p := range rapid.SliceOfN(pieces, 1, 4).Draw(rt, "pieces") {
				op.data = append(op.data, p...)
			}
			return op
		}), 1, 30).Draw(rt, "ops")
		cut := rapid.IntRange(0, len(ops)).Draw(rt, "cut")

		run := func(carry bool) map[string]string {
			d := t.TempDir()
			spec := fileSpecFor(filepath.Join(d, "cap"), func(s *FileSpec) {
				s.Format, s.Direction = format, dir
				s.Rotate = FileRotate{MaxSize: rotate, Keep: 3}
			})
			clock := (&fileTestClock{t: fileT0}).now
			f, err := fileOpen(spec, clock)
			if err != nil {
				t.Fatal(err)
			}
			for i, op := range ops {
				if carry && i == cut {
					f = fileCarryOver(t, f, spec, clock)
				}
				op.apply(t, f)
			}
			if carry && cut == len(ops) {
				f = fileCarryOver(t, f, spec, clock)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return dirFiles(t, d)
		}
		want, got := run(false), run(true)
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range want {
				if !yield(k) {
					return
				}
			}
		}) {
			if got[name] != want[name] {
				rt.Fatalf("%s differs after the carry at op %d:\ngot  %q\nwant %q", name, cut, got[name], want[name])
			}
		}
		if len(got) != len(want) {
			rt.Fatalf("files %d, want %d", len(got), len(want))
		}
	})
}

// TestFileInheritRefusesAnotherCapture: a new config that captures to
// another path or format does not continue the old capture; the carried
// file is closed.
func TestFileInheritRefusesAnotherCapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap")
	spec := fileSpecFor(path, func(s *FileSpec) { s.Format = FileTimestamped })
	f := fileMustOpen(t, spec)
	fileMustWrite(t, f, "hello")
	f.Freeze()
	c, err := f.Carry()
	if err != nil {
		t.Fatal(err)
	}
	other := spec
	other.Format = FileRaw
	if _, err := fileInherit(&other, c); err == nil || !bytes.Contains([]byte(err.Error()), []byte("the new config wants")) {
		t.Fatalf("inherit with another format: %v", err)
	}
	if _, err := c.Files[0].Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the refused carried file is still open: %v", err)
	}
	f.Thaw()
	fileMustWrite(t, f, " world\n")
}

// TestFileInheritedCloseBeforeCommitWritesNothing: an inherited capture
// the new process drops before the commit (a failed upgrade) leaves the
// file exactly as the old process has it, even with UTF-8 held back.
func TestFileInheritedCloseBeforeCommitWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cap.cast")
	spec := fileSpecFor(path, func(s *FileSpec) { s.Format = FileAsciicast })
	f := fileMustOpen(t, spec)
	fileMustWrite(t, f, "euro \xe2\x82")
	before := fileMustRead(t, path)
	f.Freeze()
	c, err := f.Carry()
	if err != nil {
		t.Fatal(err)
	}
	nf, err := fileInherit(&spec, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := nf.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileMustRead(t, path); got != before {
		t.Fatalf("closing the uncommitted inherited capture wrote to it:\n%q\nwas\n%q", got, before)
	}
	f.Thaw() // rollback: the old process goes on
	fileMustWrite(t, f, "\xac\n")
	f.Close()
	_, events, err := capture.ParseAsciicast(bytes.NewReader([]byte(fileMustRead(t, path))))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(capture.Stream(events, capture.CodeOutput)); got != "euro €\n" {
		t.Fatalf("stream after the rollback %q", got)
	}
}

// FuzzFileCarryState: any carried state is decoded and continued, or
// refused with an error; it never panics.
func FuzzFileCarryState(f *testing.F) {
	f.Add([]byte(`{"path":"/x","format":"timestamped","direction":"both","size":5,"timestamped":{"mid_line":true,"dir":1,"user":"ann","cut":true,"pending":"\n"}}`))
	f.Add([]byte(`{"path":"/x","format":"asciicast","direction":"out","size":99,"asciicast":{"started":true,"origin":1795600800000000000,"last":2.5,"held_out":"4oI=","typist":"bob","marker":"input by bob"}}`))
	f.Add([]byte(`{"path":"/x","format":"raw","direction":"in","size":0}`))
	f.Add([]byte(`{"path":"/x","format":"asciicast","asciicast":{"last":-1}}`))
	f.Add([]byte(`{"path":"/x","format":"raw"} {}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeFileState(data)
		if err != nil {
			return
		}
		var w bytes.Buffer
		spec := FileSpec{Path: st.Path, Format: st.Format, Direction: st.Direction}
		enc := fileEncoder(&w, spec, (&fileTestClock{t: fileT0}).now)
		switch e := enc.(type) {
		case *capture.Timestamped:
			err = e.Restore(*st.Timestamped)
		case *capture.Asciicast:
			err = e.Restore(*st.Asciicast)
		}
		if err != nil {
			return
		}
		if err := enc.Out([]byte("x\xe2\x82\xac\n")); err != nil {
			t.Fatal(err)
		}
		if err := enc.In([]byte("y")); err != nil {
			t.Fatal(err)
		}
	})
}
