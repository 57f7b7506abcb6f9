package jsonpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in    string
		want  Path
		canon string // String(); "" when it is in
	}{
		{in: "temp", want: Path{{Key: "temp"}}},
		{in: "main.temp", want: Path{{Key: "main"}, {Key: "temp"}}},
		{in: "sensors[2].value", want: Path{{Key: "sensors"}, {Index: 2, IsIndex: true}, {Key: "value"}}},
		{in: "[0]", want: Path{{Index: 0, IsIndex: true}}},
		{in: "[0][1]", want: Path{{Index: 0, IsIndex: true}, {Index: 1, IsIndex: true}}},
		{in: "list[-1]", want: Path{{Key: "list"}, {Index: -1, IsIndex: true}}},
		{in: `["a.b"].c`, want: Path{{Key: "a.b"}, {Key: "c"}}},
		{in: `x["a.b"]["c"]`, want: Path{{Key: "x"}, {Key: "a.b"}, {Key: "c"}}, canon: `x["a.b"].c`},
		{in: `[""]`, want: Path{{Key: ""}}},
		{in: `["\"[]\u00e9"]`, want: Path{{Key: `"[]é`}}, canon: `["\"[]é"]`},
		{in: "Außen Temp.°C", want: Path{{Key: "Außen Temp"}, {Key: "°C"}}},
		{in: "a-b.c_d.0", want: Path{{Key: "a-b"}, {Key: "c_d"}, {Key: "0"}}},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.in)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(p, tt.want) {
			t.Errorf("ParsePath(%q) = %#v, want %#v", tt.in, p, tt.want)
		}
		canon := tt.canon
		if canon == "" {
			canon = tt.in
		}
		if got := p.String(); got != canon {
			t.Errorf("ParsePath(%q).String() = %q, want %q", tt.in, got, canon)
		}
	}
}

func TestParsePathRefuses(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty path"},
		{".a", `want a key or "[" at byte 0`},
		{"a.", `want a key after "." at byte 2`},
		{"a..b", `want a key after "." at byte 2`},
		{"a.[0]", `want a key after "." at byte 2`},
		{"a[0]b", `want "." or "[" at byte 4`},
		{"a]", `unexpected "]" at byte 1`},
		{`a"b"`, `unexpected '"' at byte 1`},
		{"a[", `unterminated "[" at byte 1`},
		{"a[1", `unterminated "[" at byte 1`},
		{"a[]", `index "" is not an integer`},
		{"a[x]", `index "x" is not an integer (quote a key: ["x"])`},
		{"a[01]", `index "01" is not an integer`},
		{"a[-0]", `index "-0" is not an integer`},
		{"a[+1]", `index "+1" is not an integer`},
		{"a[ 1]", `index " 1" is not an integer`},
		{"a[99999999999]", "index 99999999999 is out of range at byte 1"},
		{`a["b]`, "unterminated quoted key at byte 1"},
		{`a["b"`, `want "]" after the quoted key at byte 1`},
		{`a["b"x]`, `want "]" after the quoted key at byte 1`},
		{`a["\x"]`, `quoted key "\x" is not a JSON string at byte 1`},
		{"a\xffb", "not valid UTF-8"},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePath(%q) = %v, %v; want an error with %q", tt.in, p, err, tt.want)
		}
	}
}

const body = `{"main":{"temp":21.5,"feels":null,"tags":["a","b"]},"sensors":[{"value":1},{"value":2},{"value":3.10}],"a.b":{"c":"dotted"},"name":"Küche ☕","big":12345678901234567890}`

