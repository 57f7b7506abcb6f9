package deploycheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	unitFile      = "deploy/systemd/switchyard.service"
	unitConfig    = "deploy/systemd/plugins.yaml"
	installedBin  = "/usr/local/bin/switchyard"
	installedMods = "/usr/local/lib/switchyard/plugins/"
	// exposureMax is the most systemd-analyze security may rate the unit,
	// in its 0-100 scale (it prints 0.0-10.0; the unit rates 1.5).
	exposureMax = 20
	// maxConnections is gateway.max_connections' default.
	maxConnections = 19000
)

func haveSystemdAnalyze(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("systemd-analyze")
	need(t, err == nil, "systemd-analyze (apt-get install systemd)")
}

// TestSystemdUnit: systemd-analyze verify finds nothing to say about the
// unit, its exposure stays low, it fits the configuration it runs with
// (which the relay accepts), and the modules that configuration names are
// the shipped plugins.
func TestSystemdUnit(t *testing.T) {
	haveSystemdAnalyze(t)
	bin := relayBin(t)
	if err := SystemdAnalyze(repoFile(t, unitFile), installedBin, bin, exposureMax); err != nil {
		t.Error(err)
	}
	u, err := ParseUnit(repoFile(t, unitFile))
	if err != nil {
		t.Fatal(err)
	}
	set, err := ReadRelaySettings(repoFile(t, unitConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range CheckUnit(u, set, maxConnections) {
		t.Error(err)
	}
	if err := ValidateRelay(bin, repoFile(t, unitConfig), nil); err != nil {
		t.Error(err)
	}
	if !strings.HasPrefix(set.APIListen, "127.0.0.1:") {
		t.Errorf("api.listen %s: on a host the admin API stays on loopback", set.APIListen)
	}
	for _, m := range set.Modules {
		name, ok := strings.CutPrefix(m, installedMods)
		if !ok {
			t.Errorf("module %s is not under %s, where the install notes put the plugins", m, installedMods)
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "bin", "plugins", name)); err != nil {
			t.Errorf("module %s: no such shipped plugin in bin/plugins: %v", m, err)
		}
	}
}

// TestSystemdUnitBroken: each check fails on a unit broken the way it
// guards against.
func TestSystemdUnitBroken(t *testing.T) {
	haveSystemdAnalyze(t)
	bin := relayBin(t)
	orig := string(readRepo(t, unitFile))
	set, err := ReadRelaySettings(repoFile(t, unitConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"unknown key", "Restart=on-failure\n", "Restart=on-failure\nRestartt=always\n", "Unknown key"},
		{"bad value", "KillSignal=SIGTERM", "KillSignal=SIGTREM", "SIGTREM"},
		{"no hardening", "NoNewPrivileges=yes\n", "", "NoNewPrivileges"},
		{"exposed", "CapabilityBoundingSet=\n", "", "security"},
		{"short stop", "TimeoutStopSec=30", "TimeoutStopSec=12", "TimeoutStopSec"},
		{"few files", "LimitNOFILE=65536", "LimitNOFILE=4096", "LimitNOFILE"},
		{"root", "User=switchyard\n", "", "User"},
		{"W^X", "UMask=0077\n", "UMask=0077\nMemoryDenyWriteExecute=yes\n", "WASM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(orig, tc.old) {
				t.Fatalf("the unit no longer holds %q: update this case", tc.old)
			}
			file := filepath.Join(t.TempDir(), "switchyard.service")
			if err := os.WriteFile(file, []byte(strings.Replace(orig, tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var problems []string
			if err := SystemdAnalyze(file, installedBin, bin, exposureMax); err != nil {
				problems = append(problems, err.Error())
			}
			u, err := ParseUnit(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range CheckUnit(u, set, maxConnections) {
				problems = append(problems, err.Error())
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Fatalf("want a problem naming %q, got %q", tc.want, problems)
			}
			t.Logf("fails as it should: %s", strings.Join(problems, "; "))
		})
	}
}
