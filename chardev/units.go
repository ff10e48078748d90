package chardev

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count written with an optional unit: "4096", "4KiB",
// "1MiB", "2GiB", "10KB" (decimal units are accepted, as 1000s; units are
// case-insensitive, and a bare K, M or G is binary). It decodes
// from YAML, JSON (string or number) and text.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30},
	{"B", 1},
}

// ParseSize parses a size with an optional unit.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("size %q: empty", s)
	}
	mult := int64(1)
	upper := strings.ToUpper(t)
	for _, u := range sizeUnits {
		if suf := strings.ToUpper(u.suffix); strings.HasSuffix(upper, suf) {
			t, mult = strings.TrimSpace(t[:len(t)-len(suf)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a non-negative whole number with an optional unit (B, KiB, MiB, GiB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return Size(n * mult), nil
}

func (s Size) String() string {
	switch {
	case s != 0 && s%(1<<30) == 0:
		return strconv.FormatInt(int64(s>>30), 10) + "GiB"
	case s != 0 && s%(1<<20) == 0:
		return strconv.FormatInt(int64(s>>20), 10) + "MiB"
	case s != 0 && s%(1<<10) == 0:
		return strconv.FormatInt(int64(s>>10), 10) + "KiB"
	}
	return strconv.FormatInt(int64(s), 10)
}

// MarshalText writes the size with its largest exact binary unit.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// UnmarshalJSON accepts a number of bytes or a string with a unit.
func (s *Size) UnmarshalJSON(b []byte) error {
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		return s.UnmarshalText([]byte(n.String()))
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("size: want a number or a string like \"4KiB\"")
	}
	return s.UnmarshalText([]byte(str))
}

// UnmarshalYAML accepts a number of bytes or a string with a unit. It uses
// the function form so this package needs no YAML import.
func (s *Size) UnmarshalYAML(unmarshal func(any) error) error {
	var str string
	if err := unmarshal(&str); err != nil {
		return fmt.Errorf("size: want a number or a string like \"4KiB\"")
	}
	return s.UnmarshalText([]byte(str))
}

// Duration is a time.Duration written as "100ms", "5s", "1m30s". A bare
// number is refused: a unit is always required, so "5" cannot mean five
// nanoseconds by accident.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration with units.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, like 100ms, 5s or 1m", string(b))
	}
	if v < 0 {
		return fmt.Errorf("duration %q: must not be negative", string(b))
	}
	*d = Duration(v)
	return nil
}

// UnmarshalJSON accepts a string duration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		return fmt.Errorf("duration: want a string like \"100ms\"")
	}
	return d.UnmarshalText([]byte(str))
}

// UnmarshalYAML accepts a duration string.
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var str string
	if err := unmarshal(&str); err != nil {
		return fmt.Errorf("duration: want a string like \"100ms\"")
	}
	return d.UnmarshalText([]byte(str))
}