func TestLookup(t *testing.T) {
	doc, err := decode([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want string // compact JSON; "" for absent
	}{
		{"main.temp", "21.5"},
		{"main.feels", "null"},
		{"main", `{"feels":null,"tags":["a","b"],"temp":21.5}`},
		{"main.tags", `["a","b"]`},
		{"main.tags[1]", `"b"`},
		{"main.tags[-1]", `"b"`},
		{"main.tags[-2]", `"a"`},
		{"sensors[2].value", "3.10"},
		{`["a.b"].c`, `"dotted"`},
		{"name", `"Küche ☕"`},
		{"big", "12345678901234567890"},
		{"main.tags[2]", ""},
		{"main.tags[-3]", ""},
		{"main.humidity", ""},
		{"main[0]", ""},         // an index into an object
		{"sensors.value", ""},   // a key into an array
		{"main.temp.value", ""}, // a key into a number
		{"name[0]", ""},         // an index into a string
		{"a.b.c", ""},           // "a.b" is one key: quote it
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.path)
		if err != nil {
			t.Fatal(err)
		}
		v, ok := Lookup(doc, p)
		if tt.want == "" {
			if ok {
				t.Errorf("Lookup(%s) = %v, want absent", tt.path, v)
			}
			continue
		}
		if !ok {
			t.Errorf("Lookup(%s): absent, want %s", tt.path, tt.want)
			continue
		}
		if got, _ := marshal(v); string(got) != tt.want {
			t.Errorf("Lookup(%s) = %s, want %s", tt.path, got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	c, err := New([]byte(`{"url":"https://api.example/v1?a=1","headers":{"Authorization":"Bearer x"},"on_change":true,
		"readings":[{"path":"main.temp","subject":"weather.temp","unit":"°C"},{"path":"sensors[2].value","subject":"weather.s2"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.onChange || len(c.readings) != 2 || c.readings[1].path.String() != "sensors[2].value" || c.readings[0].unit != "°C" {
		t.Errorf("New = %+v", c)
	}
	if want := map[string]string{"Authorization": "Bearer x", "Accept": "application/json"}; !reflect.DeepEqual(c.header, want) {
		t.Errorf("headers %v, want %v", c.header, want)
	}
	c, err = New([]byte(`{"url":"http://h/","headers":{"accept":"text/plain"},"readings":[{"path":"a","subject":"s"}]}`))
	if err != nil || !reflect.DeepEqual(c.header, map[string]string{"accept": "text/plain"}) {
		t.Errorf("an Accept header of the config: %v, %v", c, err)
	}
}

func TestNewRefuses(t *testing.T) {
	const ok = `"url":"http://h/s","readings":[{"path":"a","subject":"s.a"}]`
	tests := []struct{ config, want string }{
		{`{` + ok + `,"conformance_unknown_option":1}`, `unknown field "conformance_unknown_option"`},
		{`{` + ok + `,"URL":"x"}`, `keys are case-sensitive`},
		{`{"url":"http://h/s","readings":[{"path":"a","subject":"s.a","paht":"b"}]}`, `unknown field "paht"`},
		{`{` + ok + `,"on_change":"yes"}`, `on_change`},
		{`[]`, "want a JSON object"},
		{`{"readings":[{"path":"a","subject":"s"}]}`, "url: required"},
		{`{"url":"ftp://h/x","readings":[{"path":"a","subject":"s"}]}`, `url: want an absolute http:// or https:// URL, got "ftp://h/x"`},
		{`{"url":"/status","readings":[{"path":"a","subject":"s"}]}`, `url: want an absolute http:// or https:// URL`},
		{`{"url":"http:///x","readings":[{"path":"a","subject":"s"}]}`, `url: "http:///x" has no host`},
		{`{"url":"http://h x/","readings":[{"path":"a","subject":"s"}]}`, `url: "http://h x/": invalid character " " in host name`},
		{`{"url":"http://h/"}`, "readings: required"},
		{`{"url":"http://h/","readings":[]}`, "readings: required"},
		{`{"url":"http://h/","readings":[{"subject":"s"}]}`, "readings[0].path: required"},
		{`{"url":"http://h/","readings":[{"path":"a..b","subject":"s"}]}`, `readings[0].path "a..b": want a key after "." at byte 2`},
		{`{"url":"http://h/","readings":[{"path":"a"}]}`, "readings[0].subject: required"},
		{`{"url":"http://h/","readings":[{"path":"a","subject":"s..t"}]}`, `readings[0].subject: "s..t" has an empty token`},
		{`{"url":"http://h/","readings":[{"path":"a","subject":"s.*"}]}`, `readings[0].subject: "s.*": wildcards`},
		{`{"url":"http://h/","readings":[{"path":"a","subject":"s t"}]}`, `must not contain spaces`},
		{`{"url":"http://h/","readings":[{"path":"a","subject":"s"},{"path":"b","subject":"s"}]}`, `readings[1].subject: "s" is already the subject of readings[0]`},
		{`{` + ok + `,"headers":{"Host":"x"}}`, "headers.Host: not allowed"},
		{`{` + ok + `,"headers":{"Bad Name":"x"}}`, `headers: "Bad Name" is not a valid header name`},
		{`{` + ok + `,"headers":{"X-A":"a\r\nX-B: b"}}`, "headers.X-A: the value must not contain CR, LF or NUL"},
		{`{` + ok + `,"headers":{"X-A":"1","x-a":"2"}}`, `headers.x-a: given twice (also as "X-A")`},
		{`{` + ok + `,"headers":{"X-A":1}}`, `want string`},
		// every problem at once
		{`{"url":"ftp://h/","readings":[{"path":"[x]","subject":""}]}`, `config: url: want an absolute http:// or https:// URL, got "ftp://h/"; readings[0].path "[x]": index "x" is not an integer (quote a key: ["x"]) at byte 0; readings[0].subject: required`},
	}
	for _, tt := range tests {
		c, err := New([]byte(tt.config))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%s) = %v, %v; want an error with %q", tt.config, c, err, tt.want)
		}
	}
}

// memState is the instance's state in a map; full makes Set fail.
type memState struct {
	m    map[string][]byte
	full bool
}

func (s *memState) Get(key string) ([]byte, bool) { v, ok := s.m[key]; return v, ok }
func (s *memState) Set(key string, val []byte) error {
	if s.full {
		return errors.New("guest: state set: limit reached")
	}
	s.m[key] = bytes.Clone(val)
	return nil
}

// serve returns a Fetcher answering every GET with status and body, and
// recording the URL and headers it was given.
func serve(status int, body string, got *[]string) Fetcher {
	return func(url string, header map[string]string) (Response, error) {
		if got != nil {
			*got = append(*got, url+" "+fmt.Sprint(header))
		}
		return Response{Status: status, Body: []byte(body)}, nil
	}
}

func outputs(res Result) string {
	var b strings.Builder
	for _, r := range res.Readings {
		fmt.Fprintf(&b, "%s %s\n", r.Subject, r.Payload)
	}
	return b.String()
}

const weatherConfig = `{"url":"http://station.local/status","readings":[
	{"path":"main.temp","subject":"weather.temp","unit":"°C"},
	{"path":"sensors[2].value","subject":"weather.s2"},
	{"path":"main.tags","subject":"weather.tags"}]`

func TestCollect(t *testing.T) {
	tests := []struct {
		name, body string
		want       string
		absent     []string
	}{
		{"many", body, "weather.temp {\"value\":21.5,\"unit\":\"°C\"}\nweather.s2 {\"value\":3.10}\nweather.tags {\"value\":[\"a\",\"b\"]}\n", nil},
		{"one", `{"main":{"temp":-3}}`, "weather.temp {\"value\":-3,\"unit\":\"°C\"}\n", []string{"sensors[2].value", "main.tags"}},
		{"zero", `{"main":{}}`, "", []string{"main.temp", "sensors[2].value", "main.tags"}},
		{"a scalar body", `42`, "", []string{"main.temp", "sensors[2].value", "main.tags"}},
		{"unicode and null", `{"main":{"temp":"über 30 ☀","tags":null}}`, "weather.temp {\"value\":\"über 30 ☀\",\"unit\":\"°C\"}\nweather.tags {\"value\":null}\n", []string{"sensors[2].value"}},
		{"html characters", `{"main":{"temp":"<b>&</b>"}}`, "weather.temp {\"value\":\"<b>&</b>\",\"unit\":\"°C\"}\n", []string{"sensors[2].value", "main.tags"}},
		{"byte order mark", "\xef\xbb\xbf{\"main\":{\"temp\":1}}", "weather.temp {\"value\":1,\"unit\":\"°C\"}\n", []string{"sensors[2].value", "main.tags"}},
	}
	c, err := New([]byte(weatherConfig + "}"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			res, err := c.Collect(serve(200, tt.body, &got), &memState{m: map[string][]byte{}})
			if err != nil {
				t.Fatal(err)
			}
			if outputs(res) != tt.want {
				t.Errorf("outputs:\n%s\nwant:\n%s", outputs(res), tt.want)
			}
			if !reflect.DeepEqual(res.Absent, tt.absent) {
				t.Errorf("absent %q, want %q", res.Absent, tt.absent)
			}
			if want := []string{"http://station.local/status map[Accept:application/json]"}; !reflect.DeepEqual(got, want) {
				t.Errorf("fetched %q, want %q", got, want)
			}
		})
	}
}

func TestShownURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://station.local/status":                  "http://station.local/status",
		"https://api.example/v1?appid=secret&q=Oslo":   "https://api.example/v1?…",
		"http://user:secret@station.local:8080/s#frag": "http://user:xxxxx@station.local:8080/s",
		"http://station.local/s?":                      "http://station.local/s?…",
		"http://[::1]:8080/status":                     "http://[::1]:8080/status",
	} {
		if got := shownURL(in); got != want {
			t.Errorf("shownURL(%q) = %q, want %q", in, got, want)
		}
	}
	c, err := New([]byte(`{"url":"https://api.example/v1?appid=secret","readings":[{"path":"a","subject":"s"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	_, err = c.Collect(serve(401, "", &got), &memState{m: map[string][]byte{}})
	if err == nil || err.Error() != "GET https://api.example/v1?…: HTTP status 401" {
		t.Errorf("a 401: %v", err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "https://api.example/v1?appid=secret ") {
		t.Errorf("fetched %q, want the whole URL", got)
	}
}

func TestCollectErrors(t *testing.T) {
	c, err := New([]byte(weatherConfig + "}"))
	if err != nil {
		t.Fatal(err)
	}
	refused := func(string, map[string]string) (Response, error) {
		return Response{}, errors.New(`guest: http fetch: not allowed here: host "station.local" is not in the instance's http_fetch hosts`)
	}
	tests := []struct {
		name  string
		fetch Fetcher
		want  string
	}{
		{"refused", refused, `fetch http://station.local/status: not allowed here: host "station.local" is not in the instance's http_fetch hosts`},
		{"500", serve(500, "boom", nil), `GET http://station.local/status: HTTP status 500: body "boom"`},
		{"404 without a body", serve(404, "", nil), `GET http://station.local/status: HTTP status 404`},
		{"redirect", serve(304, "", nil), `HTTP status 304`},
		{"long body", serve(503, strings.Repeat("é", 40), nil), `HTTP status 503: body "` + strings.Repeat("é", 32) + `"…`},
		{"empty", serve(200, "", nil), "GET http://station.local/status: empty body, want JSON"},
		{"blank", serve(204, " \n", nil), "empty body, want JSON"},
		{"not JSON", serve(200, "temp=21.5", nil), `GET http://station.local/status: body is not JSON: invalid character 'e' in literal true (expecting 'r') (at byte 1): body "temp=21.5"`},
		{"cut short", serve(200, `{"main":{"temp":2`, nil), "body is not JSON: it ends after 17 bytes, in the middle of a value"},
		{"two values", serve(200, `{"a":1} {"b":2}`, nil), "body is not JSON: data after the value at byte 8"},
		{"trailing garbage", serve(200, `{"a":1}}`, nil), "body is not JSON: data after the value at byte 7"},
	}
	for _, tt := range tests {
		_, err := c.Collect(tt.fetch, &memState{m: map[string][]byte{}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error with %q", tt.name, err, tt.want)
		}
	}
}

func TestOnChange(t *testing.T) {
	c, err := New([]byte(weatherConfig + `,"on_change":true}`))
	if err != nil {
		t.Fatal(err)
	}
	st := &memState{m: map[string][]byte{}}
	steps := []struct{ body, want string }{
		{`{"main":{"temp":21.5,"tags":["a"]}}`, "weather.temp {\"value\":21.5,\"unit\":\"°C\"}\nweather.tags {\"value\":[\"a\"]}\n"},
		{`{"main":{"temp":21.5,"tags":["a"]}}`, ""},
		{`{"main":{"temp":21.6,"tags":["a"]}}`, "weather.temp {\"value\":21.6,\"unit\":\"°C\"}\n"},
		{`{"main":{"tags":["a"]}}`, ""},                                               // absent: nothing, and the last value is kept
		{`{"main":{"temp":21.6}}`, ""},                                                // back with the same value
		{`{"main":{"temp":21.5}}`, "weather.temp {\"value\":21.5,\"unit\":\"°C\"}\n"}, // changed back: a change
		{`{"main":{"tags":["a","b"]},"sensors":[0,0,{"value":{"y":1,"x":2}}]}`, "weather.s2 {\"value\":{\"x\":2,\"y\":1}}\nweather.tags {\"value\":[\"a\",\"b\"]}\n"},
		{`{"main":{},"sensors":[0,0,{"value":{"x":2, "y":1}}]}`, ""}, // the same object, keys in another order
	}
	for i, s := range steps {
		res, err := c.Collect(serve(200, s.body, nil), st)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if outputs(res) != s.want {
			t.Fatalf("step %d: outputs:\n%s\nwant:\n%s", i, outputs(res), s.want)
		}
		if err := c.Remember(st, res.Readings); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.m) != 3 || len(st.m[StateKey("weather.temp")]) == 0 {
		t.Errorf("state %q, want one hash per subject emitted", st.m)
	}

	// A value not remembered (the state is full, or the call failed before
	// Remember) is emitted again.
	st = &memState{m: map[string][]byte{}, full: true}
	for range 2 {
		res, err := c.Collect(serve(200, `{"main":{"temp":1}}`, nil), st)
		if err != nil || len(res.Readings) != 1 {
			t.Fatalf("with the state full: %v, %v", res, err)
		}
		if err := c.Remember(st, res.Readings); err == nil || !strings.Contains(err.Error(), "on_change: remember weather.temp: guest: state set: limit reached") {
			t.Errorf("Remember with the state full: %v", err)
		}
	}
}

func TestWithoutOnChangeNoState(t *testing.T) {
	c, err := New([]byte(weatherConfig + "}"))
	if err != nil {
		t.Fatal(err)
	}
	st := &memState{m: map[string][]byte{}}
	for range 2 {
		res, err := c.Collect(serve(200, body, nil), st)
		if err != nil || len(res.Readings) != 3 {
			t.Fatalf("Collect: %v, %v", res, err)
		}
		if err := c.Remember(st, res.Readings); err != nil {
			t.Fatal(err)
		}
	}
	if len(st.m) != 0 {
		t.Errorf("state %q, want none without on_change", st.m)
	}
}

// FuzzPath checks the path parser on any text: it never panics, and a path
// it accepts is written back by String in a form it parses to the same path
// (so the canonical form is a fixed point).
func FuzzPath(f *testing.F) {
	for _, s := range []string{"main.temp", "sensors[2].value", `["a.b"][-1]`, `x[""]`, "a..b", `["\u00e9\"]"]`, "[01]", "Außen.°C"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePath(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("ParsePath(%q): an empty error", s)
			}
			return
		}
		if len(p) == 0 {
			t.Fatalf("ParsePath(%q) accepted an empty path", s)
		}
		canon := p.String()
		q, err := ParsePath(canon)
		if err != nil {
			t.Fatalf("ParsePath(%q).String() = %q, which does not parse: %v", s, canon, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("ParsePath(%q) = %#v; its String %q parses to %#v", s, p, canon, q)
		}
		if q.String() != canon {
			t.Fatalf("String is not a fixed point: %q, then %q", canon, q.String())
		}
	})
}

