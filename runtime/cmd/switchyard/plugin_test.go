package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestPluginServeByHand(t *testing.T) {
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"plugin", "serve", "brokers.webhook"}, 1, "This binary is a plugin"},
		{[]string{"plugin", "serve", "brokers.nope"}, 2, "brokers.nope is not built into this binary"},
		{[]string{"plugin", "serve", "nope"}, 2, "want kind.name"},
		{[]string{"plugin"}, 2, "usage: switchyard plugin"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := switchyard(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.inStderr)
			}
		})
	}
	stdout, _, code := switchyard(t, nil, "plugin", "list")
	if code != 0 || !strings.Contains(stdout, "brokers.webhook\n") {
		t.Errorf("plugin list: exit %d, %q", code, stdout)
	}
}

// The relay runs its own built-in brokers.webhook as a process plugin
// (module: the relay binary); when the relay is SIGKILLed, the plugin's
// process dies with it.
func TestProcessPluginDiesWithRelay(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	conf := filepath.Join(dir, "plugins.yaml")
	yaml := fmt.Sprintf(`plugins:
  - id: hook
    use: brokers.webhook
    runtime: process
    module: %s
    sha256: %s
    config: {url: "http://127.0.0.1:9/in"}
`, binary, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	const key = "test-operator-key-0123456789abcdef"
	gw, api := freePort(t), freePort(t)
	cmd := exec.Command(binary, "run", "-c", conf,
		"-set", "gateway.listen="+gw, "-set", "api.listen="+api,
		"-set", "store.embedded.path="+filepath.Join(dir, "switchyard.db"))
	cmd.Env = append(cleanEnv(), "SWITCHYARD_API__OPERATOR_KEY="+key)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + api + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not ready in 30s; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	children := pluginChildren(cmd.Process.Pid)
	if len(children) != 1 {
		t.Fatalf("plugin processes of the relay: %v, want one; stderr:\n%s", children, stderr.String())
	}
	child := children[0]

	// The API lists the instance with its process.
	req, _ := http.NewRequest(http.MethodGet, "http://"+api+"/api/v1/plugins", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"state":"running"`) || !strings.Contains(string(body), `"pid":`+strconv.Itoa(child)) {
		t.Errorf("GET /api/v1/plugins: %d %s", resp.StatusCode, body)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed := time.Now()
	for alive(child) || len(pluginChildrenOf(binary)) > 0 {
		if time.Since(killed) > time.Second {
			t.Fatalf("plugin process %d still alive 1s after the relay was SIGKILLed (left: %v)", child, pluginChildrenOf(binary))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("plugin process %d gone %v after the relay's SIGKILL", child, time.Since(killed))
}

// procs returns, for every process, its parent pid and its arguments.
func procs() map[int]struct {
	ppid int
	args []string
} {
	out := map[int]struct {
		ppid int
		args []string
	}{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		stat, err1 := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		cmdline, err2 := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err1 != nil || err2 != nil {
			continue
		}
		s := string(stat)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		out[pid] = struct {
			ppid int
			args []string
		}{ppid, strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")}
	}
	return out
}

func isPluginServe(args []string) bool {
	return len(args) >= 3 && args[1] == "plugin" && args[2] == "serve"
}

// pluginChildren returns the `plugin serve` processes whose parent is ppid.
func pluginChildren(ppid int) []int {
	var pids []int
	for pid, p := range procs() {
		if p.ppid == ppid && isPluginServe(p.args) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pluginChildrenOf returns the live `plugin serve` processes of binary,
// whatever their parent now.
func pluginChildrenOf(binary string) []int {
	var pids []int
	for pid, p := range procs() {
		if isPluginServe(p.args) && p.args[0] == binary {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
