package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/switchyard/switchyard/graph"
)

// Bounds Validate enforces.
const (
	minFrameSize      ByteSize = 1 << 10
	maxFrameSize      ByteSize = 16 << 20
	minBodySize       ByteSize = 1 << 10
	minOperatorKeyLen          = 24
)

// storeBackendProblem says why backend cannot be used in this build, or ""
// when it can. This is the one place that knows which backends are built in.
func storeBackendProblem(backend string) string {
	switch backend {
	case "embedded", "dgraph":
		return ""
	default:
		return fmt.Sprintf("%q is not a store backend (embedded or dgraph)", backend)
	}
}

// Validate checks what decoding cannot: ranges, enumerations, addresses and
// the references between plugins and junctions. It returns Problems listing
// every problem found (with Path and Message; Load adds Source and Line), or
// nil. A plugin or junction with no tenant is taken to be in
// graph.DefaultTenant.
func (c *Config) Validate() error {
	v := &validation{}
	v.gateway(&c.Gateway)
	v.api(&c.API, &c.Gateway)
	v.store(&c.Store, c.EncryptionKey)
	v.firmware(&c.Firmware)
	v.log(&c.Log)
	v.tenants(c.Tenants)
	v.devices(c.Devices)
	declared := v.plugins(c.Plugins)
	v.junctions(c.Junctions, declared)
	if len(v.problems) == 0 {
		return nil
	}
	return v.problems
}

type validation struct{ problems Problems }

func (v *validation) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// graphErr adds the problems of a graph validator's error, its fields taken
// relative to the record at path.
func (v *validation) graphErr(path string, err error) {
	walkGraphErr(err, func(field, msg string) {
		if field != "" {
			field = joinPath(path, field)
		} else {
			field = path
		}
		v.add(field, "%s", msg)
	})
}

// walkGraphErr calls fn for every problem in err, an error of a graph
// validator (possibly several joined): field is "" when the error does not
// name one.
func walkGraphErr(err error, fn func(field, msg string)) {
	if err == nil {
		return
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			walkGraphErr(e, fn)
		}
		return
	}
	var invalid *graph.InvalidError
	if errors.As(err, &invalid) {
		fn(invalid.Field, invalid.Message)
		return
	}
	fn("", err.Error())
}

func (v *validation) positive(path string, d time.Duration) {
	if d <= 0 {
		v.add(path, "must be a positive duration, got %s", d)
	}
}

func (v *validation) gateway(g *Gateway) {
	v.listen("gateway.listen", g.Listen)
	switch {
	case !strings.HasPrefix(g.Path, "/"):
		v.add("gateway.path", "%q must start with \"/\"", g.Path)
	case strings.ContainsAny(g.Path, "?# \t\r\n"):
		v.add("gateway.path", "%q must be a plain URL path (no query, fragment or white space)", g.Path)
	}
	if g.MaxConnections < 1 {
		v.add("gateway.max_connections", "must be at least 1, got %d", g.MaxConnections)
	}
	if g.MaxFrameSize < minFrameSize || g.MaxFrameSize > maxFrameSize {
		v.add("gateway.max_frame_size", "must be between %s and %s, got %s", minFrameSize, maxFrameSize, g.MaxFrameSize)
	}
	if g.SendQueue < 1 {
		v.add("gateway.send_queue", "must be at least 1, got %d", g.SendQueue)
	}
	switch g.SendOverflow {
	case "drop_oldest", "drop_newest", "disconnect":
	default:
		v.add("gateway.send_overflow", "%q must be drop_oldest, drop_newest or disconnect", g.SendOverflow)
	}
	v.positive("gateway.heartbeat_interval", g.HeartbeatInterval)
	if g.HeartbeatInterval > 0 && g.HeartbeatTimeout <= g.HeartbeatInterval {
		v.add("gateway.heartbeat_timeout", "must be longer than gateway.heartbeat_interval (%s), got %s", g.HeartbeatInterval, g.HeartbeatTimeout)
	}
	v.positive("gateway.hello_timeout", g.HelloTimeout)
	v.positive("gateway.drain_timeout", g.DrainTimeout)
	v.positive("gateway.last_seen_flush", g.LastSeenFlush)
	switch {
	case g.TLS.CertFile != "" && g.TLS.KeyFile == "":
		v.add("gateway.tls.key_file", "is required when gateway.tls.cert_file is set")
	case g.TLS.CertFile == "" && g.TLS.KeyFile != "":
		v.add("gateway.tls.cert_file", "is required when gateway.tls.key_file is set")
	}
}

