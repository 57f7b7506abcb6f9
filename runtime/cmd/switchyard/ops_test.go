package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const opsKey = "ops-test-operator-key-0123456789"

// TestSIGTERMUnderLoad: 600 devices are connected and sending when the
// relay gets SIGTERM. Every one of them receives a 1001 close frame that
// says when to reconnect, before the process exits; it exits 0, within
// its drain deadline.
func TestSIGTERMUnderLoad(t *testing.T) {
	const n = 600
	p := start(t, t.TempDir(), "SWITCHYARD_API__OPERATOR_KEY="+opsKey, "SWITCHYARD_GATEWAY__DRAIN_TIMEOUT=5s")
	tokens := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			tokens[i] = createDevice(t, p.api, opsKey, fmt.Sprintf("load-%03d", i))
		}()
	}
	wg.Wait()

	type closed struct {
		code   int
		reason string
		at     time.Time
	}
	results := make([]closed, n)
	var ready sync.WaitGroup
	var sent atomic.Int64
	for i, tok := range tokens {
		conn, _, err := websocket.DefaultDialer.Dial(p.ws+"?token="+tok, nil)
		if err != nil {
			t.Fatalf("device %d: %v", i, err)
		}
		defer conn.Close()
		if err := conn.WriteJSON(map[string]any{"type": "hello", "protocol": 1}); err != nil {
			t.Fatal(err)
		}
		var welcome map[string]any
		if err := conn.ReadJSON(&welcome); err != nil || welcome["type"] != "welcome" {
			t.Fatalf("device %d: welcome %v %v", i, welcome, err)
		}
		ready.Add(1)
		go func() {
			defer ready.Done()
			var mu sync.Mutex // gorilla: one writer; the reader answers the close
			stop := make(chan struct{})
			go func() { // the load: a data frame every 20 ms
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					mu.Lock()
					err := conn.WriteJSON(map[string]any{"type": "data", "stream": "load", "payload": k})
					mu.Unlock()
					if err != nil {
						return
					}
					sent.Add(1)
				}
			}()
			defer close(stop)
			for {
				if _, _, err := conn.ReadMessage(); err != nil {
					ce, _ := err.(*websocket.CloseError)
					if ce != nil {
						results[i] = closed{ce.Code, ce.Text, time.Now()}
					} else {
						results[i] = closed{-1, err.Error(), time.Now()}
					}
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // under load
	loadBefore := sent.Load()
	began := time.Now()
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, p.stderr.String())
	}
	exited := time.Now()
	ready.Wait()
	if took := exited.Sub(began); took > 5*time.Second+2*time.Second {
		t.Errorf("exit took %s, past the 5s drain deadline and its headroom", took)
	}
	for i, c := range results {
		switch {
		case c.code != websocket.CloseGoingAway || !strings.Contains(c.reason, "reconnect in"):
			t.Errorf("device %d: close %d %q, want 1001 with a reconnect hint", i, c.code, c.reason)
		case c.at.After(exited):
			t.Errorf("device %d got its close frame after the process exited", i)
		}
	}
	t.Logf("%d devices had sent %d data frames when SIGTERM came; exit after %s", n, loadBefore, exited.Sub(began).Round(time.Millisecond))
}

// TestBackupUnderWritesRestores: backups fetched from a running relay while
// devices are being created restore, with `switchyard restore`, into an
// installation that starts and knows every device created before the
// backup began, each able to connect with its token.
func TestBackupUnderWritesRestores(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir, "SWITCHYARD_API__OPERATOR_KEY="+opsKey)
	before := map[string]string{}
	for i := range 20 {
		id := fmt.Sprintf("before-%02d", i)
		before[id] = createDevice(t, p.api, opsKey, id)
	}
	stop := make(chan struct{})
	var writing sync.WaitGroup
	var created atomic.Int64
	for w := range 4 {
		writing.Add(1)
		go func() {
			defer writing.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				createDevice(t, p.api, opsKey, fmt.Sprintf("during-%d-%04d", w, k))
				created.Add(1)
			}
		}()
	}
	archive := filepath.Join(t.TempDir(), "backup.tar")
	env := []string{"SWITCHYARD_API__OPERATOR_KEY=" + opsKey}
	out, stderr, code := switchyard(t, env, "backup", "-api", p.api, "-o", archive)
	close(stop)
	writing.Wait()
	if code != 0 || !strings.Contains(out, "bytes") {
		t.Fatalf("backup: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := switchyard(t, nil, "backup", "-api", p.api, "-o", archive+".2"); code != 2 || !strings.Contains(stderr, "operator key") {
		t.Errorf("backup without a key: exit %d, %s", code, stderr)
	}
	p.stop(t)

	restored := t.TempDir()
	set := []string{"-c", "../../../plugins.yaml", "-set", "store.embedded.path=" + filepath.Join(restored, "switchyard.db")}
	if out, stderr, code := switchyard(t, nil, append([]string{"restore", "-i", archive}, set...)...); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := switchyard(t, nil, append([]string{"restore", "-i", archive}, set...)...); code != 1 || !strings.Contains(stderr, "-force") {
		t.Errorf("restore over an installation: exit %d, %s", code, stderr)
	}
	q := start(t, restored, "SWITCHYARD_API__OPERATOR_KEY="+opsKey)
	req, _ := http.NewRequest("GET", q.api+"/api/v1/tenants/default/devices", nil)
	req.Header.Set("Authorization", "Bearer "+opsKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for id := range before {
		if !strings.Contains(string(body), `"id":"`+id+`"`) {
			t.Errorf("device %s, created before the backup, is not in the restored store", id)
		}
	}
	for id, tok := range before {
		conn, _, err := websocket.DefaultDialer.Dial(q.ws+"?token="+tok, nil)
		if err != nil {
			t.Fatalf("device %s cannot connect to the restored relay: %v", id, err)
		}
		conn.Close()
		break
	}
	t.Logf("%d devices created while the backup ran; the restored store lists %d devices", created.Load(), strings.Count(string(body), `"id":"`))
	q.stop(t)
	os.RemoveAll(restored)
}
