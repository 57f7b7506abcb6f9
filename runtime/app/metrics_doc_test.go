package app_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/runtime/apptest"
)

// TestEveryMetricIsDocumented: every switchyard_ metric a running relay
// exports is named in the documentation an operator reads (docs/API.md,
// firmware/README.md, or a plugin's README).
func TestEveryMetricIsDocumented(t *testing.T) {
	r := apptest.Start(t, "", nil)
	resp, err := http.Get(r.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	docs := []string{"../../docs/API.md", "../../firmware/README.md"}
	readmes, _ := filepath.Glob("../../plugins/*/*/README.md")
	var text strings.Builder
	for _, p := range append(docs, readmes...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text.Write(b)
	}
	names := 0
	for _, line := range strings.Split(string(raw), "\n") {
		name, ok := strings.CutPrefix(line, "# HELP switchyard_")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		names++
		if !strings.Contains(text.String(), "switchyard_"+name) {
			t.Errorf("metric switchyard_%s is not documented (docs/API.md, Metrics)", name)
		}
	}
	if names < 10 {
		t.Fatalf("only %d switchyard_ metrics on /metrics:\n%s", names, raw)
	}
}
