package config

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// PluginFromRecord makes the declaration of a plugin instance declared
// through the API (a graph record) and checks it as Validate checks one of
// plugins.yaml. module is the path of the module or binary the caller
// resolved rec.Module (its sha256) to; for runtime process the sum becomes
// SHA256, which the host checks before it starts the binary. A record
// without a tenant is in graph.DefaultTenant, as a declaration of the file
// without one is.
//
// The record's interval, limits and http_fetch are read as the file's keys
// are (Go durations, sizes such as "16MiB") and its config decoded with
// numbers kept as written (json.Number). On any problem it returns Problems
// whose paths are the record's JSON fields ("interval", "limits.memory",
// "http_fetch.hosts[0]"); only what needs the other declarations (a
// duplicate id, the references of junctions) is left to the caller.
func PluginFromRecord(rec graph.PluginInstance, module string) (Plugin, error) {
	p := Plugin{
		ID:      rec.ID,
		Tenant:  tenantOf(rec.Tenant),
		Use:     rec.Use,
		Runtime: rec.Runtime,
		Module:  module,
		Env:     cloneList(rec.Env),
		Origin:  OriginAPI,
	}
	if rec.Runtime == "process" {
		p.SHA256 = rec.Module
	}
	d := decoder{where: func(string) Problem { return Problem{} }}
	text := func(path, s string, out any) {
		if s != "" {
			d.decode(path, s, reflect.ValueOf(out).Elem(), false)
		}
	}
	text("interval", rec.Interval, &p.Interval)
	if l := rec.Limits; l != nil {
		text("limits.memory", l.Memory, &p.Limits.Memory)
		text("limits.call_timeout", l.CallTimeout, &p.Limits.CallTimeout)
		p.Limits.PoolSize = l.PoolSize
	}
	if h := rec.HTTPFetch; h != nil {
		p.HTTPFetch.Hosts = cloneList(h.Hosts)
		text("http_fetch.timeout", h.Timeout, &p.HTTPFetch.Timeout)
		text("http_fetch.max_response", h.MaxResponse, &p.HTTPFetch.MaxResponse)
		text("http_fetch.max_request", h.MaxRequest, &p.HTTPFetch.MaxRequest)
	}
	if len(rec.Config) > 0 {
		dec := json.NewDecoder(bytes.NewReader(rec.Config))
		dec.UseNumber()
		if dec.Decode(&p.Config) != nil {
			p.Config = nil // rec.Validate reports it
		}
	}

	v := &validation{}
	v.plugin("", &p, &rec)
	problems := d.problems
	for _, found := range v.problems {
		if !slices.ContainsFunc(d.failed, func(f Problem) bool { return within(found.Path, f.Path) }) {
			problems = append(problems, found)
		}
	}
	if len(problems) > 0 {
		return Plugin{}, problems
	}
	return p, nil
}

// within reports whether path is at or under outer: "limits.memory" is
// within "limits" and "hosts[1]" within "hosts".
func within(path, outer string) bool {
	return path == outer || strings.HasPrefix(path, outer+".") || strings.HasPrefix(path, outer+"[")
}

// RecordOf is the record of a declaration, as the API shows and the graph
// stores it: durations and sizes written as in plugins.yaml. Module is the
// sum of a process binary; for wasm the caller sets it to the sha256 of the
// module. A config JSON cannot hold (a NaN or infinite number, which the
// host could not give the plugin either) is left out.
func RecordOf(p Plugin) graph.PluginInstance {
	rec := graph.PluginInstance{
		Meta:     graph.Meta{Tenant: p.Tenant, ID: p.ID},
		Use:      p.Use,
		Runtime:  p.Runtime,
		Env:      cloneList(p.Env),
		Interval: durationText(p.Interval),
	}
	if p.Runtime == "process" {
		rec.Module = p.SHA256
	}
	if p.Config != nil {
		if data, err := json.Marshal(p.Config); err == nil {
			rec.Config = data
		}
	}
	if l := p.Limits; l != (PluginLimits{}) {
		rec.Limits = &graph.PluginLimits{Memory: sizeText(l.Memory), CallTimeout: durationText(l.CallTimeout), PoolSize: l.PoolSize}
	}
	if h := p.HTTPFetch; len(h.Hosts) > 0 || h.Timeout != 0 || h.MaxResponse != 0 || h.MaxRequest != 0 {
		rec.HTTPFetch = &graph.PluginHTTPFetch{
			Hosts:       cloneList(h.Hosts),
			Timeout:     durationText(h.Timeout),
			MaxResponse: sizeText(h.MaxResponse),
			MaxRequest:  sizeText(h.MaxRequest),
		}
	}
	return rec
}

// durationText writes d as a Go duration, "" for zero (unset).
func durationText(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// sizeText writes b as a size, "" for zero (unset).
func sizeText(b ByteSize) string {
	if b == 0 {
		return ""
	}
	return b.String()
}

// cloneList copies a list; an empty one is no list, as when decoded.
func cloneList(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
