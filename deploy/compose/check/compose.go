package deploycheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"go.yaml.in/yaml/v3"
)

// LoadCompose loads a compose file as `docker compose config` does:
// validated against the compose-spec JSON schema (an unknown key or a value
// of the wrong type is an error), ${VAR} interpolated from env only (never
// from this process's environment), paths resolved against the file's
// folder, and compose-go's consistency checks (undefined services, networks,
// volumes, secrets).
func LoadCompose(ctx context.Context, file string, env map[string]string) (*types.Project, error) {
	file, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if env == nil {
		env = map[string]string{}
	}
	return loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: env,
	})
}

// ReadEnvFile reads a .env file as docker compose does.
func ReadEnvFile(file string) (map[string]string, error) {
	return dotenv.Read(file)
}

// RelayImage is what the relay's image says that a compose service relies
// on, read from the Dockerfile.
type RelayImage struct {
	// Dockerfile is the file's path from the repository's root.
	Dockerfile string
	// Config is the image's configuration (one platform's).
	Config *dockerspec.DockerOCIImage
	// ConfigPath is the -c argument of the image's command, and
	// DefaultConfig the file the image has there, on this machine.
	ConfigPath, DefaultConfig string
}

// pinned is an image reference with a full version tag (x.y.z), optionally
// a digest too.
var pinned = regexp.MustCompile(`:v?\d+\.\d+\.\d+[^:/@]*(@sha256:[0-9a-f]{64})?$`)

// CheckStack cross-checks a loaded compose project: what the schema cannot
// say. Every problem is returned, each naming its service.
func CheckStack(p *types.Project, img *RelayImage) []error {
	var errs []error
	add := func(service, format string, args ...any) {
		errs = append(errs, fmt.Errorf("service %s: %s", service, fmt.Sprintf(format, args...)))
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range p.Services {
			if !yield(n) {
				return
			}
		}
	})
	dependedOn := map[string][]string{}
	for _, name := range names {
		s := p.Services[name]
		for dep, cfg := range s.DependsOn {
			t, ok := p.Services[dep]
			if !ok {
				add(name, "depends on %s, which is not a service", dep)
				continue
			}
			dependedOn[dep] = append(dependedOn[dep], cfg.Condition)
			switch cfg.Condition {
			case types.ServiceConditionHealthy:
				if !hasHealthcheck(t) {
					add(name, "waits for %s to be healthy, but %s has no healthcheck", dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if !oneShot(t) {
					add(name, "waits for %s to complete, but %s restarts (restart: %q)", dep, dep, t.Restart)
				}
			case types.ServiceConditionStarted:
				add(name, "depends on %s only being started: gate it on service_healthy (or service_completed_successfully for a one-shot)", dep)
			}
		}
	}
	for _, name := range names {
		s := p.Services[name]
		if oneShot(s) {
			if !slices.Contains(dependedOn[name], types.ServiceConditionCompletedSuccessfully) {
				add(name, "is a one-shot (restart: no) that no service waits for with service_completed_successfully")
			}
		} else if !hasHealthcheck(s) {
			add(name, "runs for good but has no healthcheck")
		}
		if s.Build == nil && !pinned.MatchString(s.Image) {
			add(name, "image %q is not pinned to a full version tag (x.y.z)", s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					add(name, "bind mount %s: %v", v.Target, err)
				}
			}
		}
		for _, sec := range s.Secrets {
			if f := p.Secrets[sec.Source].File; f != "" {
				if _, err := os.Stat(f); err != nil {
					add(name, "secret %s: %v", sec.Source, err)
				}
			}
		}
		errs = append(errs, checkWhitelist(p, s)...)
	}
	relays := 0
	for _, name := range names {
		s := p.Services[name]
		if s.Build == nil || filepath.ToSlash(s.Build.Dockerfile) != img.Dockerfile {
			continue
		}
		relays++
		for _, err := range checkRelay(s, img) {
			add(name, "%v", err)
		}
	}
	if relays == 0 {
		errs = append(errs, fmt.Errorf("no service builds the relay from %s", img.Dockerfile))
	}
	return errs
}

func hasHealthcheck(s types.ServiceConfig) bool {
	h := s.HealthCheck
	return h != nil && !h.Disable && len(h.Test) > 1 && h.Test[0] != "NONE"
}

