package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/graph"
)

var (
	moduleSum = strings.Repeat("5e", 32)
	binarySum = strings.Repeat("b1", 32)
)

// A declaration shown or stored as a record, sent over the API as JSON and
// read back is the declaration it was.
func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		plugin Plugin
		module string // the sha256 the caller fills in for wasm
		check  func(rec graph.PluginInstance) bool
	}{
		{"wasm collector with limits and http_fetch", Plugin{
			ID: "weather", Tenant: "acme", Use: "collectors.weather", Runtime: "wasm", Module: "/var/lib/switchyard/modules/w.wasm",
			Config:   map[string]any{"city": "Oslo", "units": []any{"metric"}, "every": json.Number("3")},
			Interval: 2 * time.Second,
			Limits:   PluginLimits{Memory: 16 << 20, CallTimeout: 250 * time.Millisecond, PoolSize: 4},
			HTTPFetch: HTTPFetch{Hosts: []string{"api.example", "*.met.no:443"}, Timeout: 3 * time.Second,
				MaxResponse: 64 << 10, MaxRequest: 1000},
		}, moduleSum, func(rec graph.PluginInstance) bool {
			return rec.Interval == "2s" && *rec.Limits == graph.PluginLimits{Memory: "16MiB", CallTimeout: "250ms", PoolSize: 4} &&
				rec.HTTPFetch.Timeout == "3s" && rec.HTTPFetch.MaxResponse == "64KiB" && rec.HTTPFetch.MaxRequest == "1000B"
		}},
		{"process broker with env and sha256", Plugin{
			ID: "hook", Tenant: "default", Use: "brokers.webhook", Runtime: "process", Module: "/usr/lib/switchyard/webhook",
			SHA256: binarySum, Env: []string{"HTTPS_PROXY", "TZ"}, Config: map[string]any{"url": "https://hooks.example/in"},
		}, "", func(rec graph.PluginInstance) bool {
			return rec.Module == binarySum && rec.Limits == nil && rec.HTTPFetch == nil && rec.Interval == ""
		}},
		{"builtin transform", Plugin{
			ID: "to-f", Tenant: "default", Use: "transforms.scale", Runtime: "builtin",
			Config: map[string]any{"preset": "c_to_f"},
		}, "", func(rec graph.PluginInstance) bool {
			return rec.Module == "" && string(rec.Config) == `{"preset":"c_to_f"}`
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := RecordOf(tt.plugin)
			if tt.module != "" {
				rec.Module = tt.module
			}
			if !tt.check(rec) {
				t.Errorf("RecordOf = %+v", rec)
			}
			data, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var sent graph.PluginInstance
			if err := json.Unmarshal(data, &sent); err != nil {
				t.Fatal(err)
			}
			got, err := PluginFromRecord(sent, tt.plugin.Module)
			if err != nil {
				t.Fatalf("PluginFromRecord(%s): %v", data, err)
			}
			want := tt.plugin
			want.Origin = OriginAPI
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip of %s:\ngot  %+v\nwant %+v", data, got, want)
			}
			c := Default()
			c.Plugins = []Plugin{got}
			if err := c.Validate(); err != nil {
				t.Errorf("the plugin from the record does not validate in a configuration: %v", err)
			}
		})
	}
}

