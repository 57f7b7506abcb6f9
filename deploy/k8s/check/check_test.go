package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// root is deploy/k8s; opts are the checker's options over the repository,
// with the relay binary of SWITCHYARD_BIN or one built for the tests.
var (
	root string
	opts Options
)

func TestMain(m *testing.M) {
	os.Exit(func() int {
		var err error
		if root, err = filepath.Abs(".."); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		bin := os.Getenv("SWITCHYARD_BIN")
		if bin == "" {
			dir, err := os.MkdirTemp("", "k8s-check-bin-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			bin = filepath.Join(dir, "switchyard")
			cmd := exec.Command("go", "build", "-o", bin, "./runtime/cmd/switchyard")
			cmd.Dir = filepath.Join(root, "..", "..")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build the relay: %v\n%s", err, out)
				return 1
			}
		}
		if opts, err = Load(root, bin); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}())
}

// TestShippedManifests: every kustomization of deploy/k8s passes.
func TestShippedManifests(t *testing.T) {
	dirs, err := Kustomizations(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 2 {
		t.Fatalf("want base and at least one overlay, got %v", dirs)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			set, problems := CheckDir(context.Background(), dir, opts)
			for _, p := range problems {
				t.Error(p)
			}
			if len(set.Deployments) != 1 || len(set.Services) != 2 || len(set.NetPols) != 1 || len(set.PDBs) != 1 {
				t.Errorf("unexpected set: %s", set.Kinds())
			}
		})
	}
}

