package config

import (
	"path/filepath"
	"time"

	"github.com/switchyard/switchyard/graph"
)

// Config is the whole of plugins.yaml after defaults, file, environment and
// flags have been merged (in that order; later wins).
type Config struct {
	Gateway   Gateway    `koanf:"gateway"`
	API       API        `koanf:"api"`
	Store     Store      `koanf:"store"`
	Log       Log        `koanf:"log"`
	WASM      WASM       `koanf:"wasm"`
	Firmware  Firmware   `koanf:"firmware"`
	Tenants   []Tenant   `koanf:"tenants"`
	Devices   []Device   `koanf:"devices"`
	Plugins   []Plugin   `koanf:"plugins"`
	Junctions []Junction `koanf:"junctions"`

	// EncryptionKey seals secrets kept at rest (the Dgraph store's
	// namespace credentials). It comes from SWITCHYARD_ENCRYPTION_KEY only,
	// never from the file: see ParseEncryptionKey.
	EncryptionKey []byte `koanf:"-"`
}

// Gateway configures the device WebSocket listener.
type Gateway struct {
	// Listen is the address devices connect to.
	Listen string `koanf:"listen"`
	// Path is the upgrade path.
	Path string `koanf:"path"`
	// MaxConnections bounds concurrent device sessions; further handshakes
	// get 503.
	MaxConnections int `koanf:"max_connections"`
	// MaxFrameSize bounds one frame from a device; a larger one closes the
	// session with 1009.
	MaxFrameSize ByteSize `koanf:"max_frame_size"`
	// SendQueue is the number of frames queued per device before the
	// overflow policy applies.
	SendQueue int `koanf:"send_queue"`
	// SendOverflow is what happens when a device's send queue is full:
	// "drop_oldest" (discard the oldest queued frame), "drop_newest" (refuse
	// the new frame) or "disconnect" (close the session with 4029).
	SendOverflow string `koanf:"send_overflow"`
	// HeartbeatInterval is announced to devices in the welcome frame.
	HeartbeatInterval time.Duration `koanf:"heartbeat_interval"`
	// HeartbeatTimeout closes a session that sent nothing for this long.
	HeartbeatTimeout time.Duration `koanf:"heartbeat_timeout"`
	// HelloTimeout closes a session that did not say hello in time.
	HelloTimeout time.Duration `koanf:"hello_timeout"`
	// DrainTimeout bounds graceful shutdown.
	DrainTimeout time.Duration `koanf:"drain_timeout"`
	// LastSeenFlush is how often batched last-seen times are written to the
	// store. Connect and disconnect times reach it at the next flush; while a
	// device is connected the API shows its live last-seen from the session,
	// so a long interval costs no precision, only store writes.
	LastSeenFlush time.Duration `koanf:"last_seen_flush"`
	// TLS serves wss:// when both files are set.
	TLS TLS `koanf:"tls"`
}

