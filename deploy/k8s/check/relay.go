package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Validator runs `switchyard validate` on a configuration file with the given
// SWITCHYARD_* environment (and nothing else of the checker's) and returns
// its output and whether the relay accepted the file.
type Validator func(ctx context.Context, file string, env []string) (out string, ok bool, err error)

// BinaryValidator runs the relay binary at bin.
func BinaryValidator(bin string) Validator {
	return func(ctx context.Context, file string, env []string) (string, bool, error) {
		return runValidate(ctx, exec.CommandContext(ctx, bin, "validate", "-c", file), env)
	}
}

// GoRunValidator runs `go run ./runtime/cmd/switchyard validate` in the
// repository at repo.
func GoRunValidator(repo string) Validator {
	return func(ctx context.Context, file string, env []string) (string, bool, error) {
		cmd := exec.CommandContext(ctx, "go", "run", "./runtime/cmd/switchyard", "validate", "-c", file)
		cmd.Dir = repo
		// go itself needs its own environment; the relay reads SWITCHYARD_* only.
		var keep []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "SWITCHYARD_") {
				keep = append(keep, kv)
			}
		}
		cmd.Env = append(keep, env...)
		return runCmd(cmd)
	}
}

func runValidate(ctx context.Context, cmd *exec.Cmd, env []string) (string, bool, error) {
	// Not the checker's environment: a SWITCHYARD_* variable of the
	// developer's shell must not change the verdict.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	return runCmd(cmd)
}

func runCmd(cmd *exec.Cmd) (string, bool, error) {
	out, err := cmd.CombinedOutput()
	if err != nil {
		if _, exited := err.(*exec.ExitError); exited {
			return string(out), false, nil
		}
		return string(out), false, fmt.Errorf("switchyard validate: %w", err)
	}
	return string(out), true, nil
}

// Placeholders stand for Secret values when the configuration is validated:
// valid for the relay, so that a problem found is the manifests'.
var (
	placeholderSecret        = "k8s-check-placeholder-of-a-secret-value"
	placeholderEncryptionKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
)

// Relay is the relay's configuration as a pod gets it: the ConfigMap's
// plugins.yaml under the container's SWITCHYARD_* environment.
type Relay struct {
	// File is plugins.yaml as the ConfigMap holds it.
	File []byte
	// FileName names it in messages: ConfigMap name and key.
	FileName string
	// Env is the container's SWITCHYARD_* environment, Secrets replaced by
	// placeholders.
	Env []string

	tree  map[string]any       // the file
	envAt map[string][2]string // key path → variable name, value
}

// NewRelay parses the file; env holds NAME=VALUE pairs.
func NewRelay(file []byte, fileName string, env []string) (*Relay, error) {
	r := &Relay{File: file, FileName: fileName, Env: env, tree: map[string]any{}, envAt: map[string][2]string{}}
	if err := yaml.Unmarshal(file, &r.tree); err != nil {
		return nil, fmt.Errorf("%s: %w", fileName, err)
	}
	if r.tree == nil {
		r.tree = map[string]any{}
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SWITCHYARD_") || name == "SWITCHYARD_ENCRYPTION_KEY" {
			continue
		}
		p := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "SWITCHYARD_"), "__", "."))
		r.envAt[p] = [2]string{name, value}
	}
	return r, nil
}

// Lookup returns the value at a key path (gateway.drain_timeout), from the
// environment when it sets it, else from the file, and where it came from;
// ok is false when neither sets it.
func (r *Relay) Lookup(p string) (val any, from string, ok bool) {
	if e, set := r.envAt[p]; set {
		return e[1], "env " + e[0], true
	}
	var cur any = r.tree
	for _, seg := range strings.Split(p, ".") {
		m, isMap := cur.(map[string]any)
		if !isMap {
			return nil, "", false
		}
		if cur, ok = m[seg]; !ok {
			return nil, "", false
		}
	}
	return cur, r.FileName, true
}

// String returns the value at p as text, or def when nothing sets it.
func (r *Relay) String(p, def string) string {
	v, _, ok := r.Lookup(p)
	if !ok || v == nil {
		return def
	}
	return fmt.Sprint(v)
}

// Int returns the value at p as an integer, or def.
func (r *Relay) Int(p string, def int) (int, error) {
	v, _, ok := r.Lookup(p)
	if !ok {
		return def, nil
	}
	switch n := v.(type) {
	case float64:
		return int(n), nil
	case string:
		return strconv.Atoi(n)
	}
	return 0, fmt.Errorf("%s: %v is not a number", p, v)
}

// Duration returns the value at p and where it was set; set is false when
// neither the file nor the environment names it.
func (r *Relay) Duration(p string) (d time.Duration, from string, set bool, err error) {
	v, from, ok := r.Lookup(p)
	if !ok {
		return 0, "", false, nil
	}
	s, isString := v.(string)
	if !isString {
		return 0, from, true, fmt.Errorf("%s (%s): %v is not a duration such as \"10s\"", p, from, v)
	}
	d, err = time.ParseDuration(s)
	if err != nil {
		return 0, from, true, fmt.Errorf("%s (%s): %w", p, from, err)
	}
	return d, from, true, nil
}

