package tty

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"pgregory.net/rapid"

	"chartee/chardev"
)

func genLineSettings() *rapid.Generator[chardev.LineSettings] {
	return rapid.Custom(func(t *rapid.T) chardev.LineSettings {
		return chardev.LineSettings{
			Baud:     rapid.OneOf(rapid.SampledFrom([]int{300, 9600, 115200, 4000000}), rapid.IntRange(1, 5000000)).Draw(t, "baud"),
			DataBits: rapid.IntRange(5, 8).Draw(t, "data_bits"),
			Parity:   chardev.Parity(rapid.IntRange(0, 4).Draw(t, "parity")),
			StopBits: rapid.SampledFrom([]chardev.StopBits{chardev.StopBits1, chardev.StopBits2}).Draw(t, "stop_bits"),
			Flow:     chardev.Flow(rapid.IntRange(0, 2).Draw(t, "flow")),
		}
	})
}

// Whatever a termios held before, encoding settings into it and decoding
// gives the settings back, and bits outside line settings are untouched.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		before := unix.Termios{
			Iflag: rapid.Uint32().Draw(t, "iflag"),
			Oflag: rapid.Uint32().Draw(t, "oflag"),
			Cflag: rapid.Uint32().Draw(t, "cflag"),
			Lflag: rapid.Uint32().Draw(t, "lflag"),
		}
		want := genLineSettings().Draw(t, "settings")
		term := before
		if err := EncodeLine(&term, want); err != nil {
			t.Fatalf("EncodeLine(%v): %v", want, err)
		}
		if got := DecodeLine(&term); got != want {
			t.Fatalf("DecodeLine(EncodeLine(%v)) = %v", want, got)
		}
		if term.Oflag != before.Oflag || term.Lflag != before.Lflag {
			t.Fatalf("oflag/lflag changed: %#x/%#x -> %#x/%#x", before.Oflag, before.Lflag, term.Oflag, term.Lflag)
		}
	})
}

// Zero Baud and DataBits keep what the termios had.
func TestEncodeZeroKeeps(t *testing.T) {
	var term unix.Termios
	if err := EncodeLine(&term, chardev.LineSettings{Baud: 57600, DataBits: 7}); err != nil {
		t.Fatal(err)
	}
	if err := EncodeLine(&term, chardev.LineSettings{Parity: chardev.ParityEven}); err != nil {
		t.Fatal(err)
	}
	got := DecodeLine(&term)
	want := chardev.LineSettings{Baud: 57600, DataBits: 7, Parity: chardev.ParityEven}
	if got != want {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEncodeRefuses(t *testing.T) {
	var term unix.Termios
	err := EncodeLine(&term, chardev.LineSettings{StopBits: chardev.StopBits1Half})
	if !chardev.IsUnsupported(err) {
		t.Fatalf("1.5 stop bits: err = %v, want unsupported", err)
	}
	if err := EncodeLine(&term, chardev.LineSettings{DataBits: 9}); err == nil {
		t.Fatal("9 data bits accepted")
	}
}

// The settings reach a real tty and read back, including a rate without a
// Bnnn constant; raw mode clears echo and canonical mode. A Linux pty
// forces CS8 and no parity (pty_set_termios), so only speed, stop bits and
// flow control can be checked on one.
func TestSetLineOnPty(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	defer slave.Close()

	err = Control(slave, func(fd int) error {
		if err := MakeRaw(fd); err != nil {
			return err
		}
		for _, want := range []chardev.LineSettings{
			{Baud: 9600, DataBits: 8, Flow: chardev.FlowXONXOFF},
			{Baud: 250000, DataBits: 8, StopBits: chardev.StopBits2, Flow: chardev.FlowRTSCTS},
		} {
			if err := SetLine(fd, want); err != nil {
				return err
			}
			got, err := GetLine(fd)
			if err != nil {
				return err
			}
			if got != want {
				t.Errorf("read back %v, want %v", got, want)
			}
		}
		term, err := Get(fd)
		if err != nil {
			return err
		}
		if term.Lflag&(unix.ECHO|unix.ICANON) != 0 {
			t.Errorf("lflag %#x: echo or icanon still set after MakeRaw", term.Lflag)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A pollable duplicate is unblocked by Close, which a blocking pty master
// would never be.
func TestPollableCloseUnblocksRead(t *testing.T) {
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	pm, err := Pollable(master)
	master.Close()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pm.Read(make([]byte, 16))
		done <- err
	}()
	// Give the reader a chance to block; the test is correct either way.
	time.Sleep(50 * time.Millisecond)
	pm.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("read after close: %v, want os.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked 10s after Close")
	}
	if err := Control(pm, func(int) error { return nil }); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Control after close: %v, want os.ErrClosed", err)
	}
}
