package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// writeConfig writes content to a plugins.yaml in a fresh directory and
// returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "plugins.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustLoad loads src and fails the test on any error.
func mustLoad(t *testing.T, src Source) *Config {
	t.Helper()
	cfg, err := Load(src)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg
}

// problemLines loads src and returns its problems, one formatted line each;
// it fails the test when Load succeeds or returns another kind of error.
func problemLines(t *testing.T, src Source) []string {
	t.Helper()
	cfg, err := Load(src)
	if err == nil {
		t.Fatal("Load succeeded, want problems")
	}
	if cfg != nil {
		t.Errorf("Load returned a config along with an error")
	}
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Load error %T %q is not Problems", err, err)
	}
	return strings.Split(ps.Error(), "\n")
}

func assertLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadRootExample(t *testing.T) {
	const path = "../../plugins.yaml"
	cfg := mustLoad(t, Source{Path: path})
	// The tour's demo: one collector, two transforms, two junctions.
	var uses, junctions []string
	for _, p := range cfg.Plugins {
		uses = append(uses, p.ID+"="+p.Use)
		if p.Runtime != "wasm" || p.Module != filepath.Join("..", "..", "bin", "plugins", p.Use+".wasm") {
			t.Errorf("demo plugin %s: runtime %s module %s", p.ID, p.Runtime, p.Module)
		}
	}
	for _, j := range cfg.Junctions {
		junctions = append(junctions, fmt.Sprintf("%s:%s%v->%v", j.ID, j.Source, j.Transforms, j.Targets[0].Selector))
	}
	if got := strings.Join(uses, " "); got != "demo-sensors=collectors.synthetic to-fahrenheit=transforms.scale display-text=transforms.format" {
		t.Errorf("plugins.yaml demo plugins: %s", got)
	}
	if got := strings.Join(junctions, " "); got != "telemetry-to-displays:device.*.telemetry[]->map[role:display] demo-kitchen:demo.>[to-fahrenheit display-text]->map[role:display]" {
		t.Errorf("plugins.yaml demo junctions: %s", got)
	}
	if d := cfg.Devices; len(d) != 1 || d[0].ID != "display-1" || d[0].Tenant != "default" || d[0].Labels["role"] != "display" {
		t.Errorf("plugins.yaml devices: %+v, want the tour's display-1", cfg.Devices)
	}
	cfg.Plugins, cfg.Devices = nil, nil
	cfg.Junctions = nil
	if want := Default(); !reflect.DeepEqual(*cfg, want) {
		t.Errorf("plugins.yaml settings differ from Default():\n got %+v\nwant %+v", *cfg, want)
	}

	// Every key a newcomer can set is shown, with a comment.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseNodes(data)
	if err != nil {
		t.Fatal(err)
	}
	comments := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(prefix, k.Value)
			comments[p] = k.HeadComment != "" || k.LineComment != "" || v.LineComment != ""
			if v.Kind == yaml.MappingNode {
				walk(v, p)
			}
		}
	}
	walk(root, "")
	for _, p := range leafPaths(reflect.TypeFor[Config](), "") {
		commented, shown := comments[p]
		switch {
		case !shown:
			t.Errorf("plugins.yaml does not show %s", p)
		case !commented:
			t.Errorf("plugins.yaml has no comment for %s", p)
		}
	}
	for _, section := range []string{"# plugins:", "# junctions:"} {
		if !strings.Contains(string(data), section) {
			t.Errorf("plugins.yaml has no commented example %q", section)
		}
	}
}