// The relay's defaults for the keys the checker reads (runtime/config
// Default; plugins.yaml documents them).
const (
	defaultGatewayListen  = "0.0.0.0:8080"
	defaultAPIListen      = "127.0.0.1:8081"
	defaultStorePath      = "data/switchyard.db"
	defaultMaxConnections = 19000
)

// Port returns the port of the listen address at p (gateway.listen).
func (r *Relay) Port(p, def string) (int32, string, error) {
	addr := r.String(p, def)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, "", fmt.Errorf("%s %q: %w", p, addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0, "", fmt.Errorf("%s %q: port: %w", p, addr, err)
	}
	return int32(n), host, nil
}

// Backend is store.backend.
func (r *Relay) Backend() string { return r.String("store.backend", "embedded") }

// WritablePaths lists the folders the relay writes, each with the key that
// puts it there: the store's folder (with uploaded modules), the WASM cache
// and the firmware folder (runtime/config: CacheDirOrDefault,
// ModulesDirOrDefault, FirmwareDirOrDefault), and the temporary folder.
func (r *Relay) WritablePaths() [][2]string {
	storeDir := path.Dir(r.String("store.embedded.path", defaultStorePath))
	cache := r.String("wasm.cache_dir", "")
	if cache == "" {
		cache = path.Join(storeDir, "wasm-cache")
	}
	fw := r.String("firmware.dir", "")
	if fw == "" {
		fw = path.Join(storeDir, "firmware")
	}
	return [][2]string{
		{"store.embedded.path (the store's folder; uploaded modules go next to it)", storeDir},
		{"wasm.cache_dir", cache},
		{"firmware.dir", fw},
		{"the temporary folder (process plugins' sockets)", "/tmp"},
	}
}

// SigningKey is firmware.signing_key, or "" when it takes its default in
// the firmware folder.
func (r *Relay) SigningKey() string { return r.String("firmware.signing_key", "") }

// DgraphPorts lists the ports of the Dgraph endpoints the relay dials
// (store.dgraph.addresses and store.dgraph.http), with the key naming each.
func (r *Relay) DgraphPorts() ([][2]string, error) {
	var out [][2]string
	v, _, _ := r.Lookup("store.dgraph.addresses")
	addrs, _ := v.([]any)
	if v == nil {
		addrs = []any{"127.0.0.1:9180"}
	}
	for _, a := range addrs {
		_, port, err := net.SplitHostPort(fmt.Sprint(a))
		if err != nil {
			return nil, fmt.Errorf("store.dgraph.addresses %v: %w", a, err)
		}
		out = append(out, [2]string{"store.dgraph.addresses " + fmt.Sprint(a), port})
	}
	u := r.String("store.dgraph.http", "http://127.0.0.1:8180")
	hostport := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	hostport, _, _ = strings.Cut(hostport, "/")
	_, port, err := net.SplitHostPort(hostport)
	if err != nil {
		port = "80"
		if strings.HasPrefix(u, "https://") {
			port = "443"
		}
	}
	return append(out, [2]string{"store.dgraph.http " + u, port}), nil
}

// Validate runs the relay's own validation on the file, named as the
// container names it, with the container's environment.
func (r *Relay) Validate(ctx context.Context, v Validator, containerPath string) []string {
	dir, err := os.MkdirTemp("", "k8s-check-")
	if err != nil {
		return []string{err.Error()}
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, path.Base(containerPath))
	if err := os.WriteFile(file, r.File, 0o600); err != nil {
		return []string{err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, ok, err := v(ctx, file, r.Env)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v\n%s", r.FileName, err, out)}
	}
	if ok {
		return nil
	}
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			problems = append(problems, "switchyard validate: "+strings.ReplaceAll(line, file, r.FileName))
		}
	}
	if len(problems) == 0 {
		problems = []string{"switchyard validate refused " + r.FileName + " without saying why"}
	}
	return problems
}

var headroomPattern = regexp.MustCompile(`(?m)^const stopHeadroom = (\d+) \* time\.Second`)

// StopHeadroom reads how long the relay's shutdown may take beyond
// gateway.drain_timeout from its main package, so that the check follows
// the code.
func StopHeadroom(repo string) (time.Duration, error) {
	file := filepath.Join(repo, "runtime", "cmd", "switchyard", "main.go")
	src, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("the relay's shutdown headroom: %w", err)
	}
	m := headroomPattern.FindSubmatch(src)
	if m == nil {
		return 0, fmt.Errorf("the relay's shutdown headroom: no %q in %s: update the checker", "const stopHeadroom = N * time.Second", file)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return time.Duration(n) * time.Second, nil
}
