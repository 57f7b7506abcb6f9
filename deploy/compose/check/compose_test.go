package deploycheck

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestComposeLocal: the local stack loads under the compose specification
// (schema, interpolation, consistency), passes the cross-checks, and the
// relay accepts its configuration with the environment the stack gives it.
func TestComposeLocal(t *testing.T) {
	img := relayImage(t)
	p, err := LoadCompose(context.Background(), repoFile(t, "deploy/compose/local/compose.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range CheckStack(p, img) {
		t.Error(err)
	}
	s := p.Services["switchyard"]
	if err := ValidateRelay(relayBin(t), RelayConfigFile(s, img), Environ(s)); err != nil {
		t.Error(err)
	}
	// An operator key of the operator's own, set as the file says.
	s.Environment["SWITCHYARD_API__OPERATOR_KEY"] = ptr("syop_0123456789abcdef01234567")
	if err := ValidateRelay(relayBin(t), RelayConfigFile(s, img), Environ(s)); err != nil {
		t.Error(err)
	}
}

// TestComposeFull: the full stack, with the .env and secret init.sh makes,
// loads and passes the cross-checks; the relay accepts its mounted
// configuration with the Dgraph settings of its environment; init.sh keeps
// what it made; the full stack's configuration is the container's plus the
// Dgraph addresses and the MQTT collector.
func TestComposeFull(t *testing.T) {
	img := relayImage(t)
	dir, env := fullStack(t)
	for _, k := range []string{"DGRAPH_GROOT_PASSWORD", "SWITCHYARD_ENCRYPTION_KEY", "SWITCHYARD_OPERATOR_KEY", "MQTT_USERNAME", "MQTT_PASSWORD"} {
		if env[k] == "" {
			t.Errorf("init.sh wrote no %s", k)
		}
	}
	hmac, err := os.ReadFile(filepath.Join(dir, "secrets", "dgraph-hmac"))
	if err != nil || len(strings.TrimSpace(string(hmac))) < 32 {
		t.Errorf("secrets/dgraph-hmac: %d characters (%v), Dgraph wants 32 or more", len(hmac), err)
	}
	p, err := LoadCompose(context.Background(), filepath.Join(dir, "compose.yaml"), env)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range CheckStack(p, img) {
		t.Error(err)
	}
	s := p.Services["switchyard"]
	if got := RelayConfigFile(s, img); got != filepath.Join(dir, "plugins.yaml") {
		t.Errorf("the relay's configuration is %s, want the mounted plugins.yaml", got)
	}
	if err := ValidateRelay(relayBin(t), RelayConfigFile(s, img), Environ(s)); err != nil {
		t.Error(err)
	}
	if v := *s.Environment["SWITCHYARD_STORE__BACKEND"]; v != "dgraph" {
		t.Errorf("SWITCHYARD_STORE__BACKEND=%q", v)
	}
	// Dgraph: the version make dgraph-up and the tests run (deploy/dgraph/go.mod).
	pin := regexp.MustCompile(`(?m)^replace github.com/dgraph-io/dgraph/v25 => \S+ (v\S+)$`).FindSubmatch(readRepo(t, "deploy/dgraph/go.mod"))
	if pin == nil {
		t.Fatal("deploy/dgraph/go.mod: no replace line with Dgraph's version")
	}
	for name, svc := range p.Services {
		if strings.HasPrefix(svc.Image, "dgraph/dgraph:") && svc.Image != "dgraph/dgraph:"+string(pin[1]) {
			t.Errorf("service %s: image %s, but deploy/dgraph/go.mod pins Dgraph %s", name, svc.Image, pin[1])
		}
	}

	// init.sh again: nothing changes.
	before, _ := os.ReadFile(filepath.Join(dir, ".env"))
	if out, err := runIn(dir, filepath.Join(dir, "init.sh")); err != nil {
		t.Fatalf("init.sh again: %v\n%s", err, out)
	}
	after, _ := os.ReadFile(filepath.Join(dir, ".env"))
	if string(before) != string(after) {
		t.Error("init.sh changed an existing .env")
	}

	// The sections both files have stay the same.
	var container, full map[string]any
	mustYAML(t, repoFile(t, "deploy/docker/plugins.yaml"), &container)
	mustYAML(t, repoFile(t, "deploy/compose/full/plugins.yaml"), &full)
	for _, k := range []string{"gateway", "api", "wasm", "firmware", "log", "devices"} {
		if !reflect.DeepEqual(container[k], full[k]) {
			t.Errorf("deploy/compose/full/plugins.yaml: %s differs from deploy/docker/plugins.yaml's", k)
		}
	}
	store := full["store"].(map[string]any)
	if !reflect.DeepEqual(store["embedded"], container["store"].(map[string]any)["embedded"]) {
		t.Error("deploy/compose/full/plugins.yaml: store.embedded differs from deploy/docker/plugins.yaml's")
	}
}

// TestComposeFullNeedsInit: without init.sh's .env the full stack does not
// load, and says what to run.
func TestComposeFullNeedsInit(t *testing.T) {
	_, err := LoadCompose(context.Background(), repoFile(t, "deploy/compose/full/compose.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "run deploy/compose/full/init.sh first") {
		t.Fatalf("want an error saying to run init.sh, got %v", err)
	}
}

// TestComposeBroken: each check fails on a file broken the way it guards
// against.
func TestComposeBroken(t *testing.T) {
	img := relayImage(t)
	dir, env := fullStack(t)
	local := string(readRepo(t, "deploy/compose/local/compose.yaml"))
	full := string(readRepo(t, "deploy/compose/full/compose.yaml"))
	for _, tc := range []struct {
		name     string
		full     bool
		old, new string
		want     string // in the error of loading, checking or validating
	}{
		{"unknown key", false, "    restart: unless-stopped\n", "    restart: unless-stopped\n    restrat: always\n", "restrat"},
		{"wrong type", false, "stop_grace_period: 30s", "stop_grace_period: [30s]", "stop_grace_period"},
		{"undefined volume", false, "switchyard-data:/var/lib/switchyard", "switchyrd-data:/var/lib/switchyard", "switchyrd-data"},
		{"healthy without healthcheck", true, "      test: [\"CMD\", \"curl\", \"-fsS\", \"http://127.0.0.1:6080/health\"]\n", "      disable: true\n", "has no healthcheck"},
		{"started only", true, "      mosquitto:\n        condition: service_healthy", "      mosquitto:\n        condition: service_started", "only being started"},
		{"one-shot restarts", true, "    restart: \"no\"", "    restart: unless-stopped", "restarts"},
		{"floating tag", true, "eclipse-mosquitto:2.0.22", "eclipse-mosquitto:2", "not pinned"},
		{"API on every interface", false, "${SWITCHYARD_API_BIND:-127.0.0.1}", "${SWITCHYARD_API_BIND:-0.0.0.0}", "admin API"},
		{"health on the wrong port", false, "http://127.0.0.1:8081/health\"]", "http://127.0.0.1:8082/health\"]", "healthcheck"},
		{"no volume", false, "    volumes:\n      - switchyard-data:/var/lib/switchyard\n", "", "VOLUME"},
		{"short grace", false, "stop_grace_period: 30s", "stop_grace_period: 10s", "stop_grace_period"},
		{"whitelist", true, "--security=whitelist=${DGRAPH_SUBNET:-10.222.42.0/24},127.0.0.1", "--security=whitelist=127.0.0.1", "whitelist"},
		{"missing mount", true, "./dgraph-groot.sh:/usr/local/bin", "./dgraph-root.sh:/usr/local/bin", "dgraph-root.sh"},
		{"relay env typo", false, "SWITCHYARD_API__OPERATOR_KEY:", "SWITCHYARD_API_OPERATOR_KEY:", "SWITCHYARD_API_OPERATOR_KEY"},
		{"relay env value", true, "SWITCHYARD_STORE__BACKEND: dgraph", "SWITCHYARD_STORE__BACKEND: dgrahp", "dgrahp"},
		{"relay without Dgraph password", true, "      SWITCHYARD_STORE__DGRAPH__PASSWORD: ${DGRAPH_GROOT_PASSWORD:?run deploy/compose/full/init.sh first}\n", "", "PASSWORD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, file, vars := local, filepath.Join(t.TempDir(), "compose.yaml"), map[string]string(nil)
			if tc.full {
				// Beside the files it mounts.
				src, file, vars = full, filepath.Join(dir, "broken.yaml"), env
			}
			if !strings.Contains(src, tc.old) {
				t.Fatalf("the compose file no longer holds %q: update this case", tc.old)
			}
			if err := os.WriteFile(file, []byte(strings.Replace(src, tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var problems []string
			p, err := LoadCompose(context.Background(), file, vars)
			if err != nil {
				problems = append(problems, err.Error())
			} else {
				for _, err := range CheckStack(p, img) {
					problems = append(problems, err.Error())
				}
				s := p.Services["switchyard"]
				if err := ValidateRelay(relayBin(t), RelayConfigFile(s, img), Environ(s)); err != nil {
					problems = append(problems, err.Error())
				}
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("want a problem naming %q, got %q", tc.want, problems)
			}
			t.Logf("fails as it should: %s", strings.Join(problems, "; "))
		})
	}
}

func ptr(s string) *string { return &s }

func mustYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}
