package topic

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSubject(t *testing.T) {
	tests := []struct{ topic, subject string }{
		{"home/kitchen/temp", "mqtt.home.kitchen.temp"},
		{"zigbee2mqtt/living_room", "mqtt.zigbee2mqtt.living_room"},
		{"a.b/c", "mqtt.a~2Eb.c"},
		{"star*/gt>/sp ace", "mqtt.star~2A.gt~3E.sp~20ace"},
		{"tilde~/~2E", "mqtt.tilde~7E.~7E2E"},
		{"/leading", "mqtt.~.leading"},
		{"trailing/", "mqtt.trailing.~"},
		{"a//b", "mqtt.a.~.b"},
		{"/", "mqtt.~.~"},
		{"$SYS/broker/uptime", "mqtt.$SYS.broker.uptime"},
		{"küche/temperatur", "mqtt.küche.temperatur"},
		{"ctl\x01\x7f", "mqtt.ctl~01~7F"},
	}
	for _, tt := range tests {
		if got := Subject("mqtt", tt.topic); got != tt.subject {
			t.Errorf("Subject(%q) = %q, want %q", tt.topic, got, tt.subject)
		}
		if got := Topic(strings.TrimPrefix(tt.subject, "mqtt.")); got != tt.topic {
			t.Errorf("Topic(%q) = %q, want %q", tt.subject, got, tt.topic)
		}
	}
}

func TestTopicLenient(t *testing.T) {
	tests := []struct{ tokens, topic string }{
		{"device.sensor_1.telemetry", "device/sensor_1/telemetry"},
		{"a~zz.b~", "a~zz/b~"},
		{"a~2e", "a~2e"}, // lower-case hex is not an escape
		{"x~2", "x~2"},
	}
	for _, tt := range tests {
		if got := Topic(tt.tokens); got != tt.topic {
			t.Errorf("Topic(%q) = %q, want %q", tt.tokens, got, tt.topic)
		}
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		s            string
		name, filter string // "" when valid, else part of the error
	}{
		{"a/b", "", ""},
		{"a/+/c", "wildcard '+'", ""},
		{"a/#", "wildcard '#'", ""},
		{"#", "wildcard", ""},
		{"a/#/c", "wildcard", "may only be the last level"},
		{"a/b+", "wildcard", "must stand alone"},
		{"", "empty", "empty"},
		{"a\x00b", "NUL", "NUL"},
		{"\xff", "UTF-8", "UTF-8"},
		{strings.Repeat("a", MaxLen+1), "longer", "longer"},
	}
	for _, tt := range tests {
		check := func(what string, err error, want string) {
			if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("%s(%.20q) = %v, want %q", what, tt.s, err, want)
			}
		}
		check("ValidName", ValidName(tt.s), tt.name)
		check("ValidFilter", ValidFilter(tt.s), tt.filter)
	}
}

func TestValidPrefix(t *testing.T) {
	for _, p := range []string{"mqtt", "home.mqtt", "a-b_c"} {
		if err := ValidPrefix(p); err != nil {
			t.Errorf("ValidPrefix(%q) = %v", p, err)
		}
	}
	for _, p := range []string{"", ".a", "a..b", "a.", "a*", "a.>", "a b"} {
		if err := ValidPrefix(p); err == nil {
			t.Errorf("ValidPrefix(%q) accepted it", p)
		}
	}
}

// FuzzRoundTrip checks the mapping's promise: every valid topic name maps to
// a valid subject (no empty token, no '*', '>' or space in a token) that maps
// back to the same topic.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"home/kitchen/temp", "a.b/c*d/>/ /~", "/", "a//b/", "~2E", "$SYS/x", "ü/\x01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		tokens := Tokens(name)
		subject := Subject("mqtt", name)
		if err := ValidPrefix(subject); err != nil {
			t.Fatalf("Subject(%q) = %q, not a valid subject: %v", name, subject, err)
		}
		if !utf8.ValidString(tokens) {
			t.Fatalf("Tokens(%q) = %q is not UTF-8", name, tokens)
		}
		if got := Topic(tokens); got != name {
			t.Fatalf("Topic(Tokens(%q)) = %q", name, got)
		}
		if Tokens(Topic(tokens)) != tokens {
			t.Fatalf("Tokens is not canonical for %q", name)
		}
	})
}
