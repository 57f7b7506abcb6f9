package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary bytes as plugins.yaml. Load must never panic; it
// either returns a config that validates or Problems, each with a message
// and naming the file.
func FuzzLoad(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	seeds = append(seeds, "../../plugins.yaml")
	for _, path := range seeds {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("gateway: {max_frame_size: 9223372036854775807TiB, send_queue: 18446744073709551616}"))
	f.Add([]byte("plugins: [{id: a, use: transforms.x, runtime: builtin, config: {? [1]: x}}]"))
	f.Add([]byte("a: &x {b: *x}"))

	const file = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := load(Source{Path: file}, data)
		if err == nil {
			if cfg == nil {
				t.Fatal("no config and no error")
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("loaded config does not validate: %v", err)
			}
			return
		}
		if cfg != nil {
			t.Fatal("a config along with an error")
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error %T %q is not Problems", err, err)
		}
		for _, p := range ps {
			if p.Message == "" || p.Source != file || p.Line < 0 {
				t.Fatalf("bad problem %+v", p)
			}
		}
	})
}
