package api

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzDecodeJSON: any body either decodes or yields an *Error with a 4xx
// status and a code; it never panics.
func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"id":"d1","labels":{"a":"b"}}`, `{"id":`, `[]`, `{"id":1}`, `{"x":1}`, `{} {}`, ``, `{"labels":{"a":{}}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v deviceCreate
		err := decodeJSON(body, &v)
		if err == nil {
			if !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
			return
		}
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status < 400 || apiErr.Status > 499 || apiErr.Code == "" {
			t.Fatalf("error %v is not a 4xx API error", err)
		}
	})
}