func (v *validation) api(a *API, g *Gateway) {
	if v.listen("api.listen", a.Listen) && sameListener(a.Listen, g.Listen) {
		v.add("api.listen", "%q uses the port of gateway.listen (%q); give each listener its own port", a.Listen, g.Listen)
	}
	if a.OperatorKey != "" {
		switch {
		case utf8.RuneCountInString(a.OperatorKey) < minOperatorKeyLen:
			v.add("api.operator_key", "must be at least %d characters long", minOperatorKeyLen)
		case strings.TrimFunc(a.OperatorKey, unicode.IsSpace) != a.OperatorKey:
			v.add("api.operator_key", "must not start or end with white space")
		}
	}
	if a.MaxBodySize < minBodySize {
		v.add("api.max_body_size", "must be at least %s, got %s", minBodySize, a.MaxBodySize)
	}
	if a.MaxModuleSize < minBodySize {
		v.add("api.max_module_size", "must be at least %s, got %s", minBodySize, a.MaxModuleSize)
	}
}

// maxImageSize bounds firmware.max_image_size: an image is kept whole on
// the relay's disk and read whole to hash it.
const maxImageSize = 4 << 30

func (v *validation) firmware(f *Firmware) {
	if f.MaxImageSize < 1 || f.MaxImageSize > maxImageSize {
		v.add("firmware.max_image_size", "must be between 1 byte and %s, got %s", ByteSize(maxImageSize), f.MaxImageSize)
	}
	if f.MaxDownloads < 1 {
		v.add("firmware.max_downloads", "must be at least 1, got %d", f.MaxDownloads)
	}
	v.positive("firmware.download_stall", f.DownloadStall)
}

var hostnamePattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)

// listen checks a host:port listen address and reports whether it is one.
func (v *validation) listen(path, addr string) bool {
	host, port, ok := splitHostPort(addr)
	if !ok {
		v.add(path, "%q is not a host:port address such as \"0.0.0.0:8080\" or \":8080\"", addr)
		return false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add(path, "%q: port %q must be a number from 0 to 65535", addr, port)
		return false
	}
	if host != "" && !hostnamePattern.MatchString(host) {
		if _, err := netip.ParseAddr(host); err != nil {
			v.add(path, "%q: %q is not an IP address or host name", addr, host)
			return false
		}
	}
	return true
}

// splitHostPort splits "host:port" and "[v6]:port". Unlike net.SplitHostPort
// it refuses an empty port.
func splitHostPort(addr string) (host, port string, ok bool) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || i == len(addr)-1 {
		return "", "", false
	}
	host, port = addr[:i], addr[i+1:]
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") {
			return "", "", false
		}
		host = host[1 : len(host)-1]
		if !strings.Contains(host, ":") {
			return "", "", false
		}
	} else if strings.ContainsAny(host, "[]:") {
		return "", "", false
	}
	return host, port, true
}

// sameListener reports whether two valid listen addresses would claim the
// same port: equal non-zero ports on equal hosts or where either listens on
// every address.
func sameListener(a, b string) bool {
	ha, pa, _ := splitHostPort(a)
	hb, pb, ok := splitHostPort(b)
	if !ok || pa != pb {
		return false
	}
	if n, err := strconv.Atoi(pa); err != nil || n == 0 {
		return false
	}
	wildcard := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return ha == hb || wildcard(ha) || wildcard(hb)
}

