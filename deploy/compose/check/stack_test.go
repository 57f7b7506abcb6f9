package deploycheck

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// The stacks run on this machine, without containers: each service's
// compose definition (command, entrypoint, environment, mounts, health
// check) and, for the relay, its image's (entrypoint, command, working
// folder, health check, stop signal) are started as host processes after a
// translation, and nothing else changes:
//
//   - a container's address (service:port, or 127.0.0.1:port inside it)
//     becomes a free loopback port: Dgraph gets --port_offset and
//     --bindall=false, Mosquitto's listeners a port and 127.0.0.1, the
//     relay SWITCHYARD_GATEWAY__LISTEN and SWITCHYARD_API__LISTEN;
//   - a mount's target becomes a temporary folder (named volumes) or the
//     mounted file, translated the same way when it is configuration
//     (.yaml, .conf); a secret becomes its file;
//   - the image's files become those of the Dockerfile's build stage run
//     here (the plugins), the relay binary the one built for this machine
//     from the same sources (the image's is arm64, see TestBuildStage).
//
// Anything container-only left after the translation fails the test.

// translation maps a service's container world to this machine.
type translation struct {
	pairs []string          // old, new: longest old first
	ports map[string]string // container port → host port, for "-p PORT"
}

func newTranslation() *translation { return &translation{ports: map[string]string{}} }

func (tr *translation) add(old, new string) {
	tr.pairs = append(tr.pairs, old, new)
	// Longest first, so that a path inside a mount wins over the mount.
	type pair struct{ o, n string }
	var ps []pair
	for i := 0; i < len(tr.pairs); i += 2 {
		ps = append(ps, pair{tr.pairs[i], tr.pairs[i+1]})
	}
	sort.SliceStable(ps, func(i, j int) bool { return len(ps[i].o) > len(ps[j].o) })
	tr.pairs = tr.pairs[:0]
	for _, p := range ps {
		tr.pairs = append(tr.pairs, p.o, p.n)
	}
}

// port maps a port the service listens on inside its container.
func (tr *translation) port(container, host int) {
	c, h := strconv.Itoa(container), strconv.Itoa(host)
	tr.ports[c] = h
	tr.add("127.0.0.1:"+c, "127.0.0.1:"+h)
	tr.add("localhost:"+c, "127.0.0.1:"+h)
}

func (tr *translation) s(x string) string { return strings.NewReplacer(tr.pairs...).Replace(x) }

func (tr *translation) argv(a []string) []string {
	out := make([]string, len(a))
	for i, x := range a {
		if h, ok := tr.ports[x]; ok && i > 0 && a[i-1] == "-p" {
			out[i] = h
			continue
		}
		out[i] = tr.s(x)
	}
	return out
}

// containerOnly are what no process here may still name after translation.
var containerOnly = regexp.MustCompile(`dgraph-(zero|alpha):|mosquitto:18|/dgraph/|/run/secrets/|/mosquitto/|/etc/switchyard|/var/lib/switchyard|/usr/local/lib/switchyard|/usr/local/bin/`)

func checkTranslated(t *testing.T, what string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if m := containerOnly.FindString(p); m != "" {
			t.Fatalf("%s: %q still names %q after the translation to this machine", what, p, m)
		}
	}
}

var listenerLine = regexp.MustCompile(`(?m)^listener (\d+)$`)

// translateFile writes a translated copy of a mounted configuration file.
func translateFile(t *testing.T, tr *translation, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	s := tr.s(string(b))
	s = listenerLine.ReplaceAllStringFunc(s, func(l string) string {
		p := strings.TrimPrefix(l, "listener ")
		h, ok := tr.ports[p]
		if !ok {
			t.Fatalf("%s: listener %s: no host port for it", src, p)
		}
		return "listener " + h + " 127.0.0.1"
	})
	var lines []string // comments may name the container's paths
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
		}
	}
	checkTranslated(t, src, lines...)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mounts maps a service's mounts and secrets to this machine (in dir).
func mounts(t *testing.T, tr *translation, p *types.Project, s types.ServiceConfig, dir string) {
	t.Helper()
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeVolume:
			host := filepath.Join(dir, v.Source)
			if err := os.MkdirAll(host, 0o755); err != nil {
				t.Fatal(err)
			}
			tr.add(v.Target, host)
		case types.VolumeTypeBind:
			if ext := filepath.Ext(v.Source); ext == ".yaml" || ext == ".conf" {
				continue // translated by the caller, once every path is known
			}
			tr.add(v.Target, v.Source)
		default:
			t.Fatalf("service %s: mount type %s is not emulated", s.Name, v.Type)
		}
	}
	for _, sec := range s.Secrets {
		target := sec.Target
		if target == "" {
			target = "/run/secrets/" + sec.Source
		}
		tr.add(target, p.Secrets[sec.Source].File)
	}
}

