package payload

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, err string
	}{
		{in: `{"a":1}`},
		{in: ` {} `},
		{in: `[1]`, err: "payload: want a JSON object, got array"},
		{in: `null`, err: "payload: want a JSON object, got null"},
		{in: ``, err: "payload: want a JSON object, got nothing"},
		{in: `hello`, err: "payload: want a JSON object, got invalid JSON"},
		{in: `{"a":`, err: "payload: not valid JSON"},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Parse(%q) error = %v, want %q", tt.in, err, tt.err)
		}
	}
}

func TestFields(t *testing.T) {
	o, err := Parse([]byte(`{"n":-2.5e1,"s":"on","b":true,"z":null,"o":{},"big":1e400}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		field string
		want  any
		err   string
	}{
		{field: "n", want: -25.0},
		{field: "s", want: "on"},
		{field: "b", want: true},
		{field: "z", err: `field "z": want a number, a string or true/false, got null`},
		{field: "o", err: `field "o": want a number, a string or true/false, got object`},
		{field: "big", err: `field "big": number 1e400 is out of range`},
		{field: "gone", err: `field "gone": missing`},
	}
	for _, tt := range tests {
		got, err := o.Scalar(tt.field)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("Scalar(%q) error = %v, want %q", tt.field, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Scalar(%q) = %v, %v; want %v", tt.field, got, err, tt.want)
		}
	}
	if _, err := o.Number("s"); err == nil || err.Error() != `field "s": want a number, got string` {
		t.Errorf("Number of a string: %v", err)
	}
}

func TestEncodeKeepsFieldsAndHTML(t *testing.T) {
	o, err := Parse([]byte(`{"z": [1, 2], "a": "x<y"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Set("m", "a&b"); err != nil {
		t.Fatal(err)
	}
	got, err := o.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":"x<y","m":"a&b","z":[1,2]}`; string(got) != want {
		t.Errorf("Encode = %s, want %s", got, want)
	}
}