func oneShot(s types.ServiceConfig) bool {
	return s.Restart == types.RestartPolicyNo || strings.HasPrefix(s.Restart, types.RestartPolicyOnFailure)
}

// checkWhitelist checks that a Dgraph alpha's --security whitelist admits
// the subnet of every network it is on: the clients it must admit are there.
func checkWhitelist(p *types.Project, s types.ServiceConfig) []error {
	var list string
	for _, arg := range s.Command {
		if v, ok := strings.CutPrefix(arg, "--security=whitelist="); ok {
			list, _, _ = strings.Cut(v, ";")
		}
	}
	if list == "" {
		return nil
	}
	var prefixes []netip.Prefix
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimSpace(e)
		if pf, err := netip.ParsePrefix(e); err == nil {
			prefixes = append(prefixes, pf)
		} else if a, err := netip.ParseAddr(e); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
		} else {
			return []error{fmt.Errorf("service %s: whitelist entry %q is neither an address nor a CIDR block", s.Name, e)}
		}
	}
	var errs []error
	for net := range s.Networks {
		n := p.Networks[net]
		if len(n.Ipam.Config) == 0 {
			errs = append(errs, fmt.Errorf("service %s: network %s has no fixed subnet, so the whitelist cannot name its clients", s.Name, net))
			continue
		}
		for _, pool := range n.Ipam.Config {
			sub, err := netip.ParsePrefix(pool.Subnet)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: network %s: subnet %q: %v", s.Name, net, pool.Subnet, err))
				continue
			}
			if !slices.ContainsFunc(prefixes, func(w netip.Prefix) bool { return w.Bits() <= sub.Bits() && w.Contains(sub.Addr()) }) {
				errs = append(errs, fmt.Errorf("service %s: its whitelist %q does not admit network %s (%s)", s.Name, list, net, sub))
			}
		}
	}
	return errs
}

// Environ returns a service's environment as KEY=VALUE, sorted.
func Environ(s types.ServiceConfig) []string {
	var out []string
	for k, v := range s.Environment {
		if v != nil {
			out = append(out, k+"="+*v)
		}
	}
	sort.Strings(out)
	return out
}

// RelayConfigFile is the configuration a relay service runs with, on this
// machine: the file bind-mounted at the image's -c path, else the image's own.
func RelayConfigFile(s types.ServiceConfig, img *RelayImage) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == img.ConfigPath {
			return v.Source
		}
	}
	return img.DefaultConfig
}

// checkRelay checks a service that runs the relay's image against what
// the image and the relay's configuration say.
func checkRelay(s types.ServiceConfig, img *RelayImage) []error {
	var errs []error
	cfgFile := RelayConfigFile(s, img)
	env := map[string]string{}
	for _, kv := range Environ(s) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	set, err := ReadRelaySettings(cfgFile, env)
	if err != nil {
		return []error{err}
	}
	if len(s.Command) > 0 || len(s.Entrypoint) > 0 {
		errs = append(errs, errors.New("overrides the image's command: leave it to the image (-c "+img.ConfigPath+")"))
	}
	// Published ports: the gateway's, and the API's on loopback only.
	gw, api := portOf(set.GatewayListen), portOf(set.APIListen)
	published := map[uint32]types.ServicePortConfig{}
	for _, pc := range s.Ports {
		published[pc.Target] = pc
		if pc.Target != gw && pc.Target != api {
			errs = append(errs, fmt.Errorf("publishes port %d, where the relay does not listen (gateway %s, api %s)", pc.Target, set.GatewayListen, set.APIListen))
		}
	}
	if _, ok := published[gw]; !ok {
		errs = append(errs, fmt.Errorf("does not publish the gateway's port %d: devices cannot connect", gw))
	}
	if pc, ok := published[api]; ok && !isLoopback(pc.HostIP) {
		errs = append(errs, fmt.Errorf("publishes the admin API (port %d) on %q: by default it must be 127.0.0.1 only", api, pc.HostIP))
	}
	// The health check asks the API where it listens.
	if !hasHealthcheck(s) {
		errs = append(errs, errors.New("has no healthcheck"))
	} else {
		probe := strings.Join(s.HealthCheck.Test, " ")
		if !strings.Contains(probe, fmt.Sprintf("127.0.0.1:%d/health", api)) {
			errs = append(errs, fmt.Errorf("healthcheck %q does not ask http://127.0.0.1:%d/health, where the API listens (%s)", probe, api, set.APIListen))
		}
		if img.Config.Config.Healthcheck != nil && !slices.Equal(s.HealthCheck.Test, img.Config.Config.Healthcheck.Test) {
			errs = append(errs, fmt.Errorf("healthcheck %q differs from the image's %q", s.HealthCheck.Test, img.Config.Config.Healthcheck.Test))
		}
	}
	// Data in the image's volume, and the volume mounted.
	var volume string
	for v := range img.Config.Config.Volumes {
		volume = v
	}
	mounted := false
	for _, v := range s.Volumes {
		if v.Target == volume && v.Type == types.VolumeTypeVolume && v.Source != "" {
			mounted = true
		}
	}
	if !mounted {
		errs = append(errs, fmt.Errorf("mounts no named volume at the image's VOLUME %s: its data would be lost with the container", volume))
	}
	for _, p := range set.DataPaths {
		if _, ok := within(volume, p); !ok {
			errs = append(errs, fmt.Errorf("the relay writes %s, outside the volume %s", p, volume))
		}
	}
	// Time to drain devices before the engine kills the relay.
	need := set.DrainTimeout + 5*time.Second
	if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= need {
		errs = append(errs, fmt.Errorf("stop_grace_period must exceed gateway.drain_timeout + 5s = %s", need))
	}
	if s.StopSignal != "" && s.StopSignal != img.Config.Config.StopSignal {
		errs = append(errs, fmt.Errorf("stop_signal %s differs from the image's %s", s.StopSignal, img.Config.Config.StopSignal))
	}
	return errs
}

