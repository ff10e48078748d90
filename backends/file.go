package backends

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"chartee/backends/capture"
	"chartee/chardev"
)

func init() {
	chardev.Register("file", chardev.Factory{
		NewSpec: func() chardev.Spec { return NewFileSpec() },
		Open: func(ctx context.Context, s chardev.Spec) (chardev.Chardev, error) {
			spec, ok := s.(*FileSpec)
			if !ok {
				return nil, fmt.Errorf("file: spec is %T, want *FileSpec", s)
			}
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("file: open %s: %w", spec.Path, err)
			}
			return NewFile(*spec)
		},
		Inherit: fileInherit,
		Input:   false,
	})
}

// Interface guards.
var (
	_ chardev.Chardev       = (*File)(nil)
	_ chardev.InputRecorder = (*File)(nil)

	_ chardev.AttributedInputRecorder = (*File)(nil)
	_ chardev.Reopener                = (*File)(nil)
	_ chardev.Describer               = (*File)(nil)
	_ chardev.Discarder               = (*File)(nil)
	_ chardev.Claimer                 = (*FileSpec)(nil)
)

// FileFormat is how a capture file is written (see package capture).
type FileFormat string

// Capture file formats.
const (
	// FileRaw writes the bytes as they came.
	FileRaw FileFormat = "raw"
	// FileTimestamped starts every line with its UTC time, and with a
	// direction mark ("> " output, "< " input) when both directions are
	// captured.
	FileTimestamped FileFormat = "timestamped"
	// FileAsciicast writes an asciicast v2 recording for asciinema.
	FileAsciicast FileFormat = "asciicast"
)

// FileDirection is which bytes a capture file records.
type FileDirection string

// Capture directions.
const (
	// FileOut records what the frontend produced.
	FileOut FileDirection = "out"
	// FileIn records what legs typed into the frontend.
	FileIn FileDirection = "in"
	// FileBoth records both, interleaved as they happened.
	FileBoth FileDirection = "both"
)

// FileRotate is a capture file's own size-based rotation. External
// rotation (logrotate) needs none of it: rename the file and send SIGUSR1,
// which makes the appliance call Reopen.
type FileRotate struct {
	// MaxSize rotates the file once it holds at least this many bytes;
	// zero never rotates. The check runs after each write, so a file
	// ends up at most one write (one chunk, one line or one event)
	// larger than MaxSize, and a write is never split across files.
	MaxSize chardev.Size `yaml:"max_size" json:"max_size"`
	// Keep is how many rotated files to keep: PATH.1 (newest) to
	// PATH.<keep>. Zero keeps none: rotation starts the file afresh.
	Keep int `yaml:"keep" json:"keep"`
	// Compress gzips each rotated file to PATH.1.gz.
	Compress bool `yaml:"compress" json:"compress"`
}

// FileSpec is the options of a `file` backend: a capture of the tee's
// traffic to a file.
//
// The defaults are NewFileSpec's, from which config, API and CLI always
// start: append, raw, out, keep 5, 80x24. The zero FileSpec, a Go literal,
// differs on purpose in one way that matters: it truncates (Append is
// false), because the key is `append` (what config files write) and a
// bool's zero is false; renaming the key to make the zero value append
// would break every config that says `append: false`. Go callers that build
// a literal and want to keep the file set Append. Its other empty fields
// mean their defaults (fillDefaults); rotation is off until
// Rotate.MaxSize is set. TestFileZeroSpecTruncatesAndWritesRaw holds this.
type FileSpec struct {
	// Path is the file to write (required). It is created with mode 0640
	// when missing: captures can hold typed passwords. A FIFO or a device
	// works too (without rotation); the path is opened read-write, so a
	// FIFO's open never waits for a reader.
	Path string `yaml:"path" json:"path"`
	// Format is raw (default), timestamped or asciicast.
	Format FileFormat `yaml:"format" json:"format"`
	// Direction is out (default), in or both.
	Direction FileDirection `yaml:"direction" json:"direction"`
	// Append keeps what the file holds (default). False truncates it
	// when the device opens. An appended asciicast continues the existing
	// recording: no second header, times count from its header.
	Append bool `yaml:"append" json:"append"`
	// Rotate is size-based rotation; off unless rotate.max_size is set.
	Rotate FileRotate `yaml:"rotate" json:"rotate"`
	// Width and Height are the terminal size in an asciicast header
	// (default 80x24).
	Width  int `yaml:"width" json:"width"`
	Height int `yaml:"height" json:"height"`
}