func TestLoadGood(t *testing.T) {
	cfg := mustLoad(t, Source{Path: "testdata/good.yaml"})
	want := Default()
	want.Gateway = Gateway{
		Listen:            ":9080",
		Path:              "/ws/device",
		MaxConnections:    5000,
		MaxFrameSize:      1 << 20,
		SendQueue:         64,
		SendOverflow:      "disconnect",
		HeartbeatInterval: 15 * time.Second,
		HeartbeatTimeout:  45 * time.Second,
		HelloTimeout:      5 * time.Second,
		DrainTimeout:      20 * time.Second,
		LastSeenFlush:     2 * time.Second,
		TLS:               TLS{CertFile: "/etc/switchyard/cert.pem", KeyFile: "/etc/switchyard/key.pem"},
	}
	want.API = API{Listen: "[::1]:9081", MaxBodySize: 8 << 20, MaxModuleSize: 64 << 20}
	want.Store.Embedded.Path = "/var/lib/switchyard/switchyard.db"
	want.Log = Log{Level: "debug", Format: "json"}
	want.Plugins = []Plugin{
		{ID: "ha-bridge", Tenant: "default", Use: "collectors.mqtt", Runtime: "builtin", Config: map[string]any{
			"broker": "tcp://127.0.0.1:1883", "topics": []any{"sensors/#"}, "qos": 1, "200": "ok",
		}},
		// Module paths are relative to the file: testdata/good.yaml names plugins/scale.wasm.
		{ID: "to-celsius", Tenant: "default", Use: "transforms.scale", Runtime: "wasm", Module: "testdata/plugins/scale.wasm",
			Config: map[string]any{"factor": 0.5556, "offset": -17.78}},
		{ID: "hook", Tenant: "default", Use: "brokers.webhook", Runtime: "process", Module: "testdata/bin/webhook",
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Env: []string{"HTTPS_PROXY"}},
		{ID: "to-celsius", Tenant: "acme", Use: "transforms.scale", Runtime: "wasm", Module: "testdata/plugins/scale.wasm"},
	}
	for i := range want.Plugins {
		want.Plugins[i].Origin = OriginFile
	}
	want.Junctions = []Junction{
		{ID: "kitchen-temp", Tenant: "default", Source: "mqtt.sensors.*.temp", Transforms: []string{"to-celsius"},
			Targets: []Target{{Device: "kitchen-display"}, {Selector: map[string]string{"room": "kitchen"}}, {Broker: "hook"}}},
		{ID: "kitchen-temp", Tenant: "acme", Source: "device.>", Transforms: []string{"to-celsius"},
			Targets: []Target{{Selector: map[string]string{"floor": "2"}}}},
	}
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("got  %+v\nwant %+v", *cfg, want)
	}
}