func (v *validation) store(s *Store, key []byte) {
	if msg := storeBackendProblem(s.Backend); msg != "" {
		v.add("store.backend", "%s", msg)
	}
	switch s.Backend {
	case "embedded":
		if s.Embedded.Path == "" {
			v.add("store.embedded.path", "is required for the embedded store")
		}
	case "dgraph":
		v.dgraph(&s.Dgraph, key)
	}
}

func (v *validation) dgraph(d *DgraphStore, key []byte) {
	if len(d.Addresses) == 0 {
		v.add("store.dgraph.addresses", "name at least one alpha's gRPC address (host:port)")
	}
	for i, a := range d.Addresses {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			v.add(fmt.Sprintf("store.dgraph.addresses[%d]", i), "%q is not host:port", a)
		}
	}
	if u, err := url.Parse(d.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add("store.dgraph.http", "%q must be an http:// or https:// URL of an alpha (e.g. http://127.0.0.1:8080)", d.HTTP)
	}
	if d.User == "" {
		v.add("store.dgraph.user", "is required (the galaxy guardian, normally groot)")
	}
	if d.Password == "" {
		v.add("store.dgraph.password", "is required: set SWITCHYARD_STORE__DGRAPH__PASSWORD to the galaxy guardian's password")
	}
	if err := graph.ValidID("install", d.Install); err != nil {
		v.add("store.dgraph.install", "%s", strings.TrimPrefix(err.Error(), "install: "))
	}
	if d.ConnectTimeout <= 0 {
		v.add("store.dgraph.connect_timeout", "must be positive")
	}
	if (d.TLS.CertFile == "") != (d.TLS.KeyFile == "") {
		v.add("store.dgraph.tls", "cert_file and key_file go together: set both or neither")
	}
	if d.TLS.CAFile == "" && (d.TLS.CertFile != "" || d.TLS.ServerName != "") {
		v.add("store.dgraph.tls.ca_file", "is required when TLS is configured")
	}
	if len(key) == 0 {
		v.add("encryption_key", "the dgraph store seals tenant credentials: set %s (generate one with: openssl rand -base64 32)", EnvEncryptionKey)
	}
}

func (v *validation) httpFetch(path, runtime string, h HTTPFetch) {
	if runtime != "wasm" {
		if len(h.Hosts) > 0 || h.Timeout != 0 || h.MaxResponse != 0 || h.MaxRequest != 0 {
			v.add(path, "applies to wasm plugins only: a %s plugin makes its own connections", runtime)
		}
		return
	}
	for i, host := range h.Hosts {
		if host == "" || strings.ContainsAny(host, "/?#@ ") {
			v.add(fmt.Sprintf("%s.hosts[%d]", path, i), "%q must be a host, host:port or *.suffix — no scheme or path", host)
		}
	}
	if h.Timeout < 0 {
		v.add(path+".timeout", "must not be negative")
	}
	if h.MaxResponse < 0 {
		v.add(path+".max_response", "must not be negative")
	}
	if h.MaxRequest < 0 {
		v.add(path+".max_request", "must not be negative")
	}
}

func (v *validation) log(l *Log) {
	switch l.Level {
	case "debug", "info", "warn", "error":
	default:
		v.add("log.level", "%q must be one of debug, info, warn, error", l.Level)
	}
	switch l.Format {
	case "text", "json":
	default:
		v.add("log.format", "%q must be text or json", l.Format)
	}
}

func tenantOf(t string) string {
	if t == "" {
		return graph.DefaultTenant
	}
	return t
}

// declaredPlugin is a plugin instance others may refer to by id.
type declaredPlugin struct {
	index int
	kind  string // collectors, transforms, brokers; "" when use is invalid
}

type tenantID struct{ tenant, id string }