// Claims is the capture file: two captures to one file would interleave.
func (s *FileSpec) Claims() []chardev.Claim {
	return []chardev.Claim{chardev.Path("path", s.Path)}
}

// NewFileSpec returns a FileSpec with the defaults filled in.
func NewFileSpec() *FileSpec {
	return &FileSpec{
		Format:    FileRaw,
		Direction: FileOut,
		Append:    true,
		Rotate:    FileRotate{Keep: 5},
		Width:     80,
		Height:    24,
	}
}

// fillDefaults gives empty options of a zero FileSpec their default
// values (Append excepted: its zero value, truncate, is a choice).
func (s *FileSpec) fillDefaults() {
	d := NewFileSpec()
	if s.Format == "" {
		s.Format = d.Format
	}
	if s.Direction == "" {
		s.Direction = d.Direction
	}
	if s.Width == 0 {
		s.Width = d.Width
	}
	if s.Height == 0 {
		s.Height = d.Height
	}
}

// Validate reports missing or impossible options, naming the key. Empty
// format and direction and zero width and height mean their defaults.
func (s *FileSpec) Validate() error {
	if s.Path == "" {
		return errors.New("file: path: required")
	}
	switch s.Format {
	case "", FileRaw, FileTimestamped, FileAsciicast:
	default:
		return fmt.Errorf("file: format %q: want raw, timestamped or asciicast", s.Format)
	}
	switch s.Direction {
	case "", FileOut, FileIn, FileBoth:
	default:
		return fmt.Errorf("file: direction %q: want out, in or both", s.Direction)
	}
	if s.Rotate.MaxSize < 0 {
		return fmt.Errorf("file: rotate.max_size %d: must not be negative", s.Rotate.MaxSize)
	}
	if s.Rotate.Keep < 0 {
		return fmt.Errorf("file: rotate.keep %d: must not be negative", s.Rotate.Keep)
	}
	if s.Rotate.Compress && s.Rotate.MaxSize == 0 {
		return errors.New("file: rotate.compress: needs rotate.max_size (only files chartee rotates itself are compressed)")
	}
	if s.Width < 0 {
		return fmt.Errorf("file: width %d: must be positive", s.Width)
	}
	if s.Height < 0 {
		return fmt.Errorf("file: height %d: must be positive", s.Height)
	}
	return nil
}

// File is a capture device: what the tee's frontend says (Write) and, when
// asked, what legs type into it (RecordInput) go to a file in one of the
// capture formats. A capture never types, so Read only waits for Close.
//
// Every Write or RecordInput reaches the OS in one write(2), and every
// WriteBuffers of a raw capture in one writev(2), before it returns, so a
// kill -9 of chartee loses nothing already accepted; the only bytes held in
// memory are up to three of an incomplete UTF-8 sequence in asciicast,
// written on Close.
//
// Rotation is written here rather than with gopkg.in/natefinch/lumberjack.v2:
// lumberjack v2.2.1 starts a goroutine per Logger that Close never stops
// (upstream issue #56, open since 2017), which would leak one goroutine per
// device open or swap in a long-running daemon; it counts sizes in whole
// megabytes; and it has no hook to start each rotated asciicast file with
// its own header.
type File struct {
	spec FileSpec

	// mu serialises Write, RecordInput, Reopen and Close: the encoders
	// keep line and UTF-8 state across calls.
	mu   sync.Mutex
	sink fileSink
	enc  capture.Encoder

	done      chan struct{} // closed by Close: wakes Read, refuses writes
	closeOnce sync.Once

	// gate and inherited are a process upgrade's (carry_file.go).
	gate      freezeGate
	inherited atomic.Bool
}

// NewFile validates spec and opens the capture file.
func NewFile(spec FileSpec) (*File, error) {
	return fileOpen(spec, nil)
}

// fileOpen is NewFile with a clock for tests.
func fileOpen(spec FileSpec, now capture.Clock) (*File, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	spec.fillDefaults()
	f := &File{
		spec: spec,
		sink: fileSink{path: spec.Path, rotate: spec.Rotate},
		done: make(chan struct{}),
	}
	f.enc = fileEncoder(&f.sink, spec, now)
	// Staged: opening has no effect on disk beyond creating a missing
	// file, so a start that fails later can Discard it without a trace.
	f.sink.stage = true
	if err := f.openFile(!spec.Append); err != nil {
		return nil, err
	}
	if f.sink.full() { // appending to a file already over the limit
		if err := f.rotateFile(); err != nil {
			f.sink.close()
			return nil, err
		}
	}
	return f, nil
}

