package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type testBrokerConfig struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	TLS  *struct {
		Insecure bool `json:"insecure"`
	} `json:"tls"`
	Timeout duration `json:"timeout"`
}

// duration decodes a Go duration string, as plugin configs do.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

func TestDecodeConfig(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		want      testBrokerConfig
		wantErr   string
		wantField string
	}{
		{name: "full", raw: `{"host":"mqtt.lan","port":1883,"tls":{"insecure":true},"timeout":"5s"}`,
			want: testBrokerConfig{Host: "mqtt.lan", Port: 1883, Timeout: duration(5 * time.Second)}},
		{name: "white space around", raw: " \n{\"port\":1}\t\r\n ", want: testBrokerConfig{Host: "default", Port: 1}},
		{name: "empty means none", raw: "", want: testBrokerConfig{Host: "default"}},
		{name: "blank means none", raw: " \n ", want: testBrokerConfig{Host: "default"}},
		{name: "empty object", raw: "{}", want: testBrokerConfig{Host: "default"}},
		{name: "unknown field", raw: `{"host":"a","prot":1}`, wantErr: `config: unknown field "prot"`, wantField: "prot"},
		{name: "unknown nested field", raw: `{"tls":{"insecure":true,"verify":false}}`, wantErr: `unknown field "verify"`, wantField: "verify"},
		{name: "wrong type", raw: `{"port":"1883"}`, wantErr: `config: field "port": want int, got JSON string`, wantField: "port"},
		{name: "wrong nested type", raw: `{"tls":{"insecure":"yes"}}`, wantErr: `field "tls.insecure": want bool`, wantField: "tls.insecure"},
		{name: "field decoder error names the field", raw: `{"timeout":"5 parsecs"}`, wantErr: `config: field "timeout": time: unknown unit`, wantField: "timeout"},
		{name: "key in another case", raw: `{"HOST":"a"}`, wantErr: `config: unknown field "HOST": keys are case-sensitive, did you mean "host"?`, wantField: "HOST"},
		{name: "nested key in another case", raw: `{"tls":{"Insecure":true}}`, wantErr: `unknown field "tls.Insecure": keys are case-sensitive, did you mean "tls.insecure"?`, wantField: "tls.Insecure"},
		{name: "key given twice", raw: `{"port":1,"host":"a","port":2}`, wantErr: `config: field "port" is given twice`, wantField: "port"},
		{name: "nested key given twice", raw: `{"tls":{"insecure":true,"insecure":false}}`, wantErr: `field "tls.insecure" is given twice`, wantField: "tls.insecure"},
		{name: "trailing object", raw: `{"port":1}{"port":2}`, wantErr: "config: unexpected data after the object at byte 10"},
		{name: "trailing junk after space", raw: ` {"port":1} x`, wantErr: "unexpected data after the object at byte 11"},
		{name: "array", raw: `[1]`, wantErr: "config: want a JSON object"},
		{name: "null", raw: `null`, wantErr: "want a JSON object"},
		{name: "string", raw: `"x"`, wantErr: "want a JSON object"},
		{name: "truncated", raw: `{"port":1`, wantErr: "config: unexpected end of JSON"},
		{name: "syntax", raw: `  {"port":01}`, wantErr: "config: invalid JSON after 12 bytes: invalid character '1'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := testBrokerConfig{Host: "default"}
			err := DecodeConfig([]byte(tt.raw), &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeConfig(%s) error = %v, want one containing %q", tt.raw, err, tt.wantErr)
				}
				var cerr *ConfigError
				if !errors.As(err, &cerr) {
					t.Fatalf("error %T is not a *ConfigError", err)
				}
				if cerr.Field != tt.wantField {
					t.Errorf("Field = %q, want %q", cerr.Field, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatalf("DecodeConfig(%s): %v", tt.raw, err)
			}
			if got.TLS != nil {
				if !got.TLS.Insecure {
					t.Error("tls.insecure not decoded")
				}
				got.TLS = nil
			}
			if got != tt.want {
				t.Errorf("DecodeConfig(%s) = %+v, want %+v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestDecodeConfigBadTarget(t *testing.T) {
	var c testBrokerConfig
	err := DecodeConfig([]byte(`{}`), c)
	var cerr *ConfigError
	if err == nil || errors.As(err, &cerr) {
		t.Fatalf("DecodeConfig into a non-pointer: error %v, want a plain (non-ConfigError) error", err)
	}
}

func FuzzDecodeConfig(f *testing.F) {
	for _, s := range []string{`{}`, `{"host":"a","port":1}`, `{"tls":{"insecure":true}}`, `{"x":1}`, `[]`, `{"port":1} {}`, ` `, `{"timeout":"1s"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var c testBrokerConfig
		err := DecodeConfig(raw, &c)
		if err != nil {
			var cerr *ConfigError
			if !errors.As(err, &cerr) {
				t.Fatalf("DecodeConfig(%q) error %T is not a *ConfigError: %v", raw, err, err)
			}
			if !strings.HasPrefix(err.Error(), "config: ") {
				t.Fatalf("error %q lacks the config: prefix", err)
			}
			return
		}
		trimmed := strings.Trim(string(raw), " \t\r\n")
		if trimmed == "" {
			return
		}
		if !json.Valid(raw) || trimmed[0] != '{' {
			t.Fatalf("DecodeConfig accepted %q, which is not one JSON object", raw)
		}
	})
}

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{`{"every":"1m30s"}`, 90 * time.Second, ""},
		{`{"every":"20ms"}`, 20 * time.Millisecond, ""},
		{`{"every":30}`, 0, `want a duration such as "30s", "5m" or "1h30m", got 30`},
		{`{"every":"soon"}`, 0, `got "soon"`},
	} {
		var c struct {
			Every Duration `json:"every"`
		}
		err := DecodeConfig([]byte(tc.in), &c)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) || c.Every.Std() != tc.want {
			t.Errorf("%s: %v, %v; want %v, error %q", tc.in, c.Every.Std(), err, tc.want, tc.err)
		}
	}
	if b, _ := json.Marshal(Duration(90 * time.Second)); string(b) != `"1m30s"` {
		t.Errorf("marshal: %s", b)
	}
}

func TestLogger(t *testing.T) {
	if Logger(context.Background()) != slog.Default() {
		t.Error("Logger of a context without one is not slog.Default()")
	}
	log := slog.New(slog.DiscardHandler)
	if Logger(WithLogger(context.Background(), log)) != log {
		t.Error("Logger does not return the logger WithLogger set")
	}
}