// TestCommand runs the command as make k8s-check does.
func TestCommand(t *testing.T) {
	var out bytes.Buffer
	if code := run(context.Background(), root, "", &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{"deploy/k8s/base: ok", "deploy/k8s/overlays/dgraph: ok"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// broken is a kustomization over a shipped one that breaks one rule.
type broken struct {
	name string
	// over is the shipped kustomization it builds on: base or overlays/dgraph.
	over string
	// kustomization is appended to "resources: [<over>]".
	kustomization string
	// files are written next to it.
	files map[string]string
	// want are substrings of one problem each.
	want []string
}

// deployment patches the relay's Deployment with a JSON patch.
func deployment(ops string) string {
	return "patches:\n- target: {kind: Deployment, name: switchyard}\n  patch: |-\n" + indent(ops, "    ")
}

func patch(kind, name, ops string) string {
	return fmt.Sprintf("patches:\n- target: {kind: %s, name: %s}\n  patch: |-\n%s", kind, name, indent(ops, "    "))
}

func indent(s, by string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := range lines {
		lines[i] = by + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

const container = "/spec/template/spec/containers/0"

var brokenCases = []broken{
	// Strict decoding into the k8s.io/api types.
	{
		name: "unknown field", over: "base",
		kustomization: deployment(`- {op: add, path: /spec/template/spec/terminationGracePeriod, value: 60}`),
		want:          []string{`Deployment/switchyard: strict decoding error: unknown field "spec.template.spec.terminationGracePeriod"`},
	},
	{
		name: "field in the wrong case", over: "base",
		kustomization: deployment(`- {op: add, path: ` + container + `/ReadinessProbe, value: {}}`),
		want:          []string{`unknown field "spec.template.spec.containers[0].ReadinessProbe"`},
	},
	{
		name: "wrong type", over: "base",
		kustomization: deployment(`- {op: replace, path: ` + container + `/ports/1/containerPort, value: "8081"}`),
		want:          []string{`Deployment/switchyard:`, `cannot unmarshal string into Go struct field ContainerPort.spec.template.spec.containers.ports.containerPort of type int32`},
	},
	{
		name: "wrong type in the HPA", over: "overlays/dgraph",
		kustomization: patch("HorizontalPodAutoscaler", "switchyard", `- {op: replace, path: /spec/maxReplicas, value: "ten"}`),
		want:          []string{`HorizontalPodAutoscaler/switchyard:`, `maxReplicas of type int32`},
	},
	{
		name: "duplicated field", over: "base",
		kustomization: "resources:\n- svc.yaml\n",
		files: map[string]string{"svc.yaml": `apiVersion: v1
kind: Service
metadata: {name: extra}
spec:
  selector: {app.kubernetes.io/name: switchyard}
  ports:
  - port: 8081
    port: 9000
`},
		want: []string{`Service/extra: yaml: unmarshal errors`, `mapping key "port" already defined at line 7`},
	},
	{
		name: "API version the server does not serve", over: "base",
		kustomization: "resources:\n- hpa.yaml\n",
		files: map[string]string{"hpa.yaml": `apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata: {name: old}
spec: {scaleTargetRef: {kind: Deployment, name: switchyard}, maxReplicas: 2}
`},
		want: []string{`HorizontalPodAutoscaler/old: not a kind the checker knows`},
	},
	// Probes.
	{
		name: "readiness probe on the gateway port", over: "base",
		kustomization: deployment(`- {op: replace, path: ` + container + `/readinessProbe/httpGet/port, value: gateway}`),
		want:          []string{`readinessProbe: port gateway (8080) is not the admin port 8081 (api.listen)`},
	},
	{
		name: "liveness probe on a port number that is not the admin's", over: "overlays/dgraph",
		kustomization: deployment(`- {op: replace, path: ` + container + `/livenessProbe/httpGet/port, value: 8080}`),
		want:          []string{`livenessProbe: port 8080 is not the admin port 8081`},
	},
	{
		name: "liveness probe on /ready", over: "base",
		kustomization: deployment(`- {op: replace, path: ` + container + `/livenessProbe/httpGet/path, value: /ready}`),
		want:          []string{`livenessProbe: path "/ready", want /health`},
	},
	{
		name: "admin API on loopback", over: "base",
		kustomization: deployment(`- {op: add, path: ` + container + `/env/-, value: {name: SWITCHYARD_API__LISTEN, value: "127.0.0.1:8081"}}`),
		want:          []string{`api.listen listens on loopback (127.0.0.1)`},
	},
	// Shutdown.
	{
		name: "grace period shorter than the drain", over: "base",
		kustomization: deployment(`- {op: replace, path: /spec/template/spec/terminationGracePeriodSeconds, value: 15}`),
		want:          []string{`terminationGracePeriodSeconds 15 is shorter than preStop sleep 10s + gateway.drain_timeout 10s (ConfigMap/switchyard-config-`, `+ the relay's shutdown headroom after the drain 5s = 25s`},
	},
	{
		name: "drain lengthened from the environment", over: "overlays/dgraph",
		kustomization: deployment(`- {op: add, path: ` + container + `/env/-, value: {name: SWITCHYARD_GATEWAY__DRAIN_TIMEOUT, value: 30s}}`),
		want:          []string{`terminationGracePeriodSeconds 30 is shorter than preStop sleep 10s + gateway.drain_timeout 30s (env SWITCHYARD_GATEWAY__DRAIN_TIMEOUT)`},
	},
	{
		name: "preStop through a shell", over: "base",
		kustomization: deployment(`- {op: replace, path: ` + container + `/lifecycle/preStop, value: {exec: {command: [sh, -c, sleep 10]}}}`),
		want:          []string{`the image is distroless, with no shell or sleep binary; use lifecycle.preStop.sleep`},
	},
	// The relay's own validation of the ConfigMap and the environment.
	{
		name: "plugins.yaml the relay refuses", over: "base",
		kustomization: "configMapGenerator:\n- {name: switchyard-config, behavior: replace, files: [plugins.yaml]}\n",
		files: map[string]string{"plugins.yaml": `gateway:
  listen: "0.0.0.0:8080"
  drain_timeout: 10s
  send_overflow: drop_everything
  max_conections: 5000
api: {listen: "0.0.0.0:8081"}
store: {embedded: {path: /var/lib/switchyard/switchyard.db}}
wasm: {cache_dir: /var/cache/switchyard/wasm}
`},
		want: []string{
			`switchyard validate: ConfigMap/switchyard-config-`,
			`gateway.max_conections: unknown key`,
			`gateway.send_overflow: "drop_everything" must be drop_oldest, drop_newest or disconnect`,
		},
	},
	{
		name: "drain_timeout left to its default", over: "base",
		kustomization: "configMapGenerator:\n- {name: switchyard-config, behavior: replace, files: [plugins.yaml]}\n",
		files: map[string]string{"plugins.yaml": `gateway: {listen: "0.0.0.0:8080"}
api: {listen: "0.0.0.0:8081"}
store: {embedded: {path: /var/lib/switchyard/switchyard.db}}
wasm: {cache_dir: /var/cache/switchyard/wasm}
`},
		want: []string{`gateway.drain_timeout is not set: set it explicitly`},
	},
	{
		name: "misspelt environment variable", over: "base",
		kustomization: deployment(`- {op: add, path: ` + container + `/env/-, value: {name: SWITCHYARD_GATEWAY_MAX_CONNECTIONS, value: "5000"}}`),
		want:          []string{`switchyard validate:`, `did you mean SWITCHYARD_GATEWAY__MAX_CONNECTIONS?`},
	},
	{
		name: "dgraph without its password", over: "overlays/dgraph",
		kustomization: deployment(`- {op: remove, path: ` + container + `/env/1}`),
		want:          []string{`store.dgraph.password: is required`},
	},
	// Security context and volumes.
	{
		name: "weakened security context", over: "base",
		kustomization: deployment(`
- {op: replace, path: ` + container + `/securityContext/allowPrivilegeEscalation, value: true}
- {op: replace, path: ` + container + `/securityContext/readOnlyRootFilesystem, value: false}
- {op: replace, path: ` + container + `/securityContext/capabilities, value: {add: [NET_ADMIN]}}
- {op: remove, path: ` + container + `/securityContext/seccompProfile}
- {op: remove, path: /spec/template/spec/securityContext/seccompProfile}
- {op: replace, path: /spec/template/spec/automountServiceAccountToken, value: true}`),
		want: []string{
			`allowPrivilegeEscalation must be false`,
			`readOnlyRootFilesystem must be true`,
			`capabilities.drop must hold ALL`,
			`capabilities.add must be empty, got [NET_ADMIN]`,
			`seccompProfile.type must be RuntimeDefault`,
			`automountServiceAccountToken is true`,
		},
	},
	{
		name: "root user", over: "base",
		kustomization: deployment(`- {op: replace, path: /spec/template/spec/securityContext/runAsUser, value: 0}`),
		want:          []string{`runAsUser is 0 (root)`},
	},
	{
		name: "WASM cache on the read-only root", over: "base",
		kustomization: deployment(`- {op: remove, path: ` + container + `/volumeMounts/2}`),
		want:          []string{`wasm.cache_dir /var/cache/switchyard/wasm is on the read-only root file system`},
	},
	{
		name: "embedded store on an emptyDir", over: "base",
		kustomization: deployment(`- {op: replace, path: /spec/template/spec/volumes/1, value: {name: data, emptyDir: {}}}`),
		want:          []string{`the embedded store's folder /var/lib/switchyard is on volume "data", not a PersistentVolumeClaim`},
	},
	// Replicas and the store.
	{
		name: "embedded store scaled out", over: "base",
		kustomization: deployment(`
- {op: replace, path: /spec/replicas, value: 3}
- {op: replace, path: /spec/strategy, value: {type: RollingUpdate}}`),
		want: []string{
			`replicas 3 with the embedded store: its bbolt file is locked by one process`,
			`strategy "RollingUpdate" with the embedded store`,
		},
	},
	{
		name: "HPA over the embedded store", over: "base",
		kustomization: "resources:\n- hpa.yaml\n",
		files:         map[string]string{"hpa.yaml": hpaYAML},
		want:          []string{`HorizontalPodAutoscaler/switchyard: scales the relay on the embedded store`},
	},
	{
		name: "replicas set beside the HPA", over: "overlays/dgraph",
		kustomization: deployment(`- {op: add, path: /spec/replicas, value: 2}`),
		want:          []string{`sets replicas (2) while HorizontalPodAutoscaler/switchyard owns the count`},
	},
	// Services, PDB, HPA.
	{
		name: "Service selector that matches nothing", over: "base",
		kustomization: patch("Service", "switchyard-admin", `- {op: replace, path: /spec/selector/app.kubernetes.io~1name, value: switchyrd}`),
		want:          []string{`Service/switchyard-admin: selector map[app.kubernetes.io/component:relay app.kubernetes.io/name:switchyrd] does not match the Deployment's pod labels`},
	},
	{
		name: "admin API on a load balancer", over: "base",
		kustomization: patch("Service", "switchyard-admin", `- {op: replace, path: /spec/type, value: LoadBalancer}`),
		want:          []string{`Service/switchyard-admin: exposes the admin API (8081) outside the cluster (LoadBalancer)`},
	},
	{
		name: "gateway on a ClusterIP", over: "base",
		kustomization: patch("Service", "switchyard-gateway", `
- {op: replace, path: /spec/type, value: ClusterIP}
- {op: remove, path: /spec/externalTrafficPolicy}`),
		want: []string{`Service/switchyard-gateway: exposes the gateway (8080) as ClusterIP`},
	},
	{
		name: "PDB that blocks every drain", over: "base",
		kustomization: patch("PodDisruptionBudget", "switchyard", `
- {op: remove, path: /spec/maxUnavailable}
- {op: add, path: /spec/minAvailable, value: 1}`),
		want: []string{`PodDisruptionBudget/switchyard: allows no disruption at 1 replica(s)`},
	},
	{
		name: "HPA on another target", over: "overlays/dgraph",
		kustomization: patch("HorizontalPodAutoscaler", "switchyard", `- {op: replace, path: /spec/scaleTargetRef/name, value: relay}`),
		want:          []string{`scaleTargetRef is apps/v1 Deployment/relay, not apps/v1 Deployment/switchyard`},
	},
	{
		name: "HPA target above max_connections", over: "overlays/dgraph",
		kustomization: patch("HorizontalPodAutoscaler", "switchyard", `- {op: replace, path: /spec/metrics/1/pods/target/averageValue, value: "20000"}`),
		want:          []string{`averageValue 20000 must lie between 0 and gateway.max_connections (19000)`},
	},
	{
		name: "HPA metric the adapter does not serve", over: "overlays/dgraph",
		kustomization: patch("HorizontalPodAutoscaler", "switchyard", `- {op: replace, path: /spec/metrics/1/pods/metric/name, value: switchyard_gateway_sessions}`),
		want: []string{
			`Pods metric switchyard_gateway_sessions: deploy/k8s/prometheus-adapter/rules.yaml: no rule serves it`,
			`no Pods metric switchyard_gateway_connections`,
		},
	},
	// NetworkPolicy.
	{
		name: "admin port open to every namespace", over: "base",
		kustomization: patch("NetworkPolicy", "switchyard", `- {op: add, path: /spec/ingress/1/from/-, value: {namespaceSelector: {}}}`),
		want:          []string{`ingress rule 1 admits the admin port 8081 from every namespace`},
	},
	{
		name: "admin port open to anywhere", over: "base",
		kustomization: patch("NetworkPolicy", "switchyard", `- {op: remove, path: /spec/ingress/0/ports}`),
		want:          []string{`ingress rule 0 admits the admin port 8081 from anywhere`},
	},
	{
		name: "gateway closed to devices", over: "base",
		kustomization: patch("NetworkPolicy", "switchyard", `- {op: remove, path: /spec/ingress/0}`),
		want:          []string{`no ingress rule admits the gateway port 8080 from anywhere`},
	},
	{
		name: "Dgraph unreachable", over: "overlays/dgraph",
		kustomization: patch("NetworkPolicy", "switchyard", `- {op: remove, path: /spec/egress/2}`),
		want: []string{
			`egress: no rule admits TCP 9080 (store.dgraph.addresses dgraph-dgraph-alpha.dgraph.svc.cluster.local:9080)`,
			`egress: no rule admits TCP 8080 (store.dgraph.http http://dgraph-dgraph-alpha.dgraph.svc.cluster.local:8080)`,
		},
	},
	{
		name: "egress unrestricted", over: "base",
		kustomization: patch("NetworkPolicy", "switchyard", `- {op: replace, path: /spec/egress, value: [{}]}`),
		want:          []string{`egress rule 0 admits every port to anywhere`},
	},
}

// hpaYAML is an HPA for the base, which has none.
const hpaYAML = `apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: switchyard}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: switchyard}
  minReplicas: 1
  maxReplicas: 3
  metrics:
  - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}
  - {type: Pods, pods: {metric: {name: switchyard_gateway_connections}, target: {type: AverageValue, averageValue: "10000"}}}
`

// TestBrokenManifests: each case fails with a message naming its problem.
func TestBrokenManifests(t *testing.T) {
	for _, c := range brokenCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{}
			for name, data := range c.files {
				files[name] = data
			}
			// resources: the shipped kustomization, then the case's own.
			// (kustomize refuses an absolute path to another kustomization)
			over, err := filepath.Rel(dir, filepath.Join(root, c.over))
			if err != nil {
				t.Fatal(err)
			}
			kust := "resources:\n- " + over + "\n"
			if rest, ok := strings.CutPrefix(c.kustomization, "resources:\n"); ok {
				kust += rest
			} else {
				kust += c.kustomization
			}
			files["kustomization.yaml"] = kust
			for name, data := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, problems := CheckDir(context.Background(), dir, opts)
			if len(problems) == 0 {
				t.Fatalf("no problem found; want %q", c.want)
			}
			all := strings.Join(problems, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("no problem says %q; got:\n%s", w, all)
				}
			}
			// Nothing else: the case breaks one thing.
		next:
			for _, p := range problems {
				for _, w := range c.want {
					if strings.Contains(p, w) {
						continue next
					}
				}
				if strings.HasPrefix(p, "switchyard validate: ") && strings.HasSuffix(p, " problem(s)") {
					continue // the relay's count
				}
				t.Errorf("unexpected problem: %s", p)
			}
			t.Logf("problems:\n%s", all)
		})
	}
}

// TestUndocumentedSecret: a Secret the pods need must be named in
// deploy/README.md's "Kubernetes" section.
func TestUndocumentedSecret(t *testing.T) {
	o := opts
	o.Docs = "## Kubernetes\nCreate the Secret switchyard with operator-key.\n"
	_, problems := CheckDir(context.Background(), filepath.Join(root, "overlays", "dgraph"), o)
	all := strings.Join(problems, "\n")
	for _, w := range []string{
		`Secret/switchyard: key "dgraph-password": deploy/README.md's "Kubernetes" section must name it`,
		`Secret/switchyard: key "encryption-key"`,
		`Secret/switchyard-firmware-key: needed by the pods and not in the manifests`,
	} {
		if !strings.Contains(all, w) {
			t.Errorf("no problem says %q; got:\n%s", w, all)
		}
	}
}

// TestAdapterRules: the strict decoding of the adapter's configuration and
// what makes a rule serve a metric.
func TestAdapterRules(t *testing.T) {
	good := `rules:
- seriesQuery: 'switchyard_gateway_connections{namespace!="",pod!=""}'
  resources: {overrides: {namespace: {resource: namespace}, pod: {resource: pod}}}
  name: {matches: "^(switchyard_gateway_connections)$", as: ""}
  metricsQuery: 'max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'
`
	for _, c := range []struct {
		name, file, want string
	}{
		{"good", good, ""},
		{"unknown field", strings.Replace(good, "seriesQuery", "seriesQeury", 1), `unknown field "seriesQeury"`},
		{"other series", strings.Replace(good, "switchyard_gateway_connections{", "switchyard_gateway_connections_total{", 1), "does not select the series"},
		{"renamed", strings.Replace(good, `as: ""`, `as: "connections"`, 1), `as "connections"`},
		{"no pod label", strings.Replace(good, "pod: {resource: pod}", "node: {resource: node}", 1), "resources map no labels to pod and namespace"},
		{"rate of a gauge", strings.Replace(good, "max(<<.Series>>{<<.LabelMatchers>>})", "sum(rate(<<.Series>>{<<.LabelMatchers>>}[2m]))", 1), "takes a rate of a gauge"},
		{"bad template", strings.Replace(good, "<<.GroupBy>>", "<<.GroupBy", 1), "metricsQuery:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "rules.yaml")
			if err := os.WriteFile(file, []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
			a, err := LoadAdapter(file)
			if err == nil {
				err = a.Serves(connectionsName)
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestStopHeadroom reads the relay's constant.
func TestStopHeadroom(t *testing.T) {
	if opts.Headroom <= 0 {
		t.Fatalf("headroom %v", opts.Headroom)
	}
	if _, err := StopHeadroom(t.TempDir()); err == nil {
		t.Fatal("no error without the relay's source")
	}
}