// fileEncoder makes the encoder of spec's format, writing to w.
func fileEncoder(w io.Writer, spec FileSpec, now capture.Clock) capture.Encoder {
	switch spec.Format {
	case FileTimestamped:
		return capture.NewTimestamped(w, capture.TimestampedOptions{Marks: spec.Direction == FileBoth, Clock: now})
	case FileAsciicast:
		return capture.NewAsciicast(w, capture.AsciicastOptions{Width: spec.Width, Height: spec.Height, Clock: now})
	default:
		return capture.Raw{W: w}
	}
}

// openFile opens the path and sets the encoder up for what the file holds.
// Callers hold mu (or own f exclusively).
func (f *File) openFile(truncate bool) error {
	existing, err := f.sink.open(truncate)
	if err != nil {
		return err
	}
	if err := f.startEncoder(existing); err != nil {
		f.sink.close()
		return err
	}
	return nil
}

// startEncoder tells the encoder that it now writes to a file that holds
// existing bytes (zero for a new, truncated or rotated file, or a device).
func (f *File) startEncoder(existing int64) error {
	switch enc := f.enc.(type) {
	case *capture.Timestamped:
		midLine := false
		if existing > 0 {
			last := make([]byte, 1)
			if _, err := f.sink.file().ReadAt(last, existing-1); err != nil {
				return fmt.Errorf("file: %s: reading the last byte: %w", f.spec.Path, err)
			}
			midLine = last[0] != '\n'
		}
		enc.NewFile(midLine)
	case *capture.Asciicast:
		if existing == 0 {
			if err := enc.Start(); err != nil {
				return fmt.Errorf("file: %w", err)
			}
			return nil
		}
		h, err := capture.ReadHeader(io.NewSectionReader(f.sink.file(), 0, existing))
		if err != nil {
			return fmt.Errorf("file: %s holds something else than an asciicast v2 recording, so it cannot be appended to (set append: false to overwrite it): %w", f.spec.Path, err)
		}
		enc.Resume(h)
	}
	return nil
}

// rotateFile rotates the file and starts the encoder on the new one.
// Callers hold mu.
func (f *File) rotateFile() error {
	if err := f.sink.rotateNow(); err != nil {
		return err
	}
	return f.startEncoder(0)
}

// Describe is the compact form of the spec: "file PATH (FORMAT,
// DIRECTION)".
func (s *FileSpec) Describe() string {
	c := *s
	c.fillDefaults()
	return fmt.Sprintf("file %s (%s, %s)", c.Path, c.Format, c.Direction)
}

// Describe names the device for status and logs.
func (f *File) Describe() string {
	return fmt.Sprintf("file %s (%s, %s)", f.spec.Path, f.spec.Format, f.spec.Direction)
}

var _ chardev.Coalescer = (*File)(nil)

// rawCoalesceDelay is how long the engine may hold output for a raw
// capture to write it in batches (chardev.Coalescer). Timestamped and
// asciicast captures stamp each write with the time it happens, so they
// are written at once.
//
// 10 ms rather than 2: with a large queue the engine's batch is 256 KiB,
// which a 70 MB/s stream fills in 3.7 ms, and a shorter delay would end
// most batches early (docs/ENGINE.md, "fifth pass"). A person never reads
// a capture file within 10 ms of its output.
const rawCoalesceDelay = 10 * time.Millisecond

// CoalesceDelay lets the engine batch a raw capture's writes: a capture
// beside a console's clients costs one writev per batch instead of a
// thread wake-up and a write per chunk.
func (f *File) CoalesceDelay() time.Duration {
	if f.spec.Format == FileRaw {
		return rawCoalesceDelay
	}
	return 0
}

