package deploycheck

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Unit is a systemd unit file's settings: section → key → values, in order
// (a key may repeat).
type Unit map[string]map[string][]string

// ParseUnit reads a unit file: sections, Key=Value lines, comments,
// backslash continuations.
func ParseUnit(file string) (Unit, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	u := Unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s:%d: not a Key=Value line in a section", file, n)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u, sc.Err()
}

// Get is the last value of a key ("" when unset).
func (u Unit) Get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// SystemdAnalyze runs systemd-analyze verify on a copy of the unit in which
// the path of the relay's binary in ExecStart (installed) is replaced by
// bin, which exists here, and returns its output: any line is a problem
// (an unknown key is only a warning to systemd, but a warning here).
// Then it runs systemd-analyze security --offline and fails when the
// unit's exposure is above threshold (0-100; systemd prints it as 0.0-10.0).
func SystemdAnalyze(unit, installed, bin string, threshold int) error {
	b, err := os.ReadFile(unit)
	if err != nil {
		return err
	}
	if !bytes.Contains(b, []byte(installed)) {
		return fmt.Errorf("%s does not run %s", unit, installed)
	}
	dir, err := os.MkdirTemp("", "unit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	copy := filepath.Join(dir, filepath.Base(unit))
	if err := os.WriteFile(copy, bytes.ReplaceAll(b, []byte(installed), []byte(bin)), 0o644); err != nil {
		return err
	}
	out, err := exec.Command("systemd-analyze", "verify", "--man=no", copy).CombinedOutput()
	out = bytes.ReplaceAll(out, []byte(copy), []byte(unit))
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		status := "warnings"
		if err != nil {
			status = err.Error()
		}
		return fmt.Errorf("systemd-analyze verify %s (%s): %s", unit, status, bytes.TrimSpace(out))
	}
	out, err = exec.Command("systemd-analyze", "security", "--offline=true", fmt.Sprintf("--threshold=%d", threshold), copy).CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		return fmt.Errorf("systemd-analyze security --threshold=%d %s: %v: %s", threshold, unit, err, lines[len(lines)-1])
	}
	return nil
}

// CheckUnit checks the unit against the relay's configuration it runs with
// (set): the user and state folder, where data goes, how long a stop may
// take, file descriptors for the devices, the hardening it must keep.
func CheckUnit(u Unit, set *RelaySettings, maxConnections int) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	svc := "Service"
	if user := u.Get(svc, "User"); user == "" || user == "root" {
		add("User=%q: the relay must not run as root", user)
	}
	state := u.Get(svc, "StateDirectory")
	if state == "" {
		add("no StateDirectory=")
	}
	stateDir := "/var/lib/" + state
	for _, p := range set.DataPaths {
		if _, ok := within(stateDir, p); !ok {
			add("the relay writes %s, outside StateDirectory %s", p, stateDir)
		}
	}
	if !strings.Contains(u.Get(svc, "ReadWritePaths"), stateDir) {
		add("ReadWritePaths= does not name %s", stateDir)
	}
	if !strings.Contains(u.Get(svc, "ExecStart"), " run -c /etc/switchyard/plugins.yaml") {
		add("ExecStart=%q does not run -c /etc/switchyard/plugins.yaml", u.Get(svc, "ExecStart"))
	}
	if d, err := parseSystemdSeconds(u.Get(svc, "TimeoutStopSec")); err != nil {
		add("TimeoutStopSec: %v", err)
	} else if need := set.DrainTimeout + 5*time.Second; d <= need {
		add("TimeoutStopSec=%s must exceed gateway.drain_timeout + 5s = %s, or systemd kills the relay while it drains", d, need)
	}
	if n, err := strconv.Atoi(u.Get(svc, "LimitNOFILE")); err != nil || n < maxConnections+1024 {
		add("LimitNOFILE=%q must be at least gateway.max_connections (%d) + 1024: one socket per device", u.Get(svc, "LimitNOFILE"), maxConnections)
	}
	for key, want := range map[string]string{
		"KillSignal": "SIGTERM", "Restart": "on-failure", "NoNewPrivileges": "yes",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
	} {
		if got := u.Get(svc, key); got != want {
			add("%s=%q, want %q", key, got, want)
		}
	}
	if u.Get(svc, "MemoryDenyWriteExecute") == "yes" {
		add("MemoryDenyWriteExecute=yes stops the WASM runtime from running compiled plugins")
	}
	return errs
}

// parseSystemdSeconds reads a systemd time span: plain seconds or units
// such as 30s, 1min 30s, 2m.
func parseSystemdSeconds(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	r := strings.NewReplacer("min", "m", "sec", "s", " ", "")
	return time.ParseDuration(r.Replace(s))
}