// TLS names a certificate and key in PEM files.
type TLS struct {
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// API configures the admin HTTP listener.
type API struct {
	// Listen defaults to loopback: the admin API is not for the LAN unless
	// the operator says so.
	Listen string `koanf:"listen"`
	// OperatorKey, when set (normally by SWITCHYARD_API__OPERATOR_KEY), is
	// the operator's API key. When empty, one is generated on first start,
	// printed once and stored hashed. Tagged secret: configuration errors
	// never show its value.
	OperatorKey string `koanf:"operator_key" secret:"true"`
	// MaxBodySize bounds request bodies.
	MaxBodySize ByteSize `koanf:"max_body_size"`
	// MaxModuleSize bounds a plugin module uploaded through the API (a WASM
	// module or a process binary).
	MaxModuleSize ByteSize `koanf:"max_module_size"`
	// Pprof serves Go's runtime profiles (net/http/pprof) under
	// /api/v1/debug/pprof/, to the operator key only. Off by default.
	Pprof bool `koanf:"pprof"`
}

// Store selects and configures the graph backend.
type Store struct {
	// Backend is "embedded" (bbolt, the default) or "dgraph".
	Backend  string        `koanf:"backend"`
	Embedded EmbeddedStore `koanf:"embedded"`
	Dgraph   DgraphStore   `koanf:"dgraph"`
}

// DgraphStore configures the Dgraph backend: one namespace per tenant.
type DgraphStore struct {
	// Addresses are the gRPC endpoints (host:port) of the alphas.
	Addresses []string `koanf:"addresses"`
	// HTTP is one alpha's HTTP endpoint (http://host:8080), where tenant
	// namespaces are created and dropped.
	HTTP string `koanf:"http"`
	// User and Password are the galaxy guardian's (the password normally
	// from SWITCHYARD_STORE__DGRAPH__PASSWORD).
	User     string `koanf:"user"`
	Password string `koanf:"password" secret:"true"`
	// Install names this installation in the cluster, so that several can
	// share one.
	Install string `koanf:"install"`
	// ConnectTimeout bounds the first contact at start.
	ConnectTimeout time.Duration `koanf:"connect_timeout"`
	// TLS secures the gRPC and HTTP connections when CAFile is set.
	TLS ClientTLS `koanf:"tls"`
}

// ClientTLS is how Switchyard checks a server and, optionally, proves who it
// is (mutual TLS) as a client.
type ClientTLS struct {
	// CAFile holds the PEM certificates that may sign the server's.
	CAFile string `koanf:"ca_file"`
	// ServerName overrides the name checked in the server's certificate.
	ServerName string `koanf:"server_name"`
	// CertFile and KeyFile, both or neither, are the client certificate.
	CertFile string `koanf:"cert_file"`
	KeyFile  string `koanf:"key_file"`
}

// EmbeddedStore configures the bbolt backend.
type EmbeddedStore struct {
	// Path is the database file.
	Path string `koanf:"path"`
}

// Log configures log/slog.
type Log struct {
	Level  string `koanf:"level"`  // debug, info, warn, error
	Format string `koanf:"format"` // text or json
}

// Tenant declares a tenant to create at start.
type Tenant struct {
	ID   string `koanf:"id"`
	Name string `koanf:"name"`
}

// Device declares a device to create at start. Its token is generated when
// it is created and shown once; the file never holds it.
type Device struct {
	ID     string            `koanf:"id"`
	Tenant string            `koanf:"tenant"`
	Name   string            `koanf:"name"`
	Model  string            `koanf:"model"`
	Labels map[string]string `koanf:"labels"`
}

// WASM configures the host of WASM plugins.
type WASM struct {
	// CacheDir holds compiled modules so a restart does not compile them
	// again; empty means a wasm-cache folder next to the embedded store.
	CacheDir string `koanf:"cache_dir"`
}

// CacheDirOrDefault is CacheDir, or its default next to the store.
func (c *Config) CacheDirOrDefault() string {
	if c.WASM.CacheDir != "" {
		return c.WASM.CacheDir
	}
	return filepath.Join(filepath.Dir(c.Store.Embedded.Path), "wasm-cache")
}

// ModulesDirOrDefault is where modules uploaded through the API are kept:
// a modules folder next to the embedded store.
func (c *Config) ModulesDirOrDefault() string {
	return filepath.Join(filepath.Dir(c.Store.Embedded.Path), "modules")
}

// Firmware configures over-the-air updates (package firmware).
type Firmware struct {
	// Dir holds uploaded images (per tenant, by sha256); empty means a
	// firmware folder next to the embedded store.
	Dir string `koanf:"dir"`
	// SigningKey is the PEM file of the Ed25519 key that signs manifests,
	// generated there on first use; empty means firmware-signing-key.pem in
	// Dir. Devices trust its public key: keep it, and back it up.
	SigningKey string `koanf:"signing_key"`
	// MaxImageSize bounds an uploaded image.
	MaxImageSize ByteSize `koanf:"max_image_size"`
	// MaxDownloads bounds the image downloads the gateway serves at once.
	MaxDownloads int `koanf:"max_downloads"`
	// DownloadStall cuts off a download without progress for this long.
	DownloadStall time.Duration `koanf:"download_stall"`
}

// FirmwareDirOrDefault is Firmware.Dir, or its default next to the store.
func (c *Config) FirmwareDirOrDefault() string {
	if c.Firmware.Dir != "" {
		return c.Firmware.Dir
	}
	return filepath.Join(filepath.Dir(c.Store.Embedded.Path), "firmware")
}

// SigningKeyOrDefault is Firmware.SigningKey, or its default in the
// firmware folder.
func (c *Config) SigningKeyOrDefault() string {
	if c.Firmware.SigningKey != "" {
		return c.Firmware.SigningKey
	}
	return filepath.Join(c.FirmwareDirOrDefault(), "firmware-signing-key.pem")
}

// Plugin declares one plugin instance.
type Plugin struct {
	ID      string `koanf:"id"`
	Tenant  string `koanf:"tenant"`
	Use     string `koanf:"use"`
	Runtime string `koanf:"runtime"`
	Module  string `koanf:"module"`
	// SHA256 is the hex sha256 of the binary at Module (runtime process
	// only, required there): the host refuses to start a binary whose sum
	// differs, before it runs.
	SHA256 string `koanf:"sha256"`
	// Env names the variables of the relay's environment a process plugin
	// is given (runtime process only); it gets no others but PATH.
	Env    []string       `koanf:"env"`
	Config map[string]any `koanf:"config"`
	// Interval is how often a wasm collector is called (wasm collectors
	// only: built-in and process collectors run on their own).
	Interval time.Duration `koanf:"interval"`
	// Limits bound each WASM instance; zero fields take the host's defaults.
	Limits PluginLimits `koanf:"limits"`
	// HTTPFetch grants a WASM instance HTTP requests to the listed hosts
	// (the http_fetch import of sdk/ABI.md); without hosts it has none.
	HTTPFetch HTTPFetch `koanf:"http_fetch"`

	// Origin says who declared the instance: OriginFile (this file) or
	// OriginAPI (the admin API, kept in the graph store). Not a key.
	Origin string `koanf:"-"`
}

// Origins of a plugin declaration (Plugin.Origin).
const (
	OriginFile = "file"
	OriginAPI  = "api"
)

// HTTPFetch is a WASM instance's allowance of HTTP requests.
type HTTPFetch struct {
	// Hosts are "host" (its scheme's default port only), "host:port",
	// "*.suffix" or "*.suffix:port".
	Hosts       []string      `koanf:"hosts"`
	Timeout     time.Duration `koanf:"timeout"`      // one fetch, at most; the call's own deadline still applies
	MaxResponse ByteSize      `koanf:"max_response"` // response body
	MaxRequest  ByteSize      `koanf:"max_request"`  // request JSON
}

// PluginLimits bound a WASM plugin instance.
type PluginLimits struct {
	Memory      ByteSize      `koanf:"memory"`       // linear memory cap per module instance
	CallTimeout time.Duration `koanf:"call_timeout"` // deadline of one call into the guest
	PoolSize    int           `koanf:"pool_size"`    // module instances serving calls at once
}

// Junction declares one junction.
type Junction struct {
	ID         string   `koanf:"id"`
	Tenant     string   `koanf:"tenant"`
	Source     string   `koanf:"source"`
	Collector  string   `koanf:"collector"`
	Transforms []string `koanf:"transforms"`
	Targets    []Target `koanf:"targets"`
	Throttle   Throttle `koanf:"throttle"`
}

// Throttle bounds the rate a junction takes messages in (0: unbounded).
type Throttle struct {
	Rate  float64 `koanf:"rate"`
	Burst int     `koanf:"burst"`
}

// Record is the junction as the graph stores it (declared junctions are
// always enabled).
func (j Junction) Record() graph.Junction {
	tenant := j.Tenant
	if tenant == "" {
		tenant = graph.DefaultTenant
	}
	rec := graph.Junction{
		Meta:       graph.Meta{Tenant: tenant, ID: j.ID},
		Enabled:    true,
		Source:     j.Source,
		Collector:  j.Collector,
		Transforms: j.Transforms,
		Throttle:   graph.Throttle{Rate: j.Throttle.Rate, Burst: j.Throttle.Burst},
	}
	for _, t := range j.Targets {
		rec.Targets = append(rec.Targets, graph.Target{Device: t.Device, Selector: t.Selector, Broker: t.Broker})
	}
	return rec
}

// Target is one destination of a declared junction.
type Target struct {
	Device   string            `koanf:"device"`
	Selector map[string]string `koanf:"selector"`
	Broker   string            `koanf:"broker"`
}

// ByteSize is a size in bytes, written in YAML as "64KiB", "16MiB" or a
// plain number of bytes.
type ByteSize int64

// Default returns the configuration used where a file, the environment and
// flags say nothing. Every default is safe on a LAN install.
func Default() Config {
	return Config{
		Gateway: Gateway{
			Listen:            "0.0.0.0:8080",
			Path:              "/ws/device",
			MaxConnections:    19000,
			MaxFrameSize:      64 << 10,
			SendQueue:         256,
			SendOverflow:      "drop_oldest",
			HeartbeatInterval: 30 * time.Second,
			HeartbeatTimeout:  90 * time.Second,
			HelloTimeout:      10 * time.Second,
			DrainTimeout:      10 * time.Second,
			LastSeenFlush:     time.Minute,
		},
		API: API{
			Listen:        "127.0.0.1:8081",
			MaxBodySize:   1 << 20,
			MaxModuleSize: 64 << 20,
		},
		Store: Store{
			Backend:  "embedded",
			Embedded: EmbeddedStore{Path: "data/switchyard.db"},
			Dgraph: DgraphStore{
				// The cluster make dgraph-up starts (Dgraph's ports + 100,
				// off the gateway's 8080).
				Addresses:      []string{"127.0.0.1:9180"},
				HTTP:           "http://127.0.0.1:8180",
				User:           "groot",
				Install:        "switchyard",
				ConnectTimeout: 10 * time.Second,
			},
		},
		Log: Log{Level: "info", Format: "text"},
		Firmware: Firmware{
			MaxImageSize:  64 << 20,
			MaxDownloads:  32,
			DownloadStall: 30 * time.Second,
		},
	}
}
