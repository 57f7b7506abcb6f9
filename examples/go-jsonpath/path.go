package jsonpath

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxIndex bounds an array index in a path: no JSON body the host lets a
// guest fetch (1 MiB by default) has more elements than this.
const maxIndex = 1<<31 - 1

// Step is one step of a Path: an object key, or an array index (negative
// counts from the end: -1 is the last element).
type Step struct {
	Key     string
	Index   int
	IsIndex bool
}

// Path is a parsed path such as main.temp, sensors[2].value or
// ["dotted.key"].value.
type Path []Step

// ParsePath parses a path. Its syntax:
//
//	path   = first { "." key | "[" index "]" | "[" quoted "]" }
//	first  = key | "[" index "]" | "[" quoted "]"
//	key    = one or more characters other than "." "[" "]" and '"'
//	index  = an integer without leading zeros; negative counts from the end
//	quoted = a JSON string, for a key with any characters ("a.b", "", "[x]")
//
// An error says what is wrong and at which byte of s.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return nil, fmt.Errorf("empty path")
	}
	if !utf8.ValidString(s) {
		return nil, fmt.Errorf("not valid UTF-8")
	}
	var p Path
	i := 0
	for i < len(s) {
		switch {
		case s[i] == '[':
			st, n, err := parseBracket(s[i:])
			if err != nil {
				return nil, fmt.Errorf("%v at byte %d", err, i)
			}
			p = append(p, st)
			i += n
		case s[i] == '.' && len(p) > 0:
			i++ // a key must follow
			if i == len(s) || !keyByte(s[i]) {
				return nil, fmt.Errorf(`want a key after "." at byte %d`, i)
			}
			fallthrough
		case len(p) == 0 && keyByte(s[i]):
			j := i
			for j < len(s) && keyByte(s[j]) {
				j++
			}
			p = append(p, Step{Key: s[i:j]})
			i = j
		case s[i] == ']':
			return nil, fmt.Errorf(`unexpected "]" at byte %d`, i)
		case s[i] == '"':
			return nil, fmt.Errorf(`unexpected '"' at byte %d: quote a key in brackets, ["a.b"]`, i)
		case len(p) == 0: // a leading "."
			return nil, fmt.Errorf(`want a key or "[" at byte %d, got "."`, i)
		default: // a key right after "]"
			return nil, fmt.Errorf(`want "." or "[" at byte %d, got %q`, i, s[i])
		}
	}
	return p, nil
}

// keyByte reports whether b may appear in an unquoted key.
func keyByte(b byte) bool { return b != '.' && b != '[' && b != ']' && b != '"' }

// parseBracket parses "[...]" at the start of s and returns the step and the
// bytes it took.
func parseBracket(s string) (Step, int, error) {
	if len(s) > 1 && s[1] == '"' {
		end := 2
		for end < len(s) && s[end] != '"' {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(s) {
			return Step{}, 0, fmt.Errorf("unterminated quoted key")
		}
		var key string
		if err := json.Unmarshal([]byte(s[1:end+1]), &key); err != nil {
			return Step{}, 0, fmt.Errorf("quoted key %s is not a JSON string", s[1:end+1])
		}
		if end+1 >= len(s) || s[end+1] != ']' {
			return Step{}, 0, fmt.Errorf(`want "]" after the quoted key`)
		}
		return Step{Key: key}, end + 2, nil
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return Step{}, 0, fmt.Errorf(`unterminated "["`)
	}
	digits := s[1:end]
	neg := strings.HasPrefix(digits, "-")
	abs := strings.TrimPrefix(digits, "-")
	if abs == "" || strings.Trim(abs, "0123456789") != "" || len(abs) > 1 && abs[0] == '0' || neg && abs == "0" {
		return Step{}, 0, fmt.Errorf(`index %q is not an integer (quote a key: [%q])`, digits, digits)
	}
	n, err := strconv.Atoi(abs)
	if err != nil || n > maxIndex {
		return Step{}, 0, fmt.Errorf("index %s is out of range", digits)
	}
	if neg {
		n = -n
	}
	return Step{Index: n, IsIndex: true}, end + 1, nil
}

// String writes p in its canonical form, which ParsePath reads back as p:
// plain keys where they can be, quoted keys and indexes in brackets.
func (p Path) String() string {
	var b strings.Builder
	for i, st := range p {
		switch {
		case st.IsIndex:
			b.WriteString("[" + strconv.Itoa(st.Index) + "]")
		case plainKey(st.Key):
			if i > 0 {
				b.WriteByte('.')
			}
			b.WriteString(st.Key)
		default:
			q, _ := json.Marshal(st.Key) // a string always encodes
			b.WriteString("[" + string(q) + "]")
		}
	}
	return b.String()
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !keyByte(k[i]) {
			return false
		}
	}
	return true
}

// Lookup returns the value at p in doc, a JSON document decoded into
// map[string]any, []any, string, json.Number, bool and nil values. It
// reports false when the path is absent: a missing key, an index past either
// end, or a step into a value of another kind (a key into an array, an index
// into an object, anything into a string).
func Lookup(doc any, p Path) (any, bool) {
	v := doc
	for _, st := range p {
		switch c := v.(type) {
		case map[string]any:
			if st.IsIndex {
				return nil, false
			}
			var ok bool
			if v, ok = c[st.Key]; !ok {
				return nil, false
			}
		case []any:
			if !st.IsIndex {
				return nil, false
			}
			i := st.Index
			if i < 0 {
				i += len(c)
			}
			if i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}