// FuzzLookup checks the body decoder and Lookup on any body and path against
// a walk over json.RawMessage: a body decodes exactly when it is one valid
// JSON value, and a path finds the same value, or nothing, in both.
func FuzzLookup(f *testing.F) {
	f.Add(body, "main.temp")
	f.Add(body, "sensors[-1].value")
	f.Add(`[[1,2],[3]]`, "[0][1]")
	f.Add(`{"a.b":{"":true}}`, `["a.b"][""]`)
	f.Add(`{"a":1,"a":2}`, "a")
	f.Fuzz(func(t *testing.T, body, path string) {
		doc, err := decode([]byte(body))
		trimmed := bytes.TrimPrefix([]byte(body), []byte("\xef\xbb\xbf"))
		if valid := json.Valid(trimmed); (err == nil) != valid {
			t.Fatalf("decode(%q): %v, but json.Valid says %v", body, err, valid)
		}
		if err != nil {
			return
		}
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		v, ok := Lookup(doc, p)
		raw, rawOK := lookupRaw(trimmed, p)
		if ok != rawOK {
			t.Fatalf("Lookup(%q, %s) found %v, the raw walk %v", body, p, ok, rawOK)
		}
		if !ok {
			return
		}
		got, err := marshal(v)
		if err != nil {
			t.Fatalf("marshal(%#v): %v", v, err)
		}
		var a, b any
		if json.Unmarshal(got, &a) != nil || json.Unmarshal(raw, &b) != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("Lookup(%q, %s) = %s, the raw walk %s", body, p, got, raw)
		}
	})
}

// lookupRaw is Lookup done another way, for FuzzLookup.
func lookupRaw(raw json.RawMessage, p Path) (json.RawMessage, bool) {
	for _, st := range p {
		raw = bytes.TrimSpace(raw)
		switch {
		case len(raw) > 0 && raw[0] == '{' && !st.IsIndex:
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) != nil {
				return nil, false
			}
			v, ok := m[st.Key]
			if !ok {
				return nil, false
			}
			raw = v
		case len(raw) > 0 && raw[0] == '[' && st.IsIndex:
			var l []json.RawMessage
			if json.Unmarshal(raw, &l) != nil {
				return nil, false
			}
			i := st.Index
			if i < 0 {
				i += len(l)
			}
			if i < 0 || i >= len(l) {
				return nil, false
			}
			raw = l[i]
		default:
			return nil, false
		}
	}
	return raw, true
}