func (v *validation) tenants(tenants []Tenant) {
	seen := map[string]int{}
	for i, t := range tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		rec := graph.Tenant{ID: t.ID, Name: t.Name}
		v.graphErr(path, rec.Validate())
		if first, dup := seen[t.ID]; dup && t.ID != "" {
			v.add(path+".id", "%q is already declared by tenants[%d]", t.ID, first)
		} else {
			seen[t.ID] = i
		}
	}
}

func (v *validation) devices(devices []Device) {
	seen := map[tenantID]int{}
	for i, d := range devices {
		path := fmt.Sprintf("devices[%d]", i)
		tenant := tenantOf(d.Tenant)
		v.graphErr(path, graph.ValidID("tenant", tenant))
		// The token is made at creation; a stand-in hash lets the graph
		// validator check every other field.
		rec := graph.Device{Meta: graph.Meta{Tenant: tenant, ID: d.ID}, Name: d.Name, Model: d.Model, Labels: d.Labels, TokenHash: make([]byte, 32)}
		v.graphErr(path, rec.Validate())
		key := tenantID{tenant, d.ID}
		if first, dup := seen[key]; dup && d.ID != "" {
			v.add(path+".id", "%q is already declared in tenant %q by devices[%d]", d.ID, tenant, first)
		} else {
			seen[key] = i
		}
	}
}

func (v *validation) plugins(plugins []Plugin) map[tenantID]declaredPlugin {
	declared := map[tenantID]declaredPlugin{}
	for i, p := range plugins {
		path := fmt.Sprintf("plugins[%d]", i)
		err := v.plugin(path, &p, nil)
		if graph.ValidID("", p.ID) != nil {
			continue
		}
		key := tenantID{tenantOf(p.Tenant), p.ID}
		if first, dup := declared[key]; dup {
			v.add(path+".id", "%q is already declared in tenant %q by plugins[%d]", p.ID, key.tenant, first.index)
			continue
		}
		kind, _, _ := strings.Cut(p.Use, ".")
		walkGraphErr(err, func(field, _ string) {
			if field == "use" {
				kind = ""
			}
		})
		declared[key] = declaredPlugin{index: i, kind: kind}
	}
	return declared
}

// plugin checks one plugin declaration on its own (not against the others)
// and returns the error of its graph record's validation. Its problems are
// under path, or at the keys themselves when path is "".
//
// stored is the record p was made from when it was declared through the
// API (see PluginFromRecord), nil when it comes from the file. In the file
// module is a path and sha256 the binary's sum; in a record module is the
// sha256 of an uploaded module, standing for sha256 too, and p.Module is the
// path the caller resolved it to, which is not checked.
func (v *validation) plugin(path string, p *Plugin, stored *graph.PluginInstance) error {
	at := func(key string) string { return joinPath(path, key) }
	tenant := tenantOf(p.Tenant)
	v.graphErr(path, graph.ValidID("tenant", tenant))
	rec, module, hint := stored, p.Module, ""
	if stored == nil {
		rec = &graph.PluginInstance{Meta: graph.Meta{Tenant: tenant, ID: p.ID}, Use: p.Use, Runtime: p.Runtime}
	} else {
		module, hint = stored.Module, ": the sha256 of a module uploaded to this tenant"
	}
	err := rec.Validate()
	v.graphErr(path, err)
	switch p.Runtime {
	case "wasm", "process":
		if module == "" {
			v.add(at("module"), "is required for runtime %s%s", p.Runtime, hint)
		}
	case "builtin":
		if module != "" {
			v.add(at("module"), "must be empty for runtime builtin: built-in plugins are compiled in")
		}
	}
	if p.Runtime == "wasm" && strings.HasPrefix(p.Use, "brokers.") {
		v.add(at("runtime"), "a broker cannot run as wasm (the guest ABI has collectors and transforms only): use builtin or process")
	}
	switch {
	case stored != nil:
		// The record's module is the sum, checked above and by rec.Validate.
	case p.Runtime == "process" && p.SHA256 == "":
		v.add(at("sha256"), "is required for runtime process: the hex sha256 of the binary at module (sha256sum prints it)")
	case p.Runtime == "process" && !isSHA256(p.SHA256):
		v.add(at("sha256"), "must be 64 hex digits (a sha256 sum), got %q", p.SHA256)
	case p.Runtime != "process" && p.SHA256 != "":
		v.add(at("sha256"), "applies to runtime process only")
	}
	if p.Runtime != "process" && len(p.Env) > 0 {
		v.add(at("env"), "applies to runtime process only")
	}
	for j, name := range p.Env {
		if !isEnvName(name) {
			v.add(at(fmt.Sprintf("env[%d]", j)), "%q is not a variable name (letters, digits and '_', not starting with a digit)", name)
		}
	}
	switch kind, _, _ := strings.Cut(p.Use, "."); {
	case kind != "collectors" && p.Interval != 0:
		v.add(at("interval"), "applies to collectors only")
	case p.Runtime != "wasm" && p.Interval != 0:
		v.add(at("interval"), "applies to wasm collectors, which the host calls; a %s collector runs on its own (set its pace in config)", p.Runtime)
	case p.Runtime == "wasm" && kind == "collectors" && p.Interval <= 0:
		v.add(at("interval"), "is required for a wasm collector: how often it is called, e.g. 1s")
	}
	v.httpFetch(at("http_fetch"), p.Runtime, p.HTTPFetch)
	if p.Limits.Memory < 0 || (p.Limits.Memory > 0 && (p.Limits.Memory < 64<<10 || p.Limits.Memory > 4<<30)) {
		v.add(at("limits.memory"), "must be between 64KiB and 4GiB")
	}
	if p.Limits.CallTimeout < 0 {
		v.add(at("limits.call_timeout"), "must be positive")
	}
	if p.Limits.PoolSize < 0 || p.Limits.PoolSize > 256 {
		v.add(at("limits.pool_size"), "must be between 1 and 256")
	}
	return err
}