// Write records output from the frontend. A direction:in capture accepts
// and drops it. An error (disk full, file gone) fails the leg and names the
// file and the cause.
func (f *File) Write(p []byte) (int, error) {
	if f.spec.Direction == FileIn {
		return f.ignore(p)
	}
	if err := f.record(capture.Encoder.Out, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ chardev.InputRecorderToggle = (*File)(nil)

// RecordsInput is false for a direction:out capture: the engine then
// gives it no input at all (chardev.InputRecorderToggle), and typing does
// not wake its writer.
func (f *File) RecordsInput() bool { return f.spec.Direction != FileOut }

// RecordInput records bytes typed into the frontend; a direction:out
// capture ignores them.
func (f *File) RecordInput(p []byte) error {
	if f.spec.Direction == FileOut {
		_, err := f.ignore(p)
		return err
	}
	return f.record(capture.Encoder.In, p)
}

// RecordInputFrom records bytes typed into the frontend with who typed
// them: timestamped (both directions) and asciicast captures name the
// user; a raw capture records the bytes alone.
func (f *File) RecordInputFrom(who chardev.InputAuthor, p []byte) error {
	if f.spec.Direction == FileOut {
		_, err := f.ignore(p)
		return err
	}
	user := who.User()
	return f.record(func(e capture.Encoder, b []byte) error {
		if ae, ok := e.(capture.AttributedEncoder); ok {
			return ae.InFrom(user, b)
		}
		return e.In(b)
	}, p)
}

// ignore accepts p without recording it, refusing only after Close.
func (f *File) ignore(p []byte) (int, error) {
	select {
	case <-f.done:
		return 0, f.errClosed("write")
	default:
		return len(p), nil
	}
}

// record encodes p in one direction and rotates the file once it is full.
func (f *File) record(encode func(capture.Encoder, []byte) error, p []byte) error {
	return f.writeLocked(func() error { return encode(f.enc, p) })
}

var _ chardev.BuffersWriter = (*File)(nil)

// WriteBuffers records a batch of output (chardev.BuffersWriter). A raw
// capture writes the whole batch with one writev(2): the engine batches a
// raw capture's output (CoalesceDelay), and on ext4 each write(2) of a
// chunk cost the file's locks and time stamps again — with a 4 KiB pty
// read per chunk, most of what a capture beside a client cost. Other
// formats encode chunk by chunk, as Write does.
func (f *File) WriteBuffers(bufs [][]byte) (int64, error) {
	if f.spec.Format != FileRaw || f.spec.Direction == FileIn {
		var n int64
		for _, b := range bufs {
			m, err := f.Write(b)
			n += int64(m)
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	var n int64
	err := f.writeLocked(func() (err error) {
		n, err = f.sink.writeBuffers(bufs)
		return err
	})
	return n, err
}

// writeLocked runs write, which writes to the file, under mu once the
// file is known to be open and out of its stage, then rotates the file
// once it is full.
func (f *File) writeLocked(write func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return f.errClosed("write")
	default:
	}
	if f.sink.file() == nil {
		return fmt.Errorf("file: write %s: no open file after an earlier failure", f.spec.Path)
	}
	if err := f.sink.commit(); err != nil {
		return fileError(err)
	}
	if err := write(); err != nil {
		return fileError(err)
	}
	if f.sink.full() {
		return f.rotateFile()
	}
	return nil
}

// fileOpenError explains a failed open with what to do about it: a
// missing directory is the usual first-run problem (/var/log/chartee).
func fileOpenError(path string, err error) error {
	dir := filepath.Dir(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if _, serr := os.Stat(dir); serr != nil {
			return fmt.Errorf("file: %w (the directory %s does not exist: create it with mkdir -p %s, or under systemd with LogsDirectory= in the unit, as configs/chartee.service does)", err, dir, dir)
		}
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("file: %w (give chartee's user write access to %s; under systemd LogsDirectory= makes /var/log/<name> writable)", err, dir)
	}
	return fileError(err)
}

// fileError prefixes err with the backend type. The os errors already name
// the operation and the path: "file: write /dev/full: no space left on
// device".
func fileError(err error) error {
	return fmt.Errorf("file: %w", err)
}

func (f *File) errClosed(op string) error {
	return fmt.Errorf("file: %s %s: %w", op, f.spec.Path, os.ErrClosed)
}

// Read blocks until Close, then reports the device closed: a capture never
// types into the frontend.
func (f *File) Read(p []byte) (int, error) {
	select {
	case <-f.done:
		return 0, f.errClosed("read")
	case <-f.gate.frozen():
		return 0, chardev.ErrFrozen
	}
}

// Reopen closes the file and opens the path again, appending: after
// logrotate renamed the file away, new bytes go to a new file at the
// original path. It does not truncate and does not rotate.
func (f *File) Reopen() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		return f.errClosed("reopen")
	default:
	}
	if err := f.sink.commit(); err != nil {
		return fileError(err)
	}
	if err := f.sink.close(); err != nil {
		return fileError(err)
	}
	return f.openFile(false)
}

// Discard closes a capture that was opened but never used (a start or
// reload that failed after opening it), undoing the open: a file it
// created is removed, an existing one is left exactly as it was — no
// header, no truncation (chardev.Discarder). Once anything was written it
// is Close.
func (f *File) Discard() error {
	if f.inherited.Load() {
		return f.release()
	}
	f.mu.Lock()
	staged, created := f.sink.stage, f.sink.created
	f.mu.Unlock()
	if !staged {
		return f.Close()
	}
	f.closeOnce.Do(func() { close(f.done) })
	f.mu.Lock()
	defer f.mu.Unlock()
	file := f.sink.current.Swap(nil)
	if file == nil {
		return nil
	}
	err := file.Close()
	if created {
		if rerr := os.Remove(f.spec.Path); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fileError(err)
	}
	return nil
}

// Close flushes what the encoder holds back and closes the file. It is
// idempotent, wakes Read, and makes a Write stuck on a path that is a FIFO
// or a terminal return.
func (f *File) Close() error {
	if f.inherited.Load() {
		return f.release()
	}
	first := false
	f.closeOnce.Do(func() {
		close(f.done)
		first = true
	})
	if !first {
		return nil
	}
	// A Write to a regular file always finishes; one blocked on a FIFO
	// with a slow reader holds mu until its deadline passes. Regular files
	// have no deadlines (os.ErrNoDeadline), which is fine.
	if file := f.sink.current.Load(); file != nil {
		_ = file.SetWriteDeadline(time.Now())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var flushErr error
	if f.sink.file() != nil {
		flushErr = f.sink.commit()
	}
	if a, ok := f.enc.(*capture.Asciicast); ok && f.sink.file() != nil && flushErr == nil {
		flushErr = a.Flush()
	}
	if err := f.sink.close(); err != nil {
		return fileError(err)
	}
	// A flush that hit the deadline set above is part of closing.
	if flushErr != nil && !errors.Is(flushErr, os.ErrDeadlineExceeded) {
		return fileError(flushErr)
	}
	return nil
}

// fileSink is the open capture file: an io.Writer for the encoders that
// counts what the file holds, opens, reopens and rotates it.
type fileSink struct {
	path    string
	rotate  FileRotate
	current atomic.Pointer[os.File] // read by Close without mu
	size    int64                   // bytes in the file, as far as we know

	// stage holds writes in memory (an asciicast header) and defers the
	// truncation of an existing file until commit: between the open and
	// the first write or Close, the file on disk is as it was (or newly
	// created, and then created says so).
	stage        bool
	created      bool
	pendingTrunc bool
	held         []byte
}

// commit ends the stage: the file is truncated if it was to be, and what
// was held is written. It is a no-op afterwards.
func (s *fileSink) commit() error {
	if !s.stage {
		return nil
	}
	s.stage = false
	file := s.file()
	if file == nil {
		return nil
	}
	if s.pendingTrunc {
		s.pendingTrunc = false
		if err := file.Truncate(0); err != nil {
			return err
		}
	}
	held := s.held
	s.held = nil
	if len(held) > 0 {
		if _, err := file.Write(held); err != nil {
			return err
		}
	}
	return nil
}

func (s *fileSink) file() *os.File { return s.current.Load() }

// open opens the path for appending (after truncating it when asked) and
// returns how many bytes a regular file already holds; devices and FIFOs
// report zero. The file is opened read-write so that an appended capture's
// header or last byte can be read back from the very file written to.
func (s *fileSink) open(truncate bool) (int64, error) {
	flags := os.O_RDWR | os.O_CREATE | os.O_APPEND
	if truncate && !s.stage {
		flags |= os.O_TRUNC
	}
	if s.stage {
		_, err := os.Lstat(s.path)
		s.created = errors.Is(err, fs.ErrNotExist)
	}
	file, err := os.OpenFile(s.path, flags, 0o640)
	if err != nil {
		return 0, fileOpenError(s.path, err)
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return 0, fileError(err)
	}
	if !info.Mode().IsRegular() && s.rotate.MaxSize > 0 {
		file.Close()
		return 0, fmt.Errorf("file: rotate: %s is not a regular file (%s), so it cannot be rotated", s.path, info.Mode().Type())
	}
	s.size = 0
	if info.Mode().IsRegular() {
		s.size = info.Size()
	}
	if !info.Mode().IsRegular() {
		s.stage = false // a device or FIFO: nothing to undo, errors show now
	}
	if s.stage && truncate && s.size > 0 {
		s.pendingTrunc, s.size = true, 0
	}
	s.current.Store(file)
	return s.size, nil
}

// Write writes p to the current file in one call.
func (s *fileSink) Write(p []byte) (int, error) {
	file := s.file()
	if file == nil {
		return 0, fmt.Errorf("write %s: %w", s.path, os.ErrClosed)
	}
	if s.stage {
		s.held = append(s.held, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	n, err := file.Write(p)
	s.size += int64(n)
	return n, err
}

// writeBuffers writes bufs to the current file with writev(2), as many
// calls as it takes (a FIFO may take part of a batch, then wait for its
// reader through the runtime poller, so Close's deadline still ends the
// wait).
func (s *fileSink) writeBuffers(bufs [][]byte) (int64, error) {
	file := s.file()
	if file == nil {
		return 0, fmt.Errorf("write %s: %w", s.path, os.ErrClosed)
	}
	if s.stage {
		var n int64
		for _, b := range bufs {
			m, _ := s.Write(b) // held in memory: it cannot fail
			n += int64(m)
		}
		return n, nil
	}
	rc, err := file.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int64
	var werr error
	err = rc.Write(func(fd uintptr) bool {
		for len(bufs) > 0 {
			m, err := unix.Writev(int(fd), bufs)
			switch {
			case err == unix.EINTR:
				continue
			case err == unix.EAGAIN:
				return false
			case err != nil:
				werr = err
				return true
			case m == 0:
				werr = io.ErrShortWrite
				return true
			}
			n += int64(m)
			bufs = skipWritten(bufs, m)
		}
		return true
	})
	s.size += n
	if werr != nil {
		return n, &os.PathError{Op: "write", Path: s.path, Err: werr}
	}
	return n, err
}

// skipWritten drops the first m bytes of bufs.
func skipWritten(bufs [][]byte, m int) [][]byte {
	for len(bufs) > 0 && m >= len(bufs[0]) {
		m -= len(bufs[0])
		bufs = bufs[1:]
	}
	if len(bufs) > 0 {
		bufs[0] = bufs[0][m:]
	}
	return bufs
}

// full reports whether the file reached rotate.max_size.
func (s *fileSink) full() bool {
	return s.rotate.MaxSize > 0 && s.size >= int64(s.rotate.MaxSize)
}

func (s *fileSink) close() error {
	file := s.current.Swap(nil)
	if file == nil {
		return nil
	}
	return file.Close()
}

// rotateNow moves the file to PATH.1 (older ones up to PATH.<keep>, the
// oldest dropped), opens a new empty file at PATH, then gzips PATH.1 when
// asked. Compression runs here, in the writer's goroutine, and holds up
// that leg's writes (its queue absorbs the pause); in exchange it needs no
// background goroutine and a failure is reported, not lost. If it fails the
// uncompressed PATH.1 stays and the error fails the leg.
func (s *fileSink) rotateNow() error {
	if err := s.close(); err != nil {
		return fileError(err)
	}
	keep := s.rotate.Keep
	if keep > 0 {
		if err := s.shiftBackups(keep); err != nil {
			return err
		}
		if err := os.Rename(s.path, s.backupName(1, "")); err != nil {
			return fileError(err)
		}
	}
	if _, err := s.open(true); err != nil {
		return err
	}
	if keep > 0 && s.rotate.Compress {
		if err := fileGzip(s.backupName(1, "")); err != nil {
			return fmt.Errorf("file: rotate: %w", err)
		}
	}
	return nil
}

// backupName is PATH.<i> plus ext ("" or ".gz").
func (s *fileSink) backupName(i int, ext string) string {
	return fmt.Sprintf("%s.%d%s", s.path, i, ext)
}

// shiftBackups renames PATH.i to PATH.i+1 from the oldest down, dropping
// PATH.<keep>, plain or gzipped alike (compress may have been switched).
func (s *fileSink) shiftBackups(keep int) error {
	for _, ext := range []string{"", ".gz"} {
		if err := os.Remove(s.backupName(keep, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file: rotate: %w", err)
		}
	}
	for i := keep - 1; i >= 1; i-- {
		for _, ext := range []string{"", ".gz"} {
			err := os.Rename(s.backupName(i, ext), s.backupName(i+1, ext))
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("file: rotate: %w", err)
			}
		}
	}
	return nil
}

// fileGzip compresses name to name.gz and removes name. On failure it
// removes the partial name.gz and keeps name.
func fileGzip(name string) (err error) {
	src, err := os.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := os.OpenFile(name+".gz", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			dst.Close()
			os.Remove(name + ".gz")
		}
	}()
	zw := gzip.NewWriter(dst)
	if _, err := io.Copy(zw, src); err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("compress %s: %w", name, err)
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Remove(name)
}
