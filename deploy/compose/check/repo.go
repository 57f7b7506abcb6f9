package deploycheck

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

// Root is the repository's root: $DEPLOYCHECK_REPO when set, else the
// nearest folder above the working directory whose go.mod is the relay's.
func Root() (string, error) {
	if r := os.Getenv("DEPLOYCHECK_REPO"); r != "" {
		return filepath.Abs(r)
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/switchyard/switchyard\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("deploycheck: the repository's root was not found above the working directory; set DEPLOYCHECK_REPO")
		}
		dir = parent
	}
}
