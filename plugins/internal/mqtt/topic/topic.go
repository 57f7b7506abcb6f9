// Package topic maps MQTT topic names to Switchyard subjects and back, for
// collectors.mqtt (topic → subject) and brokers.mqtt (subject → topic), and
// checks topic names and filters. It is pure string work: it never touches
// the network.
//
// # The mapping
//
// Each topic level becomes one subject token, in order: "home/kitchen/temp"
// under the prefix "mqtt" is "mqtt.home.kitchen.temp". A level may hold bytes
// a subject token cannot ('.', which separates tokens, the wildcards '*' and
// '>', and space), so those are escaped as '~' followed by the byte in two
// upper-case hexadecimal digits, and so is '~' itself and every ASCII control
// byte:
//
//	'.' → ~2E   '*' → ~2A   '>' → ~3E   ' ' → ~20   '~' → ~7E   0x01 → ~01
//
// An empty level (in "a//b", or a topic starting or ending with '/') becomes
// the token "~" alone. Nothing else changes: '_', '-', '$', letters of any
// script and digits stay as they are, so the common topics read the same as
// subjects ("zigbee2mqtt/living_room" → "zigbee2mqtt.living_room").
//
// '~' was chosen over '_' as the escape character because '_' is common in
// topic levels and device ids and would make them unreadable.
//
// The mapping is reversible: Topic(Tokens(t)) == t for every valid topic name
// t. Topic is lenient with subjects that did not come from Tokens: a '~' not
// followed by two upper-case hexadecimal digits stays a '~'.
package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter MQTT can carry, in bytes.
const MaxLen = 65535

const hex = "0123456789ABCDEF"

// escape reports whether b must be escaped in a subject token.
func escape(b byte) bool {
	return b == '.' || b == '*' || b == '>' || b == ' ' || b == '~' || b < 0x20 || b == 0x7f
}

// Token returns the subject token of one topic level.
func Token(level string) string {
	if level == "" {
		return "~"
	}
	n := 0
	for i := 0; i < len(level); i++ {
		if escape(level[i]) {
			n++
		}
	}
	if n == 0 {
		return level
	}
	var b strings.Builder
	b.Grow(len(level) + 2*n)
	for i := 0; i < len(level); i++ {
		c := level[i]
		if escape(c) {
			b.WriteByte('~')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0x0f])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Tokens returns the subject tokens of a topic name, joined by '.'.
func Tokens(topic string) string {
	levels := strings.Split(topic, "/")
	for i, l := range levels {
		levels[i] = Token(l)
	}
	return strings.Join(levels, ".")
}

// Subject returns the subject of topic under prefix: prefix + "." + Tokens(topic).
func Subject(prefix, topic string) string {
	return prefix + "." + Tokens(topic)
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// Level returns the topic level of one subject token: the reverse of Token.
func Level(token string) string {
	if token == "~" {
		return ""
	}
	if !strings.Contains(token, "~") {
		return token
	}
	var b strings.Builder
	b.Grow(len(token))
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c == '~' && i+2 < len(token) {
			hi, ok1 := unhex(token[i+1])
			lo, ok2 := unhex(token[i+2])
			if ok1 && ok2 {
				b.WriteByte(hi<<4 | lo)
				i += 2
				continue
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Topic returns the topic name of dotted subject tokens: the reverse of Tokens.
func Topic(tokens string) string {
	parts := strings.Split(tokens, ".")
	for i, p := range parts {
		parts[i] = Level(p)
	}
	return strings.Join(parts, "/")
}

// ValidName checks a topic name a message is published to: not empty, at
// most MaxLen bytes, UTF-8 without NUL, and no wildcard '+' or '#'.
func ValidName(name string) error {
	if err := validString(name); err != nil {
		return err
	}
	if i := strings.IndexAny(name, "+#"); i >= 0 {
		return fmt.Errorf("topic %q: wildcard %q is only allowed in subscription filters", name, name[i])
	}
	return nil
}

// ValidFilter checks a subscription filter: like a name, but '+' may stand
// for one whole level and '#', as the last level, for any number of levels.
func ValidFilter(filter string) error {
	if err := validString(filter); err != nil {
		return err
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return fmt.Errorf("filter %q: '#' may only be the last level", filter)
		case l != "+" && l != "#" && strings.ContainsAny(l, "+#"):
			return fmt.Errorf("filter %q: '+' and '#' must stand alone in their level", filter)
		}
	}
	return nil
}

func validString(s string) error {
	switch {
	case s == "":
		return errors.New("topic is empty")
	case len(s) > MaxLen:
		return fmt.Errorf("topic is longer than %d bytes", MaxLen)
	case !utf8.ValidString(s):
		return fmt.Errorf("topic %q is not valid UTF-8", s)
	case strings.IndexByte(s, 0) >= 0:
		return fmt.Errorf("topic %q holds a NUL character", s)
	}
	return nil
}

// ValidPrefix checks a subject prefix: dot-separated tokens, none empty, and
// none holding '*', '>' or space.
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return errors.New("is required")
	}
	for tok := range strings.SplitSeq(prefix, ".") {
		if tok == "" {
			return fmt.Errorf("%q has an empty token", prefix)
		}
		if strings.ContainsAny(tok, "*> ") {
			return fmt.Errorf("%q: tokens may not hold '*', '>' or space", prefix)
		}
	}
	return nil
}
