package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// ConfigError is the error DecodeConfig returns for a configuration it refuses.
type ConfigError struct {
	// Field is the dotted path of the offending field ("broker.port"), or "" when the error
	// is not about one field (invalid JSON, trailing data). For an unknown field inside a
	// nested object it is the field's own name.
	Field string
	// Msg says what is wrong, naming the field when there is one.
	Msg string

	err error // the decoder's error, when there is one worth unwrapping
}

func (e *ConfigError) Error() string { return "config: " + e.Msg }

// Unwrap returns the underlying decoder error, such as one from a field's UnmarshalJSON.
func (e *ConfigError) Unwrap() error { return e.err }

// jsonSpace is white space as JSON defines it.
const jsonSpace = " \t\r\n"

// DecodeConfig decodes raw, the JSON object of one plugin instance's settings, into into
// (a pointer, usually the value Info.New returned). It is strict: a field into does not
// have, a key in another case than the field's, a key given twice, a value of the wrong
// type, anything but an object at the top, and any data after the object are errors; those
// errors are *ConfigError, naming the field's dotted path when there is one (an error of a
// field's own UnmarshalJSON included). Empty or all-white-space raw means no settings and
// leaves into unchanged.
func DecodeConfig(raw []byte, into any) error {
	lead := len(raw) - len(bytes.TrimLeft(raw, jsonSpace))
	trimmed := bytes.TrimRight(raw[lead:], jsonSpace)
	if len(trimmed) == 0 {
		return nil
	}
	if trimmed[0] != '{' {
		return &ConfigError{Msg: "want a JSON object"}
	}
	if t := reflect.TypeOf(into); t != nil && t.Kind() == reflect.Pointer && json.Valid(trimmed) {
		if err := checkKeys(trimmed, t.Elem(), ""); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return configError(err, int64(lead))
	}
	if off := dec.InputOffset(); off < int64(len(trimmed)) {
		return &ConfigError{Msg: fmt.Sprintf("unexpected data after the object at byte %d", int64(lead)+off)}
	}
	return nil
}

// unknownFieldPrefix is how encoding/json words the error of DisallowUnknownFields; it has no
// error type of its own.
const unknownFieldPrefix = "json: unknown field "

// configError turns an error of encoding/json into a *ConfigError; lead is the offset in the
// caller's bytes of what the decoder saw.
func configError(err error, lead int64) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var invalid *json.InvalidUnmarshalError
	switch {
	case errors.As(err, &syntax):
		return &ConfigError{Msg: fmt.Sprintf("invalid JSON after %d bytes: %s", lead+syntax.Offset, syntax.Error()), err: err}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &ConfigError{Msg: fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value), err: err}
		}
		return &ConfigError{Field: typ.Field, Msg: fmt.Sprintf("field %q: want %s, got JSON %s", typ.Field, typ.Type, typ.Value), err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &ConfigError{Msg: "unexpected end of JSON", err: err}
	case errors.As(err, &invalid):
		// A programming error of the caller (into is not a non-nil pointer), not of the config.
		return fmt.Errorf("config: %w", err)
	case strings.HasPrefix(err.Error(), unknownFieldPrefix):
		quoted := strings.TrimPrefix(err.Error(), unknownFieldPrefix)
		name, uerr := strconv.Unquote(quoted)
		if uerr != nil {
			name = quoted
		}
		return &ConfigError{Field: name, Msg: fmt.Sprintf("unknown field %q", name)}
	default:
		// An error from a field's own UnmarshalJSON method.
		return &ConfigError{Msg: err.Error(), err: err}
	}
}