// configMounts writes the translated copies of a service's mounted
// configuration files and maps their targets to them.
func configMounts(t *testing.T, tr *translation, s types.ServiceConfig, dir string) {
	t.Helper()
	for _, v := range s.Volumes {
		if ext := filepath.Ext(v.Source); v.Type == types.VolumeTypeBind && (ext == ".yaml" || ext == ".conf") {
			dst := filepath.Join(dir, "mounted", filepath.Base(v.Target))
			translateFile(t, tr, v.Source, dst)
			tr.add(v.Target, dst)
		}
	}
}

// relayRun is the relay of a stack, started here as its image would run it.
type relayRun struct {
	proc    *proc
	api     string // http://127.0.0.1:port
	env     []string
	volume  string // its data volume, here
	home    string // $HOME: a read-only root file system in the stacks
	etc     string // where its configuration is, here
	key     string // the operator key
	stopSig syscall.Signal
}

// startRelay starts the relay of service s with the image's entrypoint,
// command, working folder and environment.
func startRelay(t *testing.T, tr *translation, p *types.Project, s types.ServiceConfig, img *RelayImage, files *ImageFiles, dir string) *relayRun {
	t.Helper()
	r := &relayRun{home: filepath.Join(dir, "home"), etc: filepath.Join(dir, "etc")}
	envMap := map[string]string{}
	for _, kv := range Environ(s) {
		k, v, _ := strings.Cut(kv, "=")
		envMap[k] = v
	}
	set, err := ReadRelaySettings(RelayConfigFile(s, img), envMap)
	if err != nil {
		t.Fatal(err)
	}
	// Where it listens in its container, here on loopback.
	gw, api := freePort(t), freePort(t)
	tr.port(int(portOf(set.GatewayListen)), gw)
	tr.port(int(portOf(set.APIListen)), api)
	r.api = fmt.Sprintf("http://127.0.0.1:%d", api)
	plugins, err := files.Resolve("/usr/local/lib/switchyard/plugins")
	if err != nil {
		t.Fatal(err)
	}
	tr.add("/usr/local/lib/switchyard/plugins", plugins)
	tr.add(img.Config.Config.Entrypoint[0], relayBin(t))
	mounts(t, tr, p, s, filepath.Join(dir, "volumes"))
	// The image's own configuration, unless the service mounts one.
	if RelayConfigFile(s, img) == img.DefaultConfig {
		dst := filepath.Join(r.etc, "plugins.yaml")
		tr.add(img.ConfigPath, dst)
		translateFile(t, tr, img.DefaultConfig, dst)
	} else {
		configMounts(t, tr, s, r.etc)
	}
	for v := range img.Config.Config.Volumes {
		r.volume = tr.s(v)
		if r.volume == v {
			// An anonymous volume: the image's folder, empty.
			r.volume = filepath.Join(dir, "volumes", "anonymous")
			tr.add(v, r.volume)
		}
	}
	for _, d := range []string{r.home, r.volume, filepath.Join(dir, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r.env = append(slices.Clone(img.Config.Config.Env), "HOME="+r.home, "TMPDIR="+filepath.Join(dir, "tmp"))
	for _, kv := range Environ(s) {
		r.env = append(r.env, tr.s(kv))
	}
	// The container's listeners (0.0.0.0:8080, 0.0.0.0:8081) on loopback.
	r.env = append(r.env, fmt.Sprintf("SWITCHYARD_GATEWAY__LISTEN=127.0.0.1:%d", gw), fmt.Sprintf("SWITCHYARD_API__LISTEN=127.0.0.1:%d", api))
	argv := tr.argv(append(slices.Clone(img.Config.Config.Entrypoint), img.Config.Config.Cmd...))
	cwd := tr.s(img.Config.Config.WorkingDir)
	checkTranslated(t, "relay", append(append([]string{cwd}, argv...), r.env...)...)
	r.stopSig = map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT}[img.Config.Config.StopSignal]
	if r.stopSig == 0 {
		t.Fatalf("the image's STOPSIGNAL %q", img.Config.Config.StopSignal)
	}
	r.proc = startProc(t, s.Name, cwd, r.env, argv...)
	// The compose health check, then the image's.
	probe(t, s.Name, tr.argv(s.HealthCheck.Test), r.env, healthWait(s.HealthCheck), r.proc)
	probe(t, s.Name+" (image HEALTHCHECK)", tr.argv(img.Config.Config.Healthcheck.Test), r.env, 10*time.Second, r.proc)
	return r
}

// stop stops the relay as the engine does, within the stop grace period,
// and wants exit status 0.
func (r *relayRun) stop(t *testing.T, s types.ServiceConfig) {
	t.Helper()
	grace := time.Duration(*s.StopGracePeriod)
	if !r.proc.stop(r.stopSig, grace) {
		t.Fatalf("the relay did not stop within stop_grace_period %s", grace)
	}
	// stop repeats the signal each second; the relay ignores repeats.
	if r.proc.err != nil {
		t.Fatalf("the relay exited with %v after %s:\n%s", r.proc.err, r.stopSig, tail(r.proc.out.String(), 20))
	}
}

func healthWait(h *types.HealthCheckConfig) time.Duration {
	d := 30 * time.Second
	if h.StartPeriod != nil && h.Interval != nil && h.Retries != nil {
		d = time.Duration(*h.StartPeriod) + time.Duration(*h.Interval)*time.Duration(*h.Retries)
	}
	return min(max(d, 20*time.Second), 2*time.Minute)
}

// TestLocalStackOnHost runs the local stack's relay as its image would:
// healthy by both health checks, the operator key in its log, JSON logs,
// the API answering, everything it writes in its volume, and a clean exit
// on the image's stop signal within the stop grace period.
func TestLocalStackOnHost(t *testing.T) {
	t.Parallel()
	img := relayImage(t)
	_, files := buildStage(t)
	p, err := LoadCompose(context.Background(), repoFile(t, "deploy/compose/local/compose.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Services["switchyard"]
	dir := t.TempDir()
	r := startRelay(t, newTranslation(), p, s, img, files, dir)

	// The key is printed once: docker compose logs shows it.
	banner := regexp.MustCompile(`generated the operator API key[^\n]*\n\s*\n\s+(\S+)`)
	m := banner.FindStringSubmatch(r.proc.out.String())
	if m == nil {
		t.Fatalf("no operator key in the log:\n%s", tail(r.proc.out.String(), 20))
	}
	if code, body := call(t, "GET", r.api+"/api/v1/tenants", m[1], ""); code != 200 {
		t.Fatalf("GET /api/v1/tenants with the logged key: %d %s", code, body)
	}
	if code, body := call(t, "GET", r.api+"/ready", "", ""); code != 200 {
		t.Fatalf("/ready: %d %s", code, body)
	}
	r.stop(t, s)

	// Logs: JSON lines (log.format json), besides the key's banner.
	jsonLines := 0
	for _, line := range strings.Split(r.proc.out.String(), "\n") {
		if strings.HasPrefix(line, "{") {
			var v map[string]any
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Errorf("log line is not JSON: %q", line)
			}
			jsonLines++
		}
	}
	if jsonLines < 3 {
		t.Errorf("only %d JSON log lines:\n%s", jsonLines, r.proc.out.String())
	}
	// Written: the volume only (the stack's root file system is read-only).
	for _, want := range []string{"switchyard.db", "wasm-cache"} {
		if _, err := os.Stat(filepath.Join(r.volume, want)); err != nil {
			t.Errorf("the volume has no %s: %v", want, err)
		}
	}
	if ents, _ := os.ReadDir(r.home); len(ents) > 0 {
		t.Errorf("the relay wrote into $HOME, outside its volume: %v", ents)
	}
	if ents, _ := os.ReadDir(r.etc); len(ents) != 1 {
		t.Errorf("the relay wrote beside its configuration: %v", ents)
	}
}

// dgraphOffset picks a port offset whose five Dgraph ports are free on
// loopback (as graph/dgraph/dgraphtest does).
func dgraphOffset(t *testing.T) int {
	t.Helper()
	for range 200 {
		off := 100 + rand.IntN(200)*100
		free := true
		for _, p := range []int{5080, 6080, 7080, 8080, 9080} {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+off))
			if err != nil {
				free = false
				break
			}
			l.Close()
		}
		if free {
			return off
		}
	}
	t.Fatal("no free port offset for Dgraph")
	return 0
}

