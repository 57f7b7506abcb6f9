package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

var (
	_ fmt.Stringer             = ByteSize(0)
	_ encoding.TextMarshaler   = ByteSize(0)
	_ encoding.TextUnmarshaler = (*ByteSize)(nil)
)

// Binary size units, largest first, as written in configuration.
var byteUnits = [...]struct {
	name string
	size int64
}{
	{"TiB", 1 << 40},
	{"GiB", 1 << 30},
	{"MiB", 1 << 20},
	{"KiB", 1 << 10},
	{"B", 1},
}

const byteUnitList = "B, KiB, MiB, GiB or TiB"

// ParseByteSize reads a size: a whole, non-negative number of bytes followed
// by an optional unit B, KiB, MiB, GiB or TiB ("64KiB", "16MiB", "512B",
// "1024"). Decimal units such as "KB" are refused: they are ambiguous.
func ParseByteSize(s string) (ByteSize, error) {
	text := strings.TrimSpace(s)
	end := 0
	for end < len(text) && text[end] >= '0' && text[end] <= '9' {
		end++
	}
	digits, unit := text[:end], strings.TrimSpace(text[end:])
	if digits == "" {
		if strings.HasPrefix(text, "-") {
			return 0, fmt.Errorf("size %q must not be negative", s)
		}
		return 0, fmt.Errorf("size %q must start with a whole number of bytes, e.g. \"64KiB\"", s)
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	mult := int64(0)
	for _, u := range byteUnits {
		if unit == u.name || (unit == "" && u.size == 1) {
			mult = u.size
			break
		}
	}
	if mult == 0 {
		if strings.HasPrefix(unit, ".") {
			return 0, fmt.Errorf("size %q must be a whole number; use a smaller unit", s)
		}
		return 0, fmt.Errorf("size %q has unknown unit %q (use %s)", s, unit, byteUnitList)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// String writes the size in the largest unit that represents it exactly:
// 65536 is "64KiB", 1000 is "1000B".
func (b ByteSize) String() string {
	if b == 0 {
		return "0B"
	}
	for _, u := range byteUnits[:len(byteUnits)-1] {
		if int64(b)%u.size == 0 {
			return strconv.FormatInt(int64(b)/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// MarshalText writes the size as String does.
func (b ByteSize) MarshalText() ([]byte, error) {
	if b < 0 {
		return nil, errors.New("negative size")
	}
	return []byte(b.String()), nil
}

// UnmarshalText reads a size as ParseByteSize does.
func (b *ByteSize) UnmarshalText(text []byte) error {
	v, err := ParseByteSize(string(text))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
