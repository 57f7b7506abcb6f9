package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchyard/switchyard/runtime/backup"
	"github.com/switchyard/switchyard/runtime/config"
)

// health asks a relay's /health and exits 0 when it answers 200: the
// container image's HEALTHCHECK, which has no curl.
func health(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8081/health", "the relay's /health")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard health:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard health:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "switchyard health: %s: %s\n", resp.Status, body)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", body)
	return 0
}

// operatorKey is the key backup sends: -key-file, else
// SWITCHYARD_API__OPERATOR_KEY (the variable the relay reads it from).
func operatorKey(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		return strings.TrimSpace(string(b)), err
	}
	if k := os.Getenv("SWITCHYARD_API__OPERATOR_KEY"); k != "" {
		return k, nil
	}
	return "", errors.New("the operator key is needed: set SWITCHYARD_API__OPERATOR_KEY or pass -key-file")
}

// backupCmd fetches a backup archive from a running relay (GET
// /api/v1/backup) into a file, written under a temporary name and renamed
// once whole.
func backupCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "http://127.0.0.1:8081", "the relay's admin API")
	out := fs.String("o", "", "the archive to write (default switchyard-<time>.tar)")
	keyFile := fs.String("key-file", "", "a file holding the operator key (default: $SWITCHYARD_API__OPERATOR_KEY)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	key, err := operatorKey(*keyFile)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard backup:", err)
		return 2
	}
	if *out == "" {
		*out = "switchyard-" + time.Now().UTC().Format("20060102T150405Z") + ".tar"
	}
	n, err := fetchBackup(strings.TrimSuffix(*api, "/")+"/api/v1/backup", key, *out)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard backup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d bytes\n", *out, n)
	return 0
}

func fetchBackup(url, key, out string) (int64, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &e) == nil && e.Error.Code != "" {
			return 0, fmt.Errorf("%s: %s: %s", resp.Status, e.Error.Code, e.Error.Message)
		}
		return 0, fmt.Errorf("%s", resp.Status)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".backup-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, resp.Body)
	if err != nil {
		tmp.Close()
		return n, fmt.Errorf("the archive was cut off after %d bytes: %w", n, err)
	}
	if err := errors.Join(tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), out)
}

// restoreCmd restores an archive into the installation a configuration
// describes; the relay must be stopped.
func restoreCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "plugins.yaml", "configuration file (where the installation lives)")
	in := fs.String("i", "", "the archive to restore (required)")
	force := fs.Bool("force", false, "replace an existing installation (the relay must be stopped)")
	set := overrides{}
	fs.Var(set, "set", "override KEY=VALUE (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *in == "" {
		fmt.Fprintln(stderr, "switchyard restore: -i ARCHIVE is required")
		return 2
	}
	cfg, err := config.Load(config.Source{Path: *path, Environ: os.Environ(), Overrides: set})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if cfg.Store.Backend != "embedded" {
		fmt.Fprintf(stderr, "switchyard restore: store.backend is %q: restore Dgraph with its import (deploy/README.md, Backups)\n", cfg.Store.Backend)
		return 1
	}
	f, err := os.Open(*in)
	if err != nil {
		fmt.Fprintln(stderr, "switchyard restore:", err)
		return 1
	}
	defer f.Close()
	if err := backup.Restore(f, backup.LayoutOf(cfg), *force); err != nil {
		fmt.Fprintln(stderr, "switchyard", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s into %s\n", *in, cfg.Store.Embedded.Path)
	return 0
}
