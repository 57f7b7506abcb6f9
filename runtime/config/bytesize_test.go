package config

import (
	"strings"
	"testing"
)

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		err  string // substring of the error; "" for none
	}{
		{"0", 0, ""},
		{"1024", 1024, ""},
		{"512B", 512, ""},
		{"64KiB", 64 << 10, ""},
		{"16MiB", 16 << 20, ""},
		{"1GiB", 1 << 30, ""},
		{"2TiB", 2 << 40, ""},
		{" 64 KiB ", 64 << 10, ""},
		{"8388607TiB", 8388607 << 40, ""},
		{"8388608TiB", 0, "too large"},
		{"99999999999999999999", 0, "too large"},
		{"12XB", 0, `unknown unit "XB" (use B, KiB, MiB, GiB or TiB)`},
		{"64KB", 0, `unknown unit "KB"`},
		{"64kib", 0, `unknown unit "kib"`},
		{"-1", 0, "must not be negative"},
		{"-64KiB", 0, "must not be negative"},
		{"1.5MiB", 0, "must be a whole number"},
		{"", 0, "must start with a whole number"},
		{"MiB", 0, "must start with a whole number"},
		{"0x10", 0, `unknown unit "x10"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseByteSize(tt.in)
			if tt.err == "" {
				if err != nil || got != tt.want {
					t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseByteSize(%q) error = %v; want one containing %q", tt.in, err, tt.err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.in) {
				t.Errorf("error %q does not quote the input", err)
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{0, "0B"},
		{1, "1B"},
		{1000, "1000B"},
		{1024, "1KiB"},
		{1536, "1536B"},
		{64 << 10, "64KiB"},
		{1 << 20, "1MiB"},
		{3 << 30, "3GiB"},
		{5 << 40, "5TiB"},
		{1<<40 + 1<<30, "1025GiB"},
		{-2048, "-2KiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
		if tt.in < 0 {
			continue
		}
		// What String writes, ParseByteSize reads back.
		back, err := ParseByteSize(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", tt.want, back, err, tt.in)
		}
	}
}

func TestByteSizeText(t *testing.T) {
	var b ByteSize
	if err := b.UnmarshalText([]byte("16MiB")); err != nil || b != 16<<20 {
		t.Fatalf("UnmarshalText(16MiB) = %d, %v", b, err)
	}
	if err := b.UnmarshalText([]byte("12XB")); err == nil || b != 16<<20 {
		t.Errorf("UnmarshalText(12XB) = %v and left %d; want an error and no change", err, b)
	}
	text, err := b.MarshalText()
	if err != nil || string(text) != "16MiB" {
		t.Errorf("MarshalText = %q, %v", text, err)
	}
	if _, err := ByteSize(-1).MarshalText(); err == nil {
		t.Error("MarshalText of a negative size succeeded")
	}
}
