package plugin

import (
	"strings"
	"testing"
)

func TestParseID(t *testing.T) {
	tests := []struct {
		in      string
		kind    Kind
		name    string
		wantErr string
	}{
		{in: "collectors.mqtt", kind: Collectors, name: "mqtt"},
		{in: "transforms.scale_2", kind: Transforms, name: "scale_2"},
		{in: "brokers.web-hook", kind: Brokers, name: "web-hook"},
		{in: "transforms." + strings.Repeat("a", 64), kind: Transforms, name: strings.Repeat("a", 64)},
		{in: "", wantErr: "want kind.name"},
		{in: "mqtt", wantErr: "want kind.name"},
		{in: "collector.mqtt", wantErr: `unknown kind "collector"`},
		{in: "Collectors.mqtt", wantErr: `unknown kind "Collectors"`},
		{in: "collectors.", wantErr: "empty name"},
		{in: "collectors.Mqtt", wantErr: "must start with a lower-case letter"},
		{in: "collectors.9lives", wantErr: "must start with a lower-case letter"},
		{in: "collectors.a.b", wantErr: `character '.' not allowed`},
		{in: "collectors.a b", wantErr: `character ' ' not allowed`},
		{in: "transforms." + strings.Repeat("a", 65), wantErr: "longer than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := ParseID(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseID(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				if id != "" {
					t.Errorf("ParseID(%q) = %q with an error, want empty", tt.in, id)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseID(%q): %v", tt.in, err)
			}
			if id.Kind() != tt.kind || id.Name() != tt.name {
				t.Errorf("ParseID(%q) = kind %q name %q, want %q %q", tt.in, id.Kind(), id.Name(), tt.kind, tt.name)
			}
		})
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{"collectors.mqtt", "transforms.a-b_c", "brokers.", "x.y", "transforms.é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseID(s)
		if err != nil {
			return
		}
		if string(id) != s {
			t.Fatalf("ParseID(%q) = %q", s, id)
		}
		if !id.Kind().Valid() {
			t.Fatalf("ParseID(%q) accepted kind %q", s, id.Kind())
		}
		if string(id.Kind())+"."+id.Name() != s {
			t.Fatalf("kind %q + name %q do not rebuild %q", id.Kind(), id.Name(), s)
		}
		if strings.Contains(id.Name(), ".") {
			t.Fatalf("ParseID(%q) accepted a dotted name", s)
		}
	})
}