func TestLoadBrokenFiles(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_keys.yaml", []string{
			`testdata/unknown_keys.yaml:3: log.colour: unknown key (expected one of: level, format)`,
			`testdata/unknown_keys.yaml:4: gatway: unknown key (expected one of: gateway, api, store, log, wasm, firmware, tenants, devices, plugins, junctions)`,
			`testdata/unknown_keys.yaml:8: store.embedded.paht: unknown key (expected one of: path)`,
			`testdata/unknown_keys.yaml:13: plugins[0].bogus: unknown key (expected one of: id, tenant, use, runtime, module, sha256, env, config, interval, limits, http_fetch)`,
			`testdata/unknown_keys.yaml:22: junctions[0].targets[0].colour: unknown key (expected one of: device, selector, broker)`,
			`testdata/unknown_keys.yaml:23: gateway.listen: unknown key (write nested keys as indented YAML sections, not as dotted names)`,
		}},
		{"wrong_types.yaml", []string{
			`testdata/wrong_types.yaml:2: gateway.max_connections: expected an integer, got string "lots"`,
			`testdata/wrong_types.yaml:3: gateway.max_frame_size: size "12XB" has unknown unit "XB" (use B, KiB, MiB, GiB or TiB)`,
			`testdata/wrong_types.yaml:4: gateway.heartbeat_interval: a duration needs a unit, e.g. "30s", "5m" or "1h30m"; got number 30`,
			`testdata/wrong_types.yaml:5: gateway.heartbeat_timeout: string "soon" is not a duration; write a Go duration such as "30s", "5m" or "1h30m"`,
			`testdata/wrong_types.yaml:6: gateway.listen: expected a string, got number 8080 (put it in quotes if it is meant as text)`,
			`testdata/wrong_types.yaml:7: gateway.send_queue: expected an integer, got number 1.5`,
			`testdata/wrong_types.yaml:8: gateway.hello_timeout: has no value; give one or remove the key to keep the default`,
			`testdata/wrong_types.yaml:10: api.max_body_size: a size must not be negative, got number -5`,
			`testdata/wrong_types.yaml:11: api.operator_key: expected a string, got a number (put it in quotes if it is meant as text)`,
			`testdata/wrong_types.yaml:12: log: expected a mapping with the keys level, format, got string "verbose"`,
			`testdata/wrong_types.yaml:17: plugins[0].config: expected a mapping of names to values, got a list`,
			`testdata/wrong_types.yaml:18: plugins[1]: expected a mapping with the keys id, tenant, use, runtime, module, sha256, env, config, interval, limits, http_fetch, got string "just a string"`,
			`testdata/wrong_types.yaml:19: junctions: expected a list, got a mapping`,
		}},
		{"bad_values.yaml", []string{
			`testdata/bad_values.yaml:2: gateway.listen: "localhost" is not a host:port address such as "0.0.0.0:8080" or ":8080"`,
			`testdata/bad_values.yaml:3: gateway.path: "ws" must start with "/"`,
			`testdata/bad_values.yaml:4: gateway.max_connections: must be at least 1, got 0`,
			`testdata/bad_values.yaml:5: gateway.max_frame_size: must be between 1KiB and 16MiB, got 32MiB`,
			`testdata/bad_values.yaml:6: gateway.send_queue: must be at least 1, got 0`,
			`testdata/bad_values.yaml:7: gateway.send_overflow: "block" must be drop_oldest, drop_newest or disconnect`,
			`testdata/bad_values.yaml:9: gateway.heartbeat_timeout: must be longer than gateway.heartbeat_interval (1m0s), got 30s`,
			`testdata/bad_values.yaml:10: gateway.hello_timeout: must be a positive duration, got 0s`,
			`testdata/bad_values.yaml:11: gateway.drain_timeout: must be a positive duration, got -1s`,
			// key_file is not in the file: the line is that of its section.
			`testdata/bad_values.yaml:12: gateway.tls.key_file: is required when gateway.tls.cert_file is set`,
			`testdata/bad_values.yaml:15: api.listen: "127.0.0.1:99999": port "99999" must be a number from 0 to 65535`,
			`testdata/bad_values.yaml:16: api.operator_key: must be at least 24 characters long`,
			`testdata/bad_values.yaml:17: api.max_body_size: must be at least 1KiB, got 512B`,
			`testdata/bad_values.yaml:19: store.backend: "mongo" is not a store backend (embedded or dgraph)`,
			`testdata/bad_values.yaml:21: log.level: "verbose" must be one of debug, info, warn, error`,
			`testdata/bad_values.yaml:22: log.format: "xml" must be text or json`,
		}},
		{"bad_records.yaml", []string{
			`testdata/bad_records.yaml:5: plugins[1].id: "mqtt" is already declared in tenant "default" by plugins[0]`,
			`testdata/bad_records.yaml:8: plugins[2].id: "Upper" must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit`,
			`testdata/bad_records.yaml:8: plugins[2].module: is required for runtime wasm`,
			`testdata/bad_records.yaml:11: plugins[3].sha256: is required for runtime process: the hex sha256 of the binary at module (sha256sum prints it)`,
			`testdata/bad_records.yaml:17: plugins[4].use: "webhook" must be kind.name with kind collectors, transforms or brokers`,
			`testdata/bad_records.yaml:21: plugins[5].runtime: "docker" must be builtin, process or wasm`,
			`testdata/bad_records.yaml:25: plugins[6].module: must be empty for runtime builtin: built-in plugins are compiled in`,
			`testdata/bad_records.yaml:27: plugins[7].tenant: "Big Corp" must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit`,
			`testdata/bad_records.yaml:33: junctions[0].transforms[0]: "scale" is not a plugin declared in tenant "default"`,
			`testdata/bad_records.yaml:33: junctions[0].transforms[1]: "mqtt" is a collectors plugin (plugins[0]); only transforms plugins can be used here`,
			`testdata/bad_records.yaml:33: junctions[0].transforms[2]: "missing" is not a plugin declared in tenant "default"`,
			`testdata/bad_records.yaml:35: junctions[0].targets[0].broker: "mqtt" is a collectors plugin (plugins[0]); only brokers plugins can be used here`,
			`testdata/bad_records.yaml:36: junctions[0].targets[1]: exactly one of device, selector or broker must be set`,
			`testdata/bad_records.yaml:38: junctions[1].id: "j1" is already declared in tenant "default" by junctions[0]`,
			`testdata/bad_records.yaml:39: junctions[1].source: "a..b" has an empty token`,
			`testdata/bad_records.yaml:40: junctions[1].targets: at least one target is required`,
			`testdata/bad_records.yaml:46: junctions[2].targets[0].selector: must name at least one label`,
			`testdata/bad_records.yaml:47: junctions[3].id: is required`,
		}},
		{"not_yaml.yaml", []string{
			`testdata/not_yaml.yaml:1: not valid YAML: did not find expected key`,
		}},
		{"duplicate_key.yaml", []string{
			`testdata/duplicate_key.yaml:3: not valid YAML: mapping key "listen" already defined at line 2`,
		}},
		{"list_root.yaml", []string{
			`testdata/list_root.yaml:1: expected a mapping of sections (gateway, api, store, log, wasm, firmware, tenants, devices, plugins, junctions)`,
		}},
		{"two_documents.yaml", []string{
			`testdata/two_documents.yaml:3: not valid YAML: a second YAML document starts here; the file must hold one`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			assertLines(t, problemLines(t, Source{Path: filepath.Join("testdata", tt.file)}), tt.want)
		})
	}
}

