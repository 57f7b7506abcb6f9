package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLiveOnlyChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // every problem, "path: message"
	}{
		{"nothing", func(*Config) {}, nil},
		{"live sections only", func(c *Config) {
			c.Tenants = []Tenant{{ID: "acme"}}
			c.Devices = []Device{{ID: "d1", Labels: map[string]string{"room": "hall"}}}
			c.Plugins = []Plugin{{ID: "p", Use: "transforms.scale", Runtime: "builtin"}}
			c.Junctions = []Junction{{ID: "j", Source: "device.>"}}
		}, nil},
		{"a listener", func(c *Config) { c.Gateway.Listen = "127.0.0.1:9000" }, []string{
			`gateway.listen: cannot change while Switchyard runs (was "0.0.0.0:8080", now "127.0.0.1:9000"); restart to apply it`,
		}},
		{"numbers, durations, sizes and switches", func(c *Config) {
			c.Gateway.MaxConnections = 100
			c.Gateway.MaxFrameSize = 1 << 20
			c.Gateway.HeartbeatTimeout = 2 * time.Minute
			c.API.Pprof = true
		}, []string{
			`gateway.max_connections: cannot change while Switchyard runs (was 19000, now 100); restart to apply it`,
			`gateway.max_frame_size: cannot change while Switchyard runs (was 64KiB, now 1MiB); restart to apply it`,
			`gateway.heartbeat_timeout: cannot change while Switchyard runs (was 1m30s, now 2m0s); restart to apply it`,
			`api.pprof: cannot change while Switchyard runs (was false, now true); restart to apply it`,
		}},
		{"a list, as a whole", func(c *Config) { c.Store.Dgraph.Addresses = []string{"10.0.0.1:9080", "10.0.0.2:9080"} }, []string{
			`store.dgraph.addresses: cannot change while Switchyard runs (was ["127.0.0.1:9180"], now ["10.0.0.1:9080", "10.0.0.2:9080"]); restart to apply it`,
		}},
		{"secrets", func(c *Config) {
			c.API.OperatorKey = "a-very-secret-operator-key-0123"
			c.Store.Dgraph.Password = "hunter2"
			c.EncryptionKey = make([]byte, EncryptionKeySize)
		}, []string{
			`api.operator_key: cannot change while Switchyard runs (the value changed); restart to apply it`,
			`store.dgraph.password: cannot change while Switchyard runs (the value changed); restart to apply it`,
			`SWITCHYARD_ENCRYPTION_KEY: cannot change while Switchyard runs (the value changed); restart to apply it`,
		}},
		{"in key order, beside live changes", func(c *Config) {
			c.WASM.CacheDir = "/var/cache/switchyard"
			c.Plugins = []Plugin{{ID: "p"}}
			c.Log.Level = "debug"
			c.Store.Embedded.Path = "/data/s.db"
			c.Gateway.TLS.CertFile = "cert.pem"
		}, []string{
			`gateway.tls.cert_file: cannot change while Switchyard runs (was "", now "cert.pem"); restart to apply it`,
			`store.embedded.path: cannot change while Switchyard runs (was "data/switchyard.db", now "/data/s.db"); restart to apply it`,
			`log.level: cannot change while Switchyard runs (was "info", now "debug"); restart to apply it`,
			`wasm.cache_dir: cannot change while Switchyard runs (was "", now "/var/cache/switchyard"); restart to apply it`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, cur := Default(), Default()
			tt.change(&cur)
			ps := LiveOnlyChanges(&old, &cur)
			if tt.want == nil {
				if ps != nil {
					t.Fatalf("LiveOnlyChanges = %v, want nil", ps)
				}
				return
			}
			assertLines(t, strings.Split(ps.Error(), "\n"), tt.want)
			for _, p := range ps {
				if p.Source != "" || p.Line != 0 {
					t.Errorf("a source or line: %+v", p)
				}
			}
		})
	}
}

// Every key outside the live sections is fixed, a key added later included:
// changing any one of them is reported at its path, and a secret's values
// never appear.
func TestLiveOnlyChangesCoversEveryKey(t *testing.T) {
	live := []string{"tenants", "devices", "plugins", "junctions"}
	type key struct {
		path   string
		field  []int // index of the field in Config
		secret bool
	}
	var keys []key
	var walk func(typ reflect.Type, path string, index []int, secret bool)
	walk = func(typ reflect.Type, path string, index []int, secret bool) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			k := keyOf(f)
			if path == "" && slices.Contains(live, k) {
				continue
			}
			idx := append(slices.Clone(index), i)
			switch {
			case k == "" && f.Name == "EncryptionKey" && path == "":
				keys = append(keys, key{EnvEncryptionKey, idx, true})
			case k == "":
				t.Errorf("Config field %s is not a key: decide whether it may change while Switchyard runs, in LiveOnlyChanges and here", f.Name)
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, joinPath(path, k), idx, secret || isSecret(f))
			default:
				keys = append(keys, key{joinPath(path, k), idx, secret || isSecret(f)})
			}
		}
	}
	walk(reflect.TypeFor[Config](), "", nil, false)

	// Every value key the environment may set is among them.
	for _, p := range leafPaths(reflect.TypeFor[Config](), "") {
		top, _, _ := strings.Cut(p, ".")
		if !slices.Contains(live, top) && !slices.ContainsFunc(keys, func(k key) bool { return k.path == p }) {
			t.Errorf("%s is not walked", p)
		}
	}

	const secretText = "s3cret-value-not-to-be-shown"
	for _, k := range keys {
		old, cur := Default(), Default()
		v := reflect.ValueOf(&cur).Elem().FieldByIndex(k.field)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + secretText)
		case reflect.Bool:
			v.SetBool(!v.Bool())
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Float64:
			v.SetFloat(v.Float() + 1)
		case reflect.Slice:
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		case reflect.Map:
			m := reflect.MakeMap(v.Type())
			m.SetMapIndex(reflect.Zero(v.Type().Key()), reflect.Zero(v.Type().Elem()))
			v.Set(m)
		default:
			t.Fatalf("%s: cannot change a %s: teach this test", k.path, v.Type())
		}
		ps := LiveOnlyChanges(&old, &cur)
		if len(ps) != 1 || ps[0].Path != k.path {
			t.Errorf("changing %s: %v", k.path, ps)
			continue
		}
		if k.secret && ps[0].Message != "cannot change while Switchyard runs (the value changed); restart to apply it" {
			t.Errorf("secret %s shown: %s", k.path, ps[0].Message)
		}
		if !k.secret && !strings.Contains(ps[0].Message, ", now ") {
			t.Errorf("%s: the values are not shown: %s", k.path, ps[0].Message)
		}
	}
	if len(keys) < 30 {
		t.Fatalf("only %d keys walked", len(keys))
	}
}
