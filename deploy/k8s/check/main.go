// Command check verifies the Kubernetes manifests of deploy/k8s offline, as
// `make k8s-check` runs it:
//
//  1. it renders every kustomization (base, overlays/*) in process with the
//     kustomize library kubectl embeds;
//  2. it decodes every object strictly into its k8s.io/api type: an unknown,
//     duplicated or mis-cased field, a value of the wrong type or a kind the
//     API server would not serve is an error;
//  3. it checks what types cannot: the relay's own `switchyard validate` on
//     the ConfigMap's plugins.yaml under the container's environment, probes,
//     security context, the grace period against preStop + drain_timeout,
//     Service selectors and types, the PodDisruptionBudget, the HPA and its
//     prometheus-adapter rule, the NetworkPolicy, the store's replica
//     constraint, and that deploy/README.md names the Secrets to create.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	root := flag.String("root", "..", "the folder of the kustomizations (deploy/k8s)")
	bin := flag.String("switchyard", "", "the relay binary that validates plugins.yaml; empty: go run ./runtime/cmd/switchyard in the repository")
	flag.Parse()
	os.Exit(run(context.Background(), *root, *bin, os.Stdout))
}

func run(ctx context.Context, root, bin string, w io.Writer) int {
	root, err := filepath.Abs(root)
	if err != nil {
		fmt.Fprintln(w, "k8s-check:", err)
		return 1
	}
	opts, err := Load(root, bin)
	if err != nil {
		fmt.Fprintln(w, "k8s-check:", err)
		return 1
	}
	dirs, err := Kustomizations(root)
	if err != nil {
		fmt.Fprintln(w, "k8s-check:", err)
		return 1
	}
	failed := false
	for _, dir := range dirs {
		name, _ := filepath.Rel(filepath.Join(root, "..", ".."), dir)
		set, problems := CheckDir(ctx, dir, opts)
		if len(problems) == 0 {
			fmt.Fprintf(w, "k8s-check: %s: ok (%s)\n", name, set.Kinds())
			continue
		}
		failed = true
		fmt.Fprintf(w, "k8s-check: %s: %d problem(s)\n", name, len(problems))
		for _, p := range problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	if failed {
		return 1
	}
	return 0
}

// Load gathers what the rules need from the repository around root
// (deploy/k8s): the relay's shutdown headroom, the prometheus-adapter rule,
// the "Kubernetes" section of deploy/README.md, and a validator.
func Load(root, bin string) (Options, error) {
	repo := filepath.Join(root, "..", "..")
	headroom, err := StopHeadroom(repo)
	if err != nil {
		return Options{}, err
	}
	adapterFile := filepath.Join(root, "prometheus-adapter", "rules.yaml")
	adapter, err := LoadAdapter(adapterFile)
	if err != nil {
		return Options{}, fmt.Errorf("prometheus-adapter rule: %w", err)
	}
	readme, err := os.ReadFile(filepath.Join(repo, "deploy", "README.md"))
	if err != nil {
		return Options{}, err
	}
	v := GoRunValidator(repo)
	if bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return Options{}, err
		}
		if _, err := os.Stat(abs); err != nil {
			return Options{}, fmt.Errorf("the relay binary: %w (make build)", err)
		}
		v = BinaryValidator(abs)
	}
	return Options{
		Validate:            v,
		Headroom:            headroom,
		Adapter:             adapter,
		AdapterName:         "deploy/k8s/prometheus-adapter/rules.yaml",
		Docs:                Section(string(readme), "Kubernetes"),
		MonitoringNamespace: "monitoring",
	}, nil
}

// Kustomizations lists the kustomizations under root that users apply:
// base and every overlays/<name>.
func Kustomizations(root string) ([]string, error) {
	dirs := []string{filepath.Join(root, "base")}
	overlays, err := filepath.Glob(filepath.Join(root, "overlays", "*", "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	for _, o := range overlays {
		dirs = append(dirs, filepath.Dir(o))
	}
	return dirs, nil
}

// CheckDir renders, decodes and checks one kustomization.
func CheckDir(ctx context.Context, dir string, opts Options) (*Set, []string) {
	docs, err := Render(dir)
	if err != nil {
		return &Set{}, []string{err.Error()}
	}
	set, problems := Decode(docs)
	if len(problems) > 0 {
		// The rules would report what follows from these.
		return set, problems
	}
	return set, Check(ctx, set, opts)
}

// Section returns the Markdown section of that title (a "## " heading) up
// to the next heading of its level, or "".
func Section(md, title string) string {
	var out []string
	in := false
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "## ") {
			if in {
				break
			}
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == title
		}
		if in {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
