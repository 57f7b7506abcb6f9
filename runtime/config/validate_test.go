package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
)

func TestValidateDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string // every problem, "path: message"; none for a valid config
	}{
		{"listen on every interface", func(c *Config) { c.Gateway.Listen = ":8080" }, nil},
		{"listen on a host name", func(c *Config) { c.API.Listen = "localhost:8081" }, nil},
		{"listen on IPv6", func(c *Config) { c.Gateway.Listen = "[::]:8080" }, nil},
		{"listen on IPv6 with zone", func(c *Config) { c.API.Listen = "[fe80::1%eth0]:8081" }, nil},
		{"listen on free ports", func(c *Config) { c.Gateway.Listen, c.API.Listen = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"listen on one port, two hosts", func(c *Config) { c.Gateway.Listen, c.API.Listen = "10.0.0.1:80", "127.0.0.1:80" }, nil},
		{"listen addresses", func(c *Config) {
			c.Gateway.Listen = "::1:80"
			c.API.Listen = "example.com:http"
		}, []string{
			`gateway.listen: "::1:80" is not a host:port address such as "0.0.0.0:8080" or ":8080"`,
			`api.listen: "example.com:http": port "http" must be a number from 0 to 65535`,
		}},
		{"listen without port or host", func(c *Config) {
			c.Gateway.Listen = "10.0.0.1:"
			c.API.Listen = "bad host!:80"
		}, []string{
			`gateway.listen: "10.0.0.1:" is not a host:port address such as "0.0.0.0:8080" or ":8080"`,
			`api.listen: "bad host!:80": "bad host!" is not an IP address or host name`,
		}},
		{"listen bracketed", func(c *Config) {
			c.Gateway.Listen = "[::1:80"
			c.API.Listen = "[localhost]:80"
		}, []string{
			`gateway.listen: "[::1:80" is not a host:port address such as "0.0.0.0:8080" or ":8080"`,
			`api.listen: "[localhost]:80" is not a host:port address such as "0.0.0.0:8080" or ":8080"`,
		}},
		{"api on the gateway's port", func(c *Config) { c.Gateway.Listen, c.API.Listen = ":8080", "127.0.0.1:8080" }, []string{
			`api.listen: "127.0.0.1:8080" uses the port of gateway.listen (":8080"); give each listener its own port`,
		}},
		{"path with a query", func(c *Config) { c.Gateway.Path = "/ws?x=1" }, []string{
			`gateway.path: "/ws?x=1" must be a plain URL path (no query, fragment or white space)`,
		}},
		{"frame size bounds", func(c *Config) { c.Gateway.MaxFrameSize = maxFrameSize }, nil},
		{"frame size too small", func(c *Config) { c.Gateway.MaxFrameSize = 1023 }, []string{
			`gateway.max_frame_size: must be between 1KiB and 16MiB, got 1023B`,
		}},
		{"heartbeats", func(c *Config) { c.Gateway.HeartbeatInterval, c.Gateway.HeartbeatTimeout = 0, 0 }, []string{
			`gateway.heartbeat_interval: must be a positive duration, got 0s`,
		}},
		{"equal heartbeats", func(c *Config) { c.Gateway.HeartbeatTimeout = c.Gateway.HeartbeatInterval }, []string{
			`gateway.heartbeat_timeout: must be longer than gateway.heartbeat_interval (30s), got 30s`,
		}},
		{"last seen flush", func(c *Config) { c.Gateway.LastSeenFlush = 0 }, []string{
			`gateway.last_seen_flush: must be a positive duration, got 0s`,
		}},
		{"tls key without cert", func(c *Config) { c.Gateway.TLS.KeyFile = "k.pem" }, []string{
			`gateway.tls.cert_file: is required when gateway.tls.key_file is set`,
		}},
		{"operator key", func(c *Config) { c.API.OperatorKey = strings.Repeat("é", 24) }, nil},
		{"operator key with spaces", func(c *Config) { c.API.OperatorKey = " " + strings.Repeat("k", 24) }, []string{
			`api.operator_key: must not start or end with white space`,
		}},
		{"store", func(c *Config) { c.Store.Backend = "mongo"; c.Store.Embedded.Path = "" }, []string{
			`store.backend: "mongo" is not a store backend (embedded or dgraph)`,
		}},
		{"embedded path", func(c *Config) { c.Store.Embedded.Path = "" }, []string{
			`store.embedded.path: is required for the embedded store`,
		}},
		{"records in the default tenant", func(c *Config) {
			c.Plugins = []Plugin{
				{ID: "up", Use: "transforms.upper", Runtime: "builtin"},
				{ID: "up", Tenant: "acme", Use: "transforms.upper", Runtime: "builtin"},
				{ID: "out", Tenant: "default", Use: "brokers.mqtt", Runtime: "builtin"},
			}
			c.Junctions = []Junction{
				{ID: "j", Source: "device.>", Transforms: []string{"up"}, Targets: []Target{{Broker: "out"}}},
				{ID: "j", Tenant: "acme", Source: "a.*", Transforms: []string{"up"}, Targets: []Target{{Device: "d"}}},
			}
		}, nil},
		{"references across tenants", func(c *Config) {
			c.Plugins = []Plugin{{ID: "out", Tenant: "acme", Use: "brokers.mqtt", Runtime: "builtin"}}
			c.Junctions = []Junction{
				{ID: "j", Source: "a", Transforms: []string{"Bad"}, Targets: []Target{{Broker: "out"}}},
				{ID: "j", Tenant: "default", Source: "b", Targets: []Target{{Selector: map[string]string{"Room": "x"}}}},
			}
		}, []string{
			`junctions[0].transforms[0]: "Bad" must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit`,
			`junctions[0].targets[0].broker: "out" is not a plugin declared in tenant "default"`,
			`junctions[1].targets[0].selector: key "Room": must be 1-63 characters of a-z, 0-9, '-', '_' or '.'`,
			`junctions[1].id: "j" is already declared in tenant "default" by junctions[0]`,
		}},
		{"declared tenants and devices", func(c *Config) {
			c.Tenants = []Tenant{{ID: "acme", Name: "Acme"}, {ID: "acme"}, {ID: "Bad Tenant"}}
			c.Devices = []Device{
				{ID: "display-1", Labels: map[string]string{"role": "display"}},
				{ID: "display-1", Tenant: "acme"},
				{ID: "display-1"},
				{ID: "x", Tenant: "No Such", Labels: map[string]string{"Bad Key": "v"}},
			}
		}, []string{
			`tenants[1].id: "acme" is already declared by tenants[0]`,
			`tenants[2].id: "Bad Tenant" must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit`,
			`devices[2].id: "display-1" is already declared in tenant "default" by devices[0]`,
			`devices[3].tenant: "No Such" must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit`,
			`devices[3].labels: key "Bad Key": must be 1-63 characters of a-z, 0-9, '-', '_' or '.'`,
		}},
		{"plugin interval and limits", func(c *Config) {
			c.Plugins = []Plugin{
				{ID: "synth", Use: "collectors.synthetic", Runtime: "wasm", Module: "s.wasm", Interval: time.Second,
					Limits: PluginLimits{Memory: 16 << 20, CallTimeout: 50 * time.Millisecond, PoolSize: 4}},
				{ID: "quiet", Use: "collectors.synthetic", Runtime: "wasm", Module: "s.wasm"},
				{ID: "scale", Use: "transforms.scale", Runtime: "wasm", Module: "t.wasm", Interval: time.Second,
					Limits: PluginLimits{Memory: 1024, CallTimeout: -1, PoolSize: 1000}},
				{ID: "mqtt", Use: "collectors.mqtt", Runtime: "builtin"},
				{ID: "http", Use: "collectors.http", Runtime: "builtin", Interval: time.Second},
				{ID: "fetcher", Use: "collectors.weather", Runtime: "wasm", Module: "w.wasm", Interval: time.Minute,
					HTTPFetch: HTTPFetch{Hosts: []string{"api.example", "https://api.example/x", ""}, Timeout: -1, MaxResponse: -1}},
				{ID: "hook", Use: "brokers.webhook", Runtime: "builtin", HTTPFetch: HTTPFetch{Hosts: []string{"a.example"}}},
				{ID: "sandboxed-hook", Use: "brokers.webhook", Runtime: "wasm", Module: "h.wasm"},
			}
		}, []string{
			`plugins[1].interval: is required for a wasm collector: how often it is called, e.g. 1s`,
			`plugins[2].interval: applies to collectors only`,
			`plugins[2].limits.memory: must be between 64KiB and 4GiB`,
			`plugins[2].limits.call_timeout: must be positive`,
			`plugins[2].limits.pool_size: must be between 1 and 256`,
			`plugins[4].interval: applies to wasm collectors, which the host calls; a builtin collector runs on its own (set its pace in config)`,
			`plugins[5].http_fetch.hosts[1]: "https://api.example/x" must be a host, host:port or *.suffix — no scheme or path`,
			`plugins[5].http_fetch.hosts[2]: "" must be a host, host:port or *.suffix — no scheme or path`,
			`plugins[5].http_fetch.timeout: must not be negative`,
			`plugins[5].http_fetch.max_response: must not be negative`,
			`plugins[6].http_fetch: applies to wasm plugins only: a builtin plugin makes its own connections`,
			`plugins[7].runtime: a broker cannot run as wasm (the guest ABI has collectors and transforms only): use builtin or process`,
		}},
		{"process plugin sha256 and env", func(c *Config) {
			sum := strings.Repeat("ab", 32)
			c.Plugins = []Plugin{
				{ID: "ok", Use: "transforms.scale", Runtime: "process", Module: "bin/switchyard", SHA256: sum, Env: []string{"HTTPS_PROXY", "TZ"}},
				{ID: "nosum", Use: "transforms.scale", Runtime: "process", Module: "bin/switchyard"},
				{ID: "short", Use: "transforms.scale", Runtime: "process", Module: "bin/switchyard", SHA256: "abc123"},
				{ID: "notprocess", Use: "transforms.scale", Runtime: "wasm", Module: "t.wasm", SHA256: sum, Env: []string{"TZ"}},
				{ID: "badenv", Use: "transforms.scale", Runtime: "process", Module: "bin/switchyard", SHA256: sum, Env: []string{"1X", "A=B"}},
			}
		}, []string{
			`plugins[1].sha256: is required for runtime process: the hex sha256 of the binary at module (sha256sum prints it)`,
			`plugins[2].sha256: must be 64 hex digits (a sha256 sum), got "abc123"`,
			`plugins[3].sha256: applies to runtime process only`,
			`plugins[3].env: applies to runtime process only`,
			`plugins[4].env[0]: "1X" is not a variable name (letters, digits and '_', not starting with a digit)`,
			`plugins[4].env[1]: "A=B" is not a variable name (letters, digits and '_', not starting with a digit)`,
		}},
		{"junction collector and throttle", func(c *Config) {
			c.Plugins = []Plugin{
				{ID: "synth", Use: "collectors.synthetic", Runtime: "wasm", Module: "s.wasm", Interval: time.Second},
				{ID: "scale", Use: "transforms.scale", Runtime: "wasm", Module: "t.wasm"},
			}
			c.Junctions = []Junction{
				{ID: "ok", Source: "synthetic.>", Collector: "synth", Targets: []Target{{Device: "d"}}, Throttle: Throttle{Rate: 2.5, Burst: 5}},
				{ID: "bad", Source: "x", Collector: "scale", Targets: []Target{{Device: "d"}}, Throttle: Throttle{Rate: -1}},
				{ID: "burst", Source: "x", Collector: "ghost", Targets: []Target{{Device: "d"}}, Throttle: Throttle{Burst: 3}},
			}
		}, []string{
			`junctions[1].throttle.rate: must be a positive number of messages per second (0: no throttle)`,
			`junctions[1].collector: "scale" is a transforms plugin (plugins[1]); only collectors plugins can be used here`,
			`junctions[2].throttle.burst: must be positive, and only with a rate`,
			`junctions[2].collector: "ghost" is not a plugin declared in tenant "default"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.change(&c)
			err := c.Validate()
			var got []string
			if err != nil {
				var ps Problems
				if !errors.As(err, &ps) {
					t.Fatalf("Validate error %T is not Problems", err)
				}
				for _, p := range ps {
					if p.Source != "" || p.Line != 0 {
						t.Errorf("Validate set a source or line: %+v", p)
					}
				}
				got = strings.Split(ps.Error(), "\n")
			}
			assertLines(t, got, tt.want)
		})
	}
}

// Every error a graph validator returns becomes a problem under the record.
func TestGraphErr(t *testing.T) {
	var v validation
	v.graphErr("plugins[3]", errors.Join(
		graph.Invalid("id", "is required"),
		fmt.Errorf("wrapped: %w", graph.Invalid("targets[1].broker", "is bad")),
		errors.New("something else"),
	))
	assertLines(t, strings.Split(v.problems.Error(), "\n"), []string{
		`plugins[3].id: is required`,
		`plugins[3].targets[1].broker: is bad`,
		`plugins[3]: something else`,
	})
}