func portOf(listen string) uint32 {
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return uint32(n)
}

func isLoopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// RelaySettings are the settings of the relay's configuration that deploy
// files depend on, after the environment (SWITCHYARD_*) is applied.
type RelaySettings struct {
	GatewayListen, APIListen string
	DrainTimeout             time.Duration
	// DataPaths are the paths the relay writes: the embedded store's file,
	// the compiled-module cache, the firmware folder (when set).
	DataPaths []string
	// Modules are the module paths of the wasm and process plugins.
	Modules []string
}

// ReadRelaySettings reads them from a configuration file and the
// environment, with the relay's defaults. The relay itself validates the
// whole (ValidateRelay); this is for cross-checks only.
func ReadRelaySettings(file string, env map[string]string) (*RelaySettings, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	get := func(key, def string) string {
		if v, ok := env["SWITCHYARD_"+strings.ToUpper(strings.ReplaceAll(key, ".", "__"))]; ok {
			return v
		}
		var cur any = doc
		for _, k := range strings.Split(key, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return def
			}
			cur = m[k]
		}
		if cur == nil {
			return def
		}
		return fmt.Sprint(cur)
	}
	s := &RelaySettings{
		GatewayListen: get("gateway.listen", "0.0.0.0:8080"),
		APIListen:     get("api.listen", "127.0.0.1:8081"),
	}
	if s.DrainTimeout, err = time.ParseDuration(get("gateway.drain_timeout", "10s")); err != nil {
		return nil, fmt.Errorf("%s: gateway.drain_timeout: %w", file, err)
	}
	store := get("store.embedded.path", "data/switchyard.db")
	s.DataPaths = append(s.DataPaths, store)
	s.DataPaths = append(s.DataPaths, get("wasm.cache_dir", filepath.Join(filepath.Dir(store), "wasm-cache")))
	s.DataPaths = append(s.DataPaths, get("firmware.dir", filepath.Join(filepath.Dir(store), "firmware")))
	if plugins, ok := doc["plugins"].([]any); ok {
		for _, p := range plugins {
			if m, ok := p.(map[string]any); ok && m["module"] != nil {
				s.Modules = append(s.Modules, fmt.Sprint(m["module"]))
			}
		}
	}
	return s, nil
}

// ValidateRelay runs `switchyard validate -c file` with env as the relay's
// whole environment (besides PATH): what the relay makes of that file and
// those SWITCHYARD_* variables, every problem with its source.
func ValidateRelay(bin, file string, env []string) error {
	cmd := exec.Command(bin, "validate", "-c", file)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("switchyard validate -c %s: %v\n%s", file, err, out)
	}
	return nil
}