func (v *validation) junctions(junctions []Junction, declared map[tenantID]declaredPlugin) {
	seen := map[tenantID]int{}
	for i, j := range junctions {
		path := fmt.Sprintf("junctions[%d]", i)
		tenant := tenantOf(j.Tenant)
		v.graphErr(path, graph.ValidID("tenant", tenant))
		rec := j.Record()
		if len(rec.Targets) == 0 {
			rec.Targets = []graph.Target{} // "at least one target" is reported once, by Validate
		}
		v.graphErr(path, rec.Validate())
		if j.Collector != "" {
			v.reference(path+".collector", tenant, j.Collector, "collectors", declared)
		}

		if graph.ValidID("", j.ID) == nil {
			key := tenantID{tenant, j.ID}
			if first, dup := seen[key]; dup {
				v.add(path+".id", "%q is already declared in tenant %q by junctions[%d]", j.ID, tenant, first)
			} else {
				seen[key] = i
			}
		}
		for ti, name := range j.Transforms {
			v.reference(fmt.Sprintf("%s.transforms[%d]", path, ti), tenant, name, "transforms", declared)
		}
		for ti, t := range j.Targets {
			if t.Broker != "" {
				v.reference(fmt.Sprintf("%s.targets[%d].broker", path, ti), tenant, t.Broker, "brokers", declared)
			}
		}
	}
}

// reference checks that id names a plugin of kind declared in tenant. An
// invalid id is left to the graph validator, which reports it.
func (v *validation) reference(path, tenant, id, kind string, declared map[tenantID]declaredPlugin) {
	if graph.ValidID("", id) != nil {
		return
	}
	p, ok := declared[tenantID{tenant, id}]
	switch {
	case !ok:
		v.add(path, "%q is not a plugin declared in tenant %q", id, tenant)
	case p.kind != "" && p.kind != kind:
		v.add(path, "%q is a %s plugin (plugins[%d]); only %s plugins can be used here", id, p.kind, p.index, kind)
	}
}

// isSHA256 reports whether s is a sha256 sum in hex.
func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// isEnvName reports whether s is a portable environment variable name.
func isEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