func TestPluginFromRecordProblems(t *testing.T) {
	collector := func() graph.PluginInstance {
		return graph.PluginInstance{Meta: graph.Meta{Tenant: "acme", ID: "weather"}, Use: "collectors.weather", Runtime: "wasm",
			Module: moduleSum, Interval: "1m", Config: json.RawMessage(`{"city":"Oslo"}`)}
	}
	transform := func() graph.PluginInstance {
		return graph.PluginInstance{Meta: graph.Meta{Tenant: "acme", ID: "scale"}, Use: "transforms.scale", Runtime: "wasm", Module: moduleSum}
	}
	builtin := func() graph.PluginInstance {
		return graph.PluginInstance{Meta: graph.Meta{ID: "mqtt"}, Use: "collectors.mqtt", Runtime: "builtin"}
	}
	process := func() graph.PluginInstance {
		return graph.PluginInstance{Meta: graph.Meta{ID: "hook"}, Use: "brokers.webhook", Runtime: "process", Module: binarySum}
	}
	const notDuration = `is not a duration; write a Go duration such as "30s", "5m" or "1h30m"`
	tests := []struct {
		name   string
		rec    func() graph.PluginInstance
		change func(r *graph.PluginInstance)
		want   []string // every problem, "path: message"; none for a valid record
	}{
		{"a collector", collector, func(*graph.PluginInstance) {}, nil},
		{"a collector at its bounds", collector, func(r *graph.PluginInstance) {
			r.Limits = &graph.PluginLimits{Memory: "64KiB", CallTimeout: "1s", PoolSize: 256}
			r.HTTPFetch = &graph.PluginHTTPFetch{Hosts: []string{"*.example:8443"}, MaxResponse: "4GiB"}
		}, nil},
		{"empty sections", transform, func(r *graph.PluginInstance) {
			r.Limits, r.HTTPFetch = &graph.PluginLimits{}, &graph.PluginHTTPFetch{}
		}, nil},
		{"a process broker", process, func(r *graph.PluginInstance) { r.Env = []string{"TZ"} }, nil},
		{"a builtin", builtin, func(*graph.PluginInstance) {}, nil},
		{"interval not a duration", collector, func(r *graph.PluginInstance) { r.Interval = "soon" }, []string{
			`interval: string "soon" ` + notDuration,
		}},
		{"interval without a unit", collector, func(r *graph.PluginInstance) { r.Interval = "5" }, []string{
			`interval: a duration needs a unit, e.g. "30s", "5m" or "1h30m"; got string "5"`,
		}},
		{"interval missing", collector, func(r *graph.PluginInstance) { r.Interval = "" }, []string{
			`interval: is required for a wasm collector: how often it is called, e.g. 1s`,
		}},
		{"interval on a transform", transform, func(r *graph.PluginInstance) { r.Interval = "2s" }, []string{
			`interval: applies to collectors only`,
		}},
		{"interval on a builtin collector", builtin, func(r *graph.PluginInstance) { r.Interval = "2s" }, []string{
			`interval: applies to wasm collectors, which the host calls; a builtin collector runs on its own (set its pace in config)`,
		}},
		{"memory in parsecs", collector, func(r *graph.PluginInstance) { r.Limits = &graph.PluginLimits{Memory: "12 parsecs"} }, []string{
			`limits.memory: size "12 parsecs" has unknown unit "parsecs" (use B, KiB, MiB, GiB or TiB)`,
		}},
		{"limits out of range", transform, func(r *graph.PluginInstance) {
			r.Limits = &graph.PluginLimits{Memory: "1KiB", CallTimeout: "-1s", PoolSize: 999}
		}, []string{
			`limits.memory: must be between 64KiB and 4GiB`,
			`limits.call_timeout: must be positive`,
			`limits.pool_size: must be between 1 and 256`,
		}},
		{"call timeout not a duration", transform, func(r *graph.PluginInstance) {
			r.Limits = &graph.PluginLimits{CallTimeout: "fast", PoolSize: -1}
		}, []string{
			`limits.call_timeout: string "fast" ` + notDuration,
			`limits.pool_size: must be between 1 and 256`,
		}},
		{"http_fetch", collector, func(r *graph.PluginInstance) {
			r.HTTPFetch = &graph.PluginHTTPFetch{Hosts: []string{"api.example", "https://api.example/x"}, Timeout: "-2s",
				MaxResponse: "lots", MaxRequest: "-1KiB"}
		}, []string{
			`http_fetch.max_response: size "lots" must start with a whole number of bytes, e.g. "64KiB"`,
			`http_fetch.max_request: size "-1KiB" must not be negative`,
			`http_fetch.hosts[1]: "https://api.example/x" must be a host, host:port or *.suffix — no scheme or path`,
			`http_fetch.timeout: must not be negative`,
		}},
		{"http_fetch on a builtin", builtin, func(r *graph.PluginInstance) {
			r.HTTPFetch = &graph.PluginHTTPFetch{Hosts: []string{"a.example"}}
		}, []string{
			`http_fetch: applies to wasm plugins only: a builtin plugin makes its own connections`,
		}},
		{"env on wasm", transform, func(r *graph.PluginInstance) { r.Env = []string{"TZ"} }, []string{
			`env: applies to runtime process only`,
		}},
		{"env names", process, func(r *graph.PluginInstance) { r.Env = []string{"TZ", "1X", "A=B"} }, []string{
			`env[1]: "1X" is not a variable name (letters, digits and '_', not starting with a digit)`,
			`env[2]: "A=B" is not a variable name (letters, digits and '_', not starting with a digit)`,
		}},
		{"wasm without a module", transform, func(r *graph.PluginInstance) { r.Module = "" }, []string{
			`module: is required for runtime wasm: the sha256 of a module uploaded to this tenant`,
		}},
		{"process without a module", process, func(r *graph.PluginInstance) { r.Module = "" }, []string{
			`module: is required for runtime process: the sha256 of a module uploaded to this tenant`,
		}},
		{"module a path", transform, func(r *graph.PluginInstance) { r.Module = "scale.wasm" }, []string{
			`module: "scale.wasm" must be the sha256 of the module: 64 lower-case hex digits`,
		}},
		{"process sum in capitals", process, func(r *graph.PluginInstance) { r.Module = strings.ToUpper(binarySum) }, []string{
			`module: "` + strings.ToUpper(binarySum) + `" must be the sha256 of the module: 64 lower-case hex digits`,
		}},
		{"builtin with a module", builtin, func(r *graph.PluginInstance) { r.Module = moduleSum }, []string{
			`module: must be empty for runtime builtin: built-in plugins are compiled in`,
		}},
		{"broker on wasm", process, func(r *graph.PluginInstance) { r.Runtime = "wasm" }, []string{
			`runtime: a broker cannot run as wasm (the guest ABI has collectors and transforms only): use builtin or process`,
		}},
		{"record fields", transform, func(r *graph.PluginInstance) {
			r.Tenant, r.ID, r.Use, r.Config = "Acme", "", "filters.x", json.RawMessage(`[1]`)
		}, []string{
			`tenant: "Acme" must be 1-63 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit`,
			`id: is required`,
			`use: "filters.x" must be kind.name with kind collectors, transforms or brokers`,
			`config: must be a JSON object`,
		}},
		{"runtime", transform, func(r *graph.PluginInstance) { r.Runtime = "docker" }, []string{
			`runtime: "docker" must be builtin, process or wasm`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.rec()
			tt.change(&rec)
			// The caller resolves the sum; an empty path is its business.
			p, err := PluginFromRecord(rec, "")
			if tt.want == nil {
				if err != nil {
					t.Fatalf("PluginFromRecord: %v", err)
				}
				if p.ID != rec.ID || p.Tenant != cmp.Or(rec.Tenant, graph.DefaultTenant) || p.Origin != OriginAPI {
					t.Fatalf("PluginFromRecord = %+v", p)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("PluginFromRecord error %T %v is not Problems", err, err)
			}
			for _, pr := range ps {
				if pr.Source != "" || pr.Line != 0 {
					t.Errorf("a source or line: %+v", pr)
				}
			}
			if !reflect.DeepEqual(p, Plugin{}) {
				t.Errorf("a plugin along with problems: %+v", p)
			}
			assertLines(t, strings.Split(ps.Error(), "\n"), tt.want)
		})
	}
}

// The config of a record reaches the plugin as written: numbers are not
// rounded through float64.
func TestPluginFromRecordConfig(t *testing.T) {
	rec := graph.PluginInstance{Meta: graph.Meta{ID: "s"}, Use: "transforms.scale", Runtime: "builtin",
		Config: json.RawMessage(`{"id": 9007199254740993, "factor": 0.5, "nested": {"list": [1, "a"]}}`)}
	p, err := PluginFromRecord(rec, "")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(p.Config)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"factor":0.5,"id":9007199254740993,"nested":{"list":[1,"a"]}}`; string(data) != want {
		t.Errorf("config = %s, want %s", data, want)
	}
	if p, err := PluginFromRecord(graph.PluginInstance{Meta: graph.Meta{ID: "s"}, Use: "transforms.scale", Runtime: "builtin"}, ""); err != nil || p.Config != nil {
		t.Errorf("no config: %+v, %v; want a nil Config", p.Config, err)
	}
}

// FuzzPluginFromRecord feeds arbitrary JSON as a declaration sent to the
// API. PluginFromRecord must never panic; what it accepts is accepted in a
// configuration and survives RecordOf unchanged, and what it refuses comes
// as Problems at the record's own fields.
func FuzzPluginFromRecord(f *testing.F) {
	f.Add([]byte(`{"id":"w","use":"collectors.weather","runtime":"wasm","module":"` + moduleSum + `","interval":"2s",` +
		`"limits":{"memory":"16MiB","call_timeout":"1s","pool_size":2},` +
		`"http_fetch":{"hosts":["api.example"],"timeout":"2s","max_response":"64KiB","max_request":"1KiB"},"config":{"city":"Oslo"}}`))
	f.Add([]byte(`{"tenant":"acme","id":"hook","use":"brokers.webhook","runtime":"process","module":"` + binarySum + `","env":["TZ"]}`))
	f.Add([]byte(`{"id":"s","use":"transforms.scale","runtime":"builtin","config":{"factor":1e400,"n":-0}}`))
	f.Add([]byte(`{"id":"x","use":"collectors.x","runtime":"wasm","interval":"9223372036854775807h","limits":{"memory":"9223372036854775807TiB","pool_size":-9}}`))
	f.Add([]byte(`{"id":"x","use":"transforms.x","runtime":"wasm","http_fetch":{"hosts":[""],"timeout":" 1s "},"config":null}`))
	f.Add([]byte(`{"limits":null,"http_fetch":{},"env":[],"config":"{}"}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var rec graph.PluginInstance
		if json.Unmarshal(data, &rec) != nil {
			return
		}
		module := ""
		if rec.Runtime != "builtin" {
			module = "modules/m"
		}
		p, err := PluginFromRecord(rec, module)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error %T %q is not Problems", err, err)
			}
			for _, pr := range ps {
				if pr.Message == "" || pr.Source != "" || pr.Line != 0 || strings.HasPrefix(pr.Path, "plugins") {
					t.Fatalf("bad problem %+v", pr)
				}
			}
			return
		}
		c := Default()
		c.Plugins = []Plugin{p}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted record %s does not validate in a configuration: %v", data, err)
		}
		back := RecordOf(p)
		if p.Runtime == "wasm" {
			back.Module = rec.Module
		}
		again, err := PluginFromRecord(back, module)
		if err != nil {
			t.Fatalf("RecordOf of accepted %s is refused: %v", data, err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip of %s:\ngot  %+v\nwant %+v", data, again, p)
		}
	})
}