// startOrder is the services in an order their depends_on allow.
func startOrder(t *testing.T, p *types.Project) []string {
	t.Helper()
	var order []string
	done := map[string]bool{}
	var visit func(string, []string)
	visit = func(n string, path []string) {
		if done[n] {
			return
		}
		if slices.Contains(path, n) {
			t.Fatalf("depends_on cycle: %v", append(path, n))
		}
		deps := slices.Sorted(func(yield func(string) bool) {
			for d := range p.Services[n].DependsOn {
				if !yield(d) {
					return
				}
			}
		})
		for _, d := range deps {
			visit(d, append(path, n))
		}
		done[n] = true
		order = append(order, n)
	}
	names := make([]string, 0, len(p.Services))
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		visit(n, nil)
	}
	return order
}

// TestFullStackOnHost starts the full stack here, in its depends_on order,
// each service gated on the health check (or completion) the next one
// waits for: Dgraph zero and alpha from their compose commands (ACL with
// the secret init.sh made, the whitelist), the one-shot that gives groot
// the password of .env (then again: it must say so and do nothing),
// Mosquitto from its command and configuration, and the relay with its
// mounted configuration and environment. The relay must be ready on Dgraph,
// create a tenant (a namespace, as groot with the new password), and its
// MQTT collector must be connected to Mosquitto, whose LAN listener wants
// the password.
func TestFullStackOnHost(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(filepath.Join(root, "scripts", "dgraph.sh"), "bin").Output()
	dgraph := strings.TrimSpace(string(out))
	need(t, err == nil && dgraph != "", "the Dgraph server (scripts/dgraph.sh bin; make dgraph-bin)")
	mosq, err := exec.LookPath("mosquitto")
	if err != nil {
		mosq = "/usr/sbin/mosquitto"
	}
	_, err = os.Stat(mosq)
	_, perr := exec.LookPath("mosquitto_pub")
	need(t, err == nil && perr == nil, "Mosquitto and its clients (scripts/mosquitto.sh bin)")
	need(t, os.Getuid() == 0, "root: Mosquitto is started as its image starts it, as root, and drops to its user")
	for _, tool := range []string{"curl", "jq", "bash"} {
		_, err := exec.LookPath(tool)
		need(t, err == nil, tool+" (dgraph-groot.sh and the Dgraph health checks use it)")
	}

	img := relayImage(t)
	_, files := buildStage(t)
	stack, env := fullStack(t)
	p, err := LoadCompose(context.Background(), filepath.Join(stack, "compose.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Mosquitto drops to its own user, which must reach its files.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}

	off := dgraphOffset(t)
	mqLAN, mqStack := freePort(t), freePort(t)
	network := func(tr *translation) {
		for _, hp := range []struct {
			host string
			port int
		}{{"dgraph-zero", 5080}, {"dgraph-alpha", 7080}, {"dgraph-alpha", 8080}, {"dgraph-alpha", 9080}} {
			tr.add(fmt.Sprintf("%s:%d", hp.host, hp.port), fmt.Sprintf("127.0.0.1:%d", hp.port+off))
		}
		tr.add("mosquitto:1883", fmt.Sprintf("127.0.0.1:%d", mqLAN))
		tr.add("mosquitto:1884", fmt.Sprintf("127.0.0.1:%d", mqStack))
	}

	running := map[string]*proc{}
	var relay *relayRun
	var groot func() string
	var order []string
	for _, name := range startOrder(t, p) {
		s := p.Services[name]
		order = append(order, name)
		tr := newTranslation()
		network(tr)
		sdir := filepath.Join(dir, "svc-"+name) // not the container paths checkTranslated looks for
		var argv []string
		var cwd string
		env := []string{hostPath()}
		switch {
		case s.Build != nil:
			relay = startRelay(t, tr, p, s, img, files, sdir)
			running[name] = relay.proc
			continue
		case strings.HasPrefix(s.Image, "dgraph/dgraph:") && len(s.Command) > 1 && s.Command[0] == "dgraph":
			for _, port := range []int{5080, 6080, 7080, 8080, 9080} {
				tr.port(port, port+off)
			}
			mounts(t, tr, p, s, sdir)
			argv = append([]string{dgraph}, tr.argv(s.Command[1:])...)
			// Inside the container it binds every interface on Dgraph's ports.
			argv = append(argv, fmt.Sprintf("--port_offset=%d", off), "--bindall=false")
			cwd = tr.s("/dgraph")
		case strings.HasPrefix(s.Image, "dgraph/dgraph:"):
			mounts(t, tr, p, s, sdir)
			argv = tr.argv(s.Entrypoint)
			cwd = sdir
		case strings.HasPrefix(s.Image, "eclipse-mosquitto:"):
			tr.ports["1883"], tr.ports["1884"] = strconv.Itoa(mqLAN), strconv.Itoa(mqStack)
			tr.add("127.0.0.1:1884", fmt.Sprintf("127.0.0.1:%d", mqStack))
			mounts(t, tr, p, s, sdir)
			configMounts(t, tr, s, sdir)
			// The image's entrypoint gives /mosquitto to the mosquitto user.
			if out, err := exec.Command("chown", "-R", "mosquitto:mosquitto", sdir).CombinedOutput(); err != nil {
				t.Fatalf("chown: %v %s", err, out)
			}
			argv = tr.argv(append(slices.Clone([]string(s.Entrypoint)), s.Command...))
			cwd = sdir
		default:
			t.Fatalf("service %s: image %s is not emulated", name, s.Image)
		}
		for _, kv := range Environ(s) {
			env = append(env, tr.s(kv))
		}
		if err := os.MkdirAll(cwd, 0o755); err != nil {
			t.Fatal(err)
		}
		checkTranslated(t, name, append(append([]string{cwd}, argv...), env...)...)
		if oneShot(s) {
			run := func() string {
				ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
				cmd.Dir, cmd.Env = cwd, env
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("one-shot %s (%s): %v\n%s", name, strings.Join(argv, " "), err, out)
				}
				return string(out)
			}
			if name == "dgraph-groot" {
				groot = run
			}
			t.Logf("%s: %s", name, strings.TrimSpace(run()))
			continue
		}
		pr := startProc(t, name, cwd, env, argv...)
		running[name] = pr
		if hasHealthcheck(s) {
			probe(t, name, tr.argv(s.HealthCheck.Test), env, healthWait(s.HealthCheck), pr)
		}
	}
	t.Logf("started in this order: %s", strings.Join(order, " → "))
	if relay == nil || groot == nil {
		t.Fatal("the stack has no relay or no dgraph-groot service")
	}

	key := env["SWITCHYARD_OPERATOR_KEY"]
	if code, body := call(t, "GET", relay.api+"/ready", "", ""); code != 200 {
		t.Fatalf("/ready: %d %s", code, body)
	}
	if code, body := call(t, "POST", relay.api+"/api/v1/tenants", key, `{"id":"acme","name":"Acme"}`); code != 201 {
		t.Fatalf("creating a tenant (a Dgraph namespace): %d %s", code, body)
	}
	if code, body := call(t, "GET", relay.api+"/api/v1/tenants", key, ""); code != 200 || !strings.Contains(body, `"acme"`) {
		t.Fatalf("GET /api/v1/tenants: %d %s", code, body)
	}
	// groot has the new password now: the one-shot says so and changes nothing.
	if out := groot(); !strings.Contains(out, "already has") {
		t.Errorf("dgraph-groot a second time: %s", out)
	}
	// Mosquitto: the relay's collector has subscribed on the stack's
	// listener (its JSON log says so: Mosquitto's own log is block-buffered
	// on a pipe); the LAN listener takes MQTT_USERNAME/MQTT_PASSWORD and
	// nothing else.
	subscribed := func() bool {
		for _, l := range strings.Split(relay.proc.out.String(), "\n") {
			if strings.Contains(l, `"mqtt subscribed"`) && strings.Contains(l, "mqtt-sensors") {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(15 * time.Second)
	for !subscribed() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if !subscribed() {
		t.Errorf("the relay's MQTT collector mqtt-sensors never subscribed on Mosquitto")
	}
	pub := func(args ...string) error {
		a := append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(mqLAN), "-t", "sensors/kitchen/temp", "-m", `{"value":21.5}`, "-q", "1"}, args...)
		return exec.Command("mosquitto_pub", a...).Run()
	}
	if err := pub("-u", env["MQTT_USERNAME"], "-P", env["MQTT_PASSWORD"]); err != nil {
		t.Errorf("publishing on the LAN listener with MQTT_USERNAME/MQTT_PASSWORD: %v", err)
	}
	if err := pub(); err == nil {
		t.Error("the LAN listener took an anonymous client")
	}

	relay.stop(t, p.Services["switchyard"])
	// The others in reverse order (their cleanup would do it too).
	for _, name := range slices.Backward(order) {
		if pr := running[name]; pr != nil && name != "switchyard" {
			pr.stop(syscall.SIGTERM, 20*time.Second)
		}
	}
}
