package app_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/apptest"
)

// upload posts a release as multipart/form-data: the fields in order, then
// the image. It returns the status and the decoded body.
func upload(t *testing.T, r *apptest.Relay, key, tenant string, fields [][2]string, image []byte) (int, map[string]any) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		if err := mw.WriteField(f[0], f[1]); err != nil {
			t.Fatal(err)
		}
	}
	if image != nil {
		w, err := mw.CreateFormFile("image", "fw.bin")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(image)
	}
	mw.Close()
	req, _ := http.NewRequest("POST", r.API+"/api/v1/tenants/"+tenant+"/firmware", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("upload: status %d, body %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

func randomImage(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// TestFirmwareProtocolByHand walks one update frame by frame with a plain
// WebSocket client and net/http: the offer after hello, a download cut and
// resumed with Range, every report, and installed at the hello on the new
// version.
func TestFirmwareProtocolByHand(t *testing.T) {
	r := apptest.Start(t, "", nil)
	img := randomImage(t, 300<<10)
	status, rel := upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "1.3.0"}, {"notes", "faster"}}, img)
	if status != http.StatusCreated || rel["sha256"] != sha(img) {
		t.Fatalf("upload: %d %v", status, rel)
	}
	tok := r.CreateDevice("default", "d1", nil)
	if st, b := r.Do("POST", "/api/v1/tenants/default/rollouts", map[string]any{"id": "r1", "model": "test", "version": "1.3.0", "percent": 100}); st != http.StatusCreated {
		t.Fatalf("create rollout: %d %v", st, b)
	}

	c, _, err := r.Dial(tok)
	if err != nil {
		t.Fatal(err)
	}
	d := &apptest.Device{T: t, Conn: c}
	d.Send(map[string]any{"type": "hello", "protocol": 1, "model": "test", "firmware": "1.2.3", "capabilities": []string{"ota"}})
	d.ReadUntil("welcome")
	offer := d.ReadUntil("firmware_offer")
	t.Logf("offer: %v", offer)
	url := strings.Replace(r.WS, "ws://", "http://", 1)
	url = url[:strings.Index(url[len("http://"):], "/")+len("http://")] + offer["url"].(string)

	get := func(rng string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, whole := get("")
	if resp.StatusCode != 200 || !bytes.Equal(whole, img) {
		t.Fatalf("GET: %d, %d bytes", resp.StatusCode, len(whole))
	}
	t.Logf("headers: %v", resp.Header)
	resp, tail := get(fmt.Sprintf("bytes=%d-", 100000))
	if resp.StatusCode != 206 || !bytes.Equal(tail, img[100000:]) {
		t.Fatalf("range GET: %d, %d bytes", resp.StatusCode, len(tail))
	}
	for _, st := range []string{"downloading", "downloaded", "verified", "installing"} {
		d.Send(map[string]any{"type": "firmware_status", "version": "1.3.0", "status": st})
	}
	d.Send(map[string]any{"type": "firmware_status", "version": "9.9.9", "status": "downloaded"})
	if e := d.ReadUntil("error"); e["code"] != "not_offered" {
		t.Fatalf("want not_offered, got %v", e)
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)
	c2, _, err := r.Dial(tok)
	if err != nil {
		t.Fatal(err)
	}
	d2 := &apptest.Device{T: t, Conn: c2}
	d2.Send(map[string]any{"type": "hello", "protocol": 1, "model": "test", "firmware": "1.3.0", "capabilities": []string{"ota"}})
	d2.ReadUntil("welcome")
	_, hist := r.Do("GET", "/api/v1/tenants/default/devices/d1/firmware", nil)
	t.Logf("history: %v", hist)
	_, ro := r.Do("GET", "/api/v1/tenants/default/rollouts/r1", nil)
	t.Logf("rollout: %v", ro)
}
