// Package examples_test starts the relay on each example's plugins.yaml,
// as its README says to run it, and checks that every plugin instance the
// file declares is serving the example's module. What each guest does is
// checked by the conformance kit over its conformance.yaml
// (runtime/conform); the modules come from `make examples`.
package examples_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/runtime/apptest"
)

func TestExamplesStartInTheRelay(t *testing.T) {
	files, err := filepath.Glob("*/plugins.yaml")
	if err != nil || len(files) < 5 {
		t.Fatalf("found %v, want a plugins.yaml per guest language (err %v)", files, err)
	}
	apptest.Plugins(t) // the shipped modules an example may use beside its own
	for _, f := range files {
		t.Run(filepath.Dir(f), func(t *testing.T) {
			r := apptest.StartFile(t, f, false)
			want := map[string]string{} // instance id → sha256 of its module
			for _, p := range r.Config.Plugins {
				code, err := os.ReadFile(p.Module) // resolved against the file's folder
				if err != nil {
					t.Fatalf("%s: %v: build the examples first with `make examples`", p.ID, err)
				}
				sum := sha256.Sum256(code)
				want[p.ID] = hex.EncodeToString(sum[:])
			}
			status, body := r.Do("GET", "/api/v1/plugins", nil)
			list, _ := body["plugins"].([]any)
			if status != 200 || len(list) != len(want) {
				t.Fatalf("GET /api/v1/plugins: %d %v, want the %d instances of %s", status, body, len(want), f)
			}
			for _, item := range list {
				p := item.(map[string]any)
				id, _ := p["id"].(string)
				if p["state"] != "running" || p["module"] != want[id] {
					t.Errorf("instance %s: state %v, module %v; want running %s", id, p["state"], p["module"], want[id])
				}
			}
		})
	}
}