func TestLoadNotYAML(t *testing.T) {
	tests := []struct {
		name, content string
		want          []string
	}{
		{"binary", "\x00\x01\x02gateway", []string{
			`plugins.yaml: not valid YAML: control characters are not allowed`,
		}},
		{"tab indentation", "gateway:\n\tlisten: \":1\"\n", []string{
			`plugins.yaml:2: not valid YAML: found character that cannot start any token`,
			`plugins.yaml:2: indented with a tab; YAML indentation must use spaces`,
		}},
		{"tab indentation without a line", "\tgateway: {}\n", []string{
			`plugins.yaml:1: indented with a tab; YAML indentation must use spaces`,
			`plugins.yaml: not valid YAML: found character that cannot start any token`,
		}},
		// The YAML parser names the line where the unclosed list's block starts.
		{"unclosed list", "log:\n  level: [info\n", []string{
			`plugins.yaml:1: not valid YAML: did not find expected ',' or ']'`,
		}},
		{"scalar", "just words\n", []string{
			`plugins.yaml:1: expected a mapping of sections (gateway, api, store, log, wasm, firmware, tenants, devices, plugins, junctions)`,
		}},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" +
			"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n" +
			"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n" +
			"g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n", []string{
			`plugins.yaml: not valid YAML: document contains excessive aliasing`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "plugins.yaml")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			got := problemLines(t, Source{Path: path})
			for i := range got {
				got[i] = strings.TrimPrefix(got[i], dir+string(filepath.Separator))
			}
			assertLines(t, got, tt.want)
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope", "plugins.yaml")
	cfg, err := Load(Source{Path: path})
	if cfg != nil || err == nil {
		t.Fatalf("Load(missing) = %v, %v; want an error", cfg, err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %q does not wrap fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestLoadEmpty(t *testing.T) {
	tests := []struct{ name, content string }{
		{"empty file", ""},
		{"comments only", "# nothing set yet\n\n"},
		{"explicit null", "~\n"},
		{"empty document", "---\n"},
		{"empty sections", "gateway:\napi: {}\nplugins:\njunctions: []\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustLoad(t, Source{Path: writeConfig(t, tt.content)})
			if !reflect.DeepEqual(*cfg, Default()) {
				t.Errorf("got %+v, want the defaults", *cfg)
			}
		})
	}
	t.Run("no file", func(t *testing.T) {
		cfg := mustLoad(t, Source{})
		if !reflect.DeepEqual(*cfg, Default()) {
			t.Errorf("got %+v, want the defaults", *cfg)
		}
	})
}

func TestLoadEnvironment(t *testing.T) {
	key := strings.Repeat("k", 32)
	environ := []string{
		"PATH=/usr/bin",
		"SWITCHYARD_GATEWAY__MAX_CONNECTIONS=5000",
		"SWITCHYARD_GATEWAY__HEARTBEAT_INTERVAL=10s",
		"SWITCHYARD_GATEWAY__MAX_FRAME_SIZE=1MiB",
		"SWITCHYARD_GATEWAY__TLS__CERT_FILE=/c.pem",
		"SWITCHYARD_GATEWAY__TLS__KEY_FILE=/k.pem",
		"SWITCHYARD_API__OPERATOR_KEY=" + key,
		"SWITCHYARD_STORE__EMBEDDED__PATH=/var/lib/s.db",
		"SWITCHYARD_log__level=debug",
		// Not a configuration key, but read into Config.EncryptionKey.
		"SWITCHYARD_ENCRYPTION_KEY=" + strings.Repeat("ab", 32),
		"NOT_SWITCHYARD_GATEWAY__LISTEN=ignored",
	}
	cfg := mustLoad(t, Source{Environ: environ})
	want := Default()
	want.Gateway.MaxConnections = 5000
	want.Gateway.HeartbeatInterval = 10 * time.Second
	want.Gateway.MaxFrameSize = 1 << 20
	want.Gateway.TLS = TLS{CertFile: "/c.pem", KeyFile: "/k.pem"}
	want.API.OperatorKey = key
	want.Store.Embedded.Path = "/var/lib/s.db"
	want.EncryptionKey = bytes.Repeat([]byte{0xab}, 32)
	want.Log.Level = "debug"
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("got  %+v\nwant %+v", *cfg, want)
	}
}

func TestLoadEnvironmentProblems(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    []string
	}{
		{"single underscore", []string{"SWITCHYARD_GATEWAY_MAX_CONNECTIONS=5"}, []string{
			`env SWITCHYARD_GATEWAY_MAX_CONNECTIONS: gateway_max_connections: unknown key; did you mean SWITCHYARD_GATEWAY__MAX_CONNECTIONS?`,
		}},
		{"typo", []string{"SWITCHYARD_GATEWAYS__LISTEN=:1"}, []string{
			`env SWITCHYARD_GATEWAYS__LISTEN: gateways.listen: unknown key`,
		}},
		{"below a value", []string{"SWITCHYARD_GATEWAY__LISTEN__PORT=1"}, []string{
			`env SWITCHYARD_GATEWAY__LISTEN__PORT: gateway.listen.port: unknown key`,
		}},
		{"list", []string{"SWITCHYARD_PLUGINS=[]", "SWITCHYARD_JUNCTIONS__0__ID=x"}, []string{
			`env SWITCHYARD_JUNCTIONS__0__ID: junctions.0.id: unknown key`,
			`env SWITCHYARD_PLUGINS: plugins: is a list or mapping; it can only be declared in the configuration file`,
		}},
		{"section", []string{"SWITCHYARD_GATEWAY__TLS=on"}, []string{
			`env SWITCHYARD_GATEWAY__TLS: gateway.tls: is a section, not a value; set one of its keys: cert_file, key_file`,
		}},
		{"bad name", []string{"SWITCHYARD_GATEWAY-LISTEN=:1", "SWITCHYARD_=x"}, []string{
			`env SWITCHYARD_: is not a configuration variable: after SWITCHYARD_ come key names of letters, digits and '_', with '__' between levels`,
			`env SWITCHYARD_GATEWAY-LISTEN: is not a configuration variable: after SWITCHYARD_ come key names of letters, digits and '_', with '__' between levels`,
		}},
		{"wrong types", []string{
			"SWITCHYARD_GATEWAY__MAX_CONNECTIONS=lots",
			"SWITCHYARD_GATEWAY__HEARTBEAT_TIMEOUT=90",
			"SWITCHYARD_GATEWAY__SEND_QUEUE=99999999999999999999",
			"SWITCHYARD_API__MAX_BODY_SIZE=1.5MiB",
		}, []string{
			`env SWITCHYARD_API__MAX_BODY_SIZE: api.max_body_size: size "1.5MiB" must be a whole number; use a smaller unit`,
			`env SWITCHYARD_GATEWAY__HEARTBEAT_TIMEOUT: gateway.heartbeat_timeout: a duration needs a unit, e.g. "30s", "5m" or "1h30m"; got string "90"`,
			`env SWITCHYARD_GATEWAY__MAX_CONNECTIONS: gateway.max_connections: expected an integer, got string "lots"`,
			`env SWITCHYARD_GATEWAY__SEND_QUEUE: gateway.send_queue: string "99999999999999999999" is out of range`,
		}},
		{"invalid values", []string{
			"SWITCHYARD_API__OPERATOR_KEY=hunter2",
			"SWITCHYARD_GATEWAY__HEARTBEAT_TIMEOUT=5s",
		}, []string{
			`env SWITCHYARD_API__OPERATOR_KEY: api.operator_key: must be at least 24 characters long`,
			`env SWITCHYARD_GATEWAY__HEARTBEAT_TIMEOUT: gateway.heartbeat_timeout: must be longer than gateway.heartbeat_interval (30s), got 5s`,
		}},
		{"dgraph without its secrets", []string{
			"SWITCHYARD_STORE__BACKEND=dgraph",
			"SWITCHYARD_STORE__DGRAPH__HTTP=alpha-1:8080",
		}, []string{
			`env SWITCHYARD_STORE__DGRAPH__HTTP: store.dgraph.http: "alpha-1:8080" must be an http:// or https:// URL of an alpha (e.g. http://127.0.0.1:8080)`,
			`store.dgraph.password: is required: set SWITCHYARD_STORE__DGRAPH__PASSWORD to the galaxy guardian's password`,
			`encryption_key: the dgraph store seals tenant credentials: set SWITCHYARD_ENCRYPTION_KEY (generate one with: openssl rand -base64 32)`,
		}},
		{"encryption key of the wrong size", []string{
			"SWITCHYARD_ENCRYPTION_KEY=c2hvcnQ=",
		}, []string{
			`env SWITCHYARD_ENCRYPTION_KEY: decodes to 5 bytes, want 32 (generate one with: openssl rand -base64 32)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assertLines(t, problemLines(t, Source{Environ: tt.environ}), tt.want)
		})
	}
}

func TestLoadOverrides(t *testing.T) {
	cfg := mustLoad(t, Source{Overrides: map[string]string{
		"gateway.listen":          ":9000",
		"gateway.max_frame_size":  "4096",
		"gateway.hello_timeout":   "3s",
		"gateway.max_connections": "7",
	}})
	want := Default()
	want.Gateway.Listen = ":9000"
	want.Gateway.MaxFrameSize = 4096
	want.Gateway.HelloTimeout = 3 * time.Second
	want.Gateway.MaxConnections = 7
	if !reflect.DeepEqual(*cfg, want) {
		t.Errorf("got  %+v\nwant %+v", *cfg, want)
	}

	got := problemLines(t, Source{Overrides: map[string]string{
		"gateway.bogus":  "1",
		"plugins":        "x",
		"gateway.listen": "nowhere",
		"log.level":      "loud",
	}})
	assertLines(t, got, []string{
		`flags: gateway.bogus: unknown key`,
		`flags: plugins: is a list or mapping; it can only be declared in the configuration file`,
		`flags: gateway.listen: "nowhere" is not a host:port address such as "0.0.0.0:8080" or ":8080"`,
		`flags: log.level: "loud" must be one of debug, info, warn, error`,
	})
}

func TestLoadPrecedence(t *testing.T) {
	path := writeConfig(t, `gateway:
  listen: ":7000"
  max_connections: 100
  send_queue: 10
  hello_timeout: 1s
`)
	cfg := mustLoad(t, Source{
		Path: path,
		Environ: []string{
			"SWITCHYARD_GATEWAY__MAX_CONNECTIONS=200",
			"SWITCHYARD_GATEWAY__SEND_QUEUE=20",
			"SWITCHYARD_GATEWAY__HELLO_TIMEOUT=2s",
		},
		Overrides: map[string]string{"gateway.send_queue": "30"},
	})
	tests := []struct {
		key       string
		got, want any
	}{
		{"gateway.path (default)", cfg.Gateway.Path, "/ws/device"},
		{"gateway.listen (file)", cfg.Gateway.Listen, ":7000"},
		{"gateway.max_connections (env over file)", cfg.Gateway.MaxConnections, 200},
		{"gateway.hello_timeout (env over file)", cfg.Gateway.HelloTimeout, 2 * time.Second},
		{"gateway.send_queue (flag over env over file)", cfg.Gateway.SendQueue, 30},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.key, tt.got, tt.want)
		}
	}
}

// A problem names the source that set the offending value last.
func TestLoadProblemSource(t *testing.T) {
	path := writeConfig(t, `# gateway settings
gateway:
  heartbeat_interval: 2m
  max_connections: 0
  send_queue: lots
log:
  level: loud
`)
	got := problemLines(t, Source{
		Path:      path,
		Environ:   []string{"SWITCHYARD_GATEWAY__MAX_CONNECTIONS=-1", "SWITCHYARD_LOG__FORMAT=xml"},
		Overrides: map[string]string{"gateway.send_queue": "0"},
	})
	assertLines(t, got, []string{
		// heartbeat_timeout keeps its default: the line is its section's.
		path + `:2: gateway.heartbeat_timeout: must be longer than gateway.heartbeat_interval (2m0s), got 1m30s`,
		// The file's value does not decode, though a flag overrides it.
		path + `:5: gateway.send_queue: expected an integer, got string "lots"`,
		path + `:7: log.level: "loud" must be one of debug, info, warn, error`,
		`env SWITCHYARD_GATEWAY__MAX_CONNECTIONS: gateway.max_connections: must be at least 1, got -1`,
		`env SWITCHYARD_LOG__FORMAT: log.format: "xml" must be text or json`,
		`flags: gateway.send_queue: must be at least 1, got 0`,
	})
}

func TestLoadSecretNeverShown(t *testing.T) {
	const secret = "987654321987654321"
	tests := []struct {
		name string
		src  Source
	}{
		{"file number", Source{Path: writeConfig(t, "api:\n  operator_key: "+secret+"\n")}},
		{"file list", Source{Path: writeConfig(t, "api:\n  operator_key: ["+secret+"]\n")}},
		{"env short", Source{Environ: []string{"SWITCHYARD_API__OPERATOR_KEY=" + secret}}},
		{"flag short", Source{Overrides: map[string]string{"api.operator_key": secret}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemLines(t, tt.src)
			if len(got) != 1 || !strings.Contains(got[0], "api.operator_key") {
				t.Fatalf("problems %q, want one about api.operator_key", got)
			}
			if strings.Contains(got[0], secret) {
				t.Errorf("problem %q shows the key", got[0])
			}
		})
	}
}

// Load is pure: the same sources give the same result, and loading does not
// change what it was given.
func TestLoadAgain(t *testing.T) {
	src := Source{
		Path:      "testdata/good.yaml",
		Environ:   []string{"SWITCHYARD_GATEWAY__SEND_QUEUE=5"},
		Overrides: map[string]string{"log.level": "warn"},
	}
	first := mustLoad(t, src)
	first.Plugins[0].Config["broker"] = "changed"
	second := mustLoad(t, src)
	if second.Plugins[0].Config["broker"] != "tcp://127.0.0.1:1883" || second.Gateway.SendQueue != 5 || second.Log.Level != "warn" {
		t.Errorf("second load differs: %+v", second)
	}
	if len(src.Overrides) != 1 || len(src.Environ) != 1 {
		t.Errorf("Load changed its source: %+v", src)
	}
}
