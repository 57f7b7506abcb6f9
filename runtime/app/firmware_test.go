package app_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/apptest"
	"github.com/switchyard/switchyard/runtime/config"
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

// downloadURL is the gateway's http:// address of a download path.
func downloadURL(r *apptest.Relay, path string) string {
	return "http://" + r.App.GatewayAddr().String() + path
}

// fetch GETs (or HEADs) a download path with a device token and headers.
func fetch(t *testing.T, r *apptest.Relay, method, path, tok string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, downloadURL(r, path), nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestFirmwareProtocolByHand walks one update frame by frame with a plain
// WebSocket client (gorilla) and net/http: the offer after hello, a download
// and a resumed range, every report, a report on a version never offered,
// and installed at the hello on the new version.
func TestFirmwareProtocolByHand(t *testing.T) {
	r := apptest.Start(t, "", nil)
	img := randomImage(t, 300<<10)
	status, rel := upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "1.3.0"}, {"notes", "faster"}}, img)
	if status != http.StatusCreated || rel["sha256"] != sha(img) || rel["size"] != float64(len(img)) {
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
	if offer["url"] != "/firmware/v1/"+sha(img) || offer["manifest"] != rel["manifest"] || offer["signature"] != rel["signature"] || offer["key_id"] != rel["key_id"] {
		t.Fatalf("offer %v does not carry the release %v", offer, rel)
	}

	resp, whole := fetch(t, r, "GET", offer["url"].(string), tok)
	h := resp.Header
	if resp.StatusCode != 200 || !bytes.Equal(whole, img) || h.Get("ETag") != `"`+sha(img)+`"` || h.Get("Accept-Ranges") != "bytes" ||
		!strings.HasPrefix(h.Get("Repr-Digest"), "sha-256=:") || h.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("GET: %d, %d bytes, headers %v", resp.StatusCode, len(whole), h)
	}
	resp, tail := fetch(t, r, "GET", offer["url"].(string), tok, "Range", "bytes=100000-", "If-Range", h.Get("ETag"))
	if resp.StatusCode != 206 || !bytes.Equal(tail, img[100000:]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100000-%d/%d", len(img)-1, len(img)) {
		t.Fatalf("range GET: %d, %d bytes, %v", resp.StatusCode, len(tail), resp.Header)
	}
	for _, st := range []string{"downloading", "downloaded", "verified", "installing"} {
		d.Send(map[string]any{"type": "firmware_status", "version": "1.3.0", "status": st, "progress": len(img)})
	}
	d.Send(map[string]any{"type": "firmware_status", "version": "9.9.9", "status": "downloaded"})
	if e := d.ReadUntil("error"); e["code"] != "not_offered" {
		t.Fatalf("a report on a version never offered: %v, want not_offered", e)
	}
	d.Send(map[string]any{"type": "firmware_status", "version": "1.3.0", "status": "failed"})
	if e := d.ReadUntil("error"); e["code"] != "invalid_frame" || !strings.Contains(e["message"].(string), "reason") {
		t.Fatalf("failed without a reason: %v, want invalid_frame naming reason", e)
	}
	_, hist := r.Do("GET", "/api/v1/tenants/default/devices/d1/firmware", nil)
	if u, _ := hist["update"].(map[string]any); u["status"] != "installing" || u["progress"] != float64(len(img)) {
		t.Fatalf("update in progress: %v", hist)
	}
	c.Close()

	d2 := &apptest.Device{T: t}
	if d2.Conn, _, err = r.Dial(tok); err != nil {
		t.Fatal(err)
	}
	d2.Send(map[string]any{"type": "hello", "protocol": 1, "model": "test", "firmware": "1.3.0", "capabilities": []string{"ota"}})
	d2.ReadUntil("welcome")
	if f, err := d2.TryRead(300 * time.Millisecond); err == nil {
		t.Fatalf("after installing, the device got %v", f)
	}
	_, hist = r.Do("GET", "/api/v1/tenants/default/devices/d1/firmware", nil)
	var statuses []string
	for _, e := range hist["events"].([]any) {
		statuses = append(statuses, e.(map[string]any)["status"].(string))
	}
	if want := "offered downloading downloaded verified installing installed"; strings.Join(statuses, " ") != want || hist["update"] != nil || hist["firmware"] != "1.3.0" {
		t.Fatalf("history %v, want %s", hist, want)
	}
	_, ro := r.Do("GET", "/api/v1/tenants/default/rollouts/r1", nil)
	if st := ro["stages"].([]any)[0].(map[string]any); st["offered"] != 1.0 || st["installed"] != 1.0 || st["failed"] != 0.0 {
		t.Fatalf("rollout %v", ro)
	}
}

// espImage is an ESP-IDF application image that names version in its
// application description, padded to size.
func espImage(version string, size int) []byte {
	b := make([]byte, size)
	b[0] = 0xE9
	binary.LittleEndian.PutUint32(b[32:], 0xABCD5432)
	copy(b[48:80], version)
	copy(b[80:112], "display-app")
	return b
}

// imageFiles lists the image files kept for a tenant.
func imageFiles(t *testing.T, r *apptest.Relay, tenant string) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(r.Config.FirmwareDirOrDefault(), "images", tenant))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestFirmwareUploads: every bad upload is refused with a code that names
// its problem and leaves nothing behind; the same upload twice is one
// release; a version is one image.
func TestFirmwareUploads(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) { c.Firmware.MaxImageSize = 64 << 10 })
	img := randomImage(t, 1000)
	mv := [][2]string{{"model", "esp32-s3"}, {"version", "1.5.0"}}
	form := func(fields [][2]string, data []byte) apptest.Form { return apptest.NewForm(fields, "image", data) }
	tests := []struct {
		name   string
		body   any
		status int
		code   string
		field  string
	}{
		{"json", map[string]any{"model": "x"}, 415, "unsupported_media_type", ""},
		{"no image", form(mv, nil), 400, "invalid_field", "image"},
		{"image first", apptest.NewForm(nil, "image", img), 400, "invalid_field", "image"},
		{"no version", form(mv[:1], img), 400, "invalid_field", "image"},
		{"bad model", form([][2]string{{"model", "esp32/s3"}, {"version", "1.5.0"}}, img), 400, "invalid_field", "model"},
		{"two-part version", form([][2]string{{"model", "esp32-s3"}, {"version", "1.5"}}, img), 400, "invalid_field", "version"},
		{"min above version", form(append(mv, [2]string{"min_version", "1.6.0"}), img), 400, "invalid_field", "min_version"},
		{"bad sha256", form(append(mv, [2]string{"sha256", "xyz"}), img), 400, "invalid_field", "sha256"},
		{"unknown part", form(append(mv, [2]string{"channel", "beta"}), img), 400, "unknown_field", "channel"},
		{"repeated part", form(append(mv, [2]string{"model", "esp32"}), img), 400, "invalid_field", "model"},
		{"long notes", form(append(mv, [2]string{"notes", strings.Repeat("n", 16<<10+1)}), img), 400, "invalid_field", "notes"},
		{"empty image", form(mv, []byte{}), 422, "invalid_image", ""},
		{"too large", form(mv, randomImage(t, 64<<10+1)), 413, "image_too_large", ""},
		{"wrong sha256", form(append(mv, [2]string{"sha256", strings.Repeat("0", 64)}), img), 422, "sha256_mismatch", ""},
		{"mislabelled ESP-IDF image", form(mv, espImage("1.4.9", 4096)), 422, "image_mislabelled", ""},
		{"a part after the image", apptest.Form{}, 400, "", ""},
	}
	// The last case: the image, then another part.
	var trailing bytes.Buffer
	mw := multipart.NewWriter(&trailing)
	mw.WriteField("model", "esp32-s3")
	mw.WriteField("version", "1.5.0")
	w, _ := mw.CreateFormFile("image", "fw.bin")
	w.Write(img)
	mw.WriteField("notes", "too late")
	mw.Close()
	tests[len(tests)-1].body = apptest.Form{ContentType: mw.FormDataContentType(), Body: trailing.Bytes()}
	tests[len(tests)-1].code = "invalid_body"

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := r.Do("POST", "/api/v1/tenants/default/firmware", tt.body)
			e, _ := body["error"].(map[string]any)
			if status != tt.status || e["code"] != tt.code || tt.field != "" && e["field"] != tt.field {
				t.Fatalf("%d %v, want %d %s (field %q)", status, body, tt.status, tt.code, tt.field)
			}
			if files := imageFiles(t, r, "default"); len(files) != 0 {
				t.Errorf("a refused upload left %v behind", files)
			}
		})
	}
	if _, list := r.Do("GET", "/api/v1/tenants/default/firmware", nil); len(list["releases"].([]any)) != 0 {
		t.Fatalf("refused uploads made releases: %v", list)
	}

	good := espImage("v1.5.0", 8192) // ESP-IDF versions often carry a "v"
	first, rel := r.Do("POST", "/api/v1/tenants/default/firmware", form(append(mv, [2]string{"notes", "Backlight fix."}, [2]string{"sha256", strings.ToUpper(sha(good))}), good))
	again, rel2 := r.Do("POST", "/api/v1/tenants/default/firmware", form(append(mv, [2]string{"notes", "Backlight fix."}), good))
	if first != 201 || again != 200 || rel["id"] != rel2["id"] || rel["signature"] != rel2["signature"] {
		t.Fatalf("upload twice: %d %v, then %d %v", first, rel, again, rel2)
	}
	for _, tt := range []struct {
		name   string
		body   apptest.Form
		status int
		code   string
	}{
		{"same version, other bytes", form(mv, espImage("1.5.0", 9000)), 409, "release_conflict"},
		{"same version, other notes", form(append(mv, [2]string{"notes", "Other."}), good), 409, "release_conflict"},
		{"equal precedence", form([][2]string{{"model", "esp32-s3"}, {"version", "1.5.0+build.7"}}, espImage("1.5.0+build.7", 8192)), 409, "release_conflict"},
	} {
		status, body := r.Do("POST", "/api/v1/tenants/default/firmware", tt.body)
		if e, _ := body["error"].(map[string]any); status != tt.status || e["code"] != tt.code {
			t.Errorf("%s: %d %v, want %d %s", tt.name, status, body, tt.status, tt.code)
		}
	}
	if files := imageFiles(t, r, "default"); len(files) != 1 || files[0] != sha(good)+".img" {
		t.Errorf("image files %v, want the one release's", files)
	}
	// Another version may share the bytes; deleting one keeps them for the other.
	if st, b := r.Do("POST", "/api/v1/tenants/default/firmware", form([][2]string{{"model", "esp32-s3-b"}, {"version", "1.5.0"}}, good)); st != 201 {
		t.Fatalf("the same bytes for another model: %d %v", st, b)
	}
	if st, _ := r.Do("DELETE", "/api/v1/tenants/default/firmware/esp32-s3/1.5.0", nil); st != 204 {
		t.Fatalf("delete: %d", st)
	}
	if files := imageFiles(t, r, "default"); len(files) != 1 {
		t.Errorf("deleting one of two releases of an image removed it: %v", files)
	}
	if st, b := r.Do("GET", "/api/v1/tenants/default/firmware/esp32-s3/1.5.0", nil); st != 404 || b["error"].(map[string]any)["code"] != "release_not_found" {
		t.Errorf("a deleted release: %d %v", st, b)
	}
	r.Do("DELETE", "/api/v1/tenants/default/firmware/esp32-s3-b/1.5.0", nil)
	if files := imageFiles(t, r, "default"); len(files) != 0 {
		t.Errorf("deleting the last release kept its image: %v", files)
	}

	// The public key: any key may read it; it verifies the manifests.
	tenantKey := r.CreateKey("default", "viewer")
	st, key := r.DoAs(tenantKey, "GET", "/api/v1/firmware/key", nil)
	if st != 200 || key["algorithm"] != "ed25519" || key["key_id"] != rel["key_id"] || !strings.Contains(key["pem"].(string), "BEGIN PUBLIC KEY") {
		t.Fatalf("public key: %d %v", st, key)
	}
	pub, _ := base64.StdEncoding.DecodeString(key["public_key"].(string))
	sig, _ := base64.StdEncoding.DecodeString(rel["signature"].(string))
	if !ed25519.Verify(pub, []byte(rel["manifest"].(string)), sig) {
		t.Error("the release's signature does not verify with the published key")
	}
}

// metric reads one sample of the relay's /metrics, by its full name with
// labels (0 when absent).
func metric(t *testing.T, r *apptest.Relay, sample string) float64 {
	t.Helper()
	resp, err := http.Get(r.API + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestFirmwareDownloads: an image is served to the devices of its tenant
// and model only, by GET, HEAD and range; downloads beyond
// firmware.max_downloads are told to come back; a download that stops
// moving is cut off and frees its slot.
func TestFirmwareDownloads(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Firmware.MaxDownloads = 1
		c.Firmware.DownloadStall = 500 * time.Millisecond
	})
	if st, b := r.Do("POST", "/api/v1/tenants", map[string]any{"id": "other"}); st != http.StatusCreated {
		t.Fatalf("create tenant: %d %v", st, b)
	}
	img := randomImage(t, 24<<20) // more than loopback's socket buffers hold
	upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, img)
	small := randomImage(t, 1000)
	upload(t, r, apptest.OperatorKey, "other", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, small)
	path := "/firmware/v1/" + sha(img)
	mine := r.CreateDevice("default", "mine", nil)
	status, body := r.Do("POST", "/api/v1/tenants/default/devices", map[string]any{"id": "other-model", "model": "esp32"})
	if status != http.StatusCreated {
		t.Fatalf("create device: %d %v", status, body)
	}
	otherModel := body["token"].(string)
	otherTenant := r.CreateDevice("other", "mine", nil) // same id and model, another tenant

	for _, tt := range []struct {
		name, method, path, tok string
		header                  []string
		status                  int
		code                    string
	}{
		{"no token", "GET", path, "", nil, 401, "unauthorized"},
		{"unknown token", "GET", path, "sydv_nope", nil, 401, "unauthorized"},
		{"another tenant's device", "GET", path, otherTenant, nil, 404, "not_found"},
		{"another tenant's image", "GET", "/firmware/v1/" + sha(small), mine, nil, 404, "not_found"},
		{"another model", "GET", path, otherModel, nil, 404, "not_found"},
		{"not a sum", "GET", "/firmware/v1/../../etc/passwd", mine, nil, 404, "not_found"},
		{"POST", "POST", path, mine, nil, 405, "method_not_allowed"},
		{"range past the end", "GET", path, mine, []string{"Range", fmt.Sprintf("bytes=%d-", len(img))}, 416, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := fetch(t, r, tt.method, tt.path, tt.tok, tt.header...)
			if resp.StatusCode != tt.status || tt.code != "" && !strings.Contains(string(b), `"code":"`+tt.code+`"`) {
				t.Fatalf("%d %s, want %d %s", resp.StatusCode, b, tt.status, tt.code)
			}
		})
	}
	resp, b := fetch(t, r, "HEAD", path, mine)
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(img)) {
		t.Errorf("HEAD: %d, %d bytes, length %d", resp.StatusCode, len(b), resp.ContentLength)
	}
	resp, b = fetch(t, r, "GET", "/firmware/v1/"+sha(small), otherTenant)
	if resp.StatusCode != 200 || !bytes.Equal(b, small) {
		t.Errorf("the other tenant's device, its own image: %d, %d bytes", resp.StatusCode, len(b))
	}

	// A download that is not read holds the only slot ...
	req, _ := http.NewRequest("GET", downloadURL(r, path), nil)
	req.Header.Set("Authorization", "Bearer "+mine)
	stalled, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Body.Close()
	eventually(t, 5*time.Second, "the download holds its slot", func() bool { return metric(t, r, "switchyard_gateway_downloads_active") == 1 })
	resp, b = fetch(t, r, "GET", path, mine)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "too_many_downloads") {
		t.Errorf("a download over the limit: %d %v %s", resp.StatusCode, resp.Header, b)
	}
	// ... until it stalls past firmware.download_stall and is cut off.
	eventually(t, 10*time.Second, "the stalled download is cut", func() bool {
		return metric(t, r, `switchyard_gateway_downloads_total{result="cut"}`) == 1
	})
	if n, err := io.Copy(io.Discard, stalled.Body); err == nil || n >= int64(len(img)) {
		t.Errorf("the cut download delivered %d bytes and ended with %v", n, err)
	}
	resp, b = fetch(t, r, "GET", path, mine, "Range", "bytes=1000-1999")
	if resp.StatusCode != 206 || !bytes.Equal(b, img[1000:2000]) {
		t.Errorf("after the cut: %d, %d bytes", resp.StatusCode, len(b))
	}
	if busy := metric(t, r, `switchyard_gateway_downloads_total{result="busy"}`); busy != 1 {
		t.Errorf("busy downloads counted %v", busy)
	}
	// A deleted tenant's images go with it.
	if files := imageFiles(t, r, "other"); len(files) != 1 {
		t.Fatalf("the other tenant's images: %v", files)
	}
	if st, b := r.Do("DELETE", "/api/v1/tenants/other", nil); st != http.StatusNoContent {
		t.Fatalf("delete tenant: %d %v", st, b)
	}
	if files := imageFiles(t, r, "other"); len(files) != 0 {
		t.Errorf("a deleted tenant's images stayed: %v", files)
	}
}

// TestClosedDownloadFreesItsSlot: a device that drops its connection in
// the middle of a download gives its slot back at once, not after
// firmware.download_stall.
func TestClosedDownloadFreesItsSlot(t *testing.T) {
	r := apptest.Start(t, "", func(c *config.Config) {
		c.Firmware.MaxDownloads = 1
		c.Firmware.DownloadStall = time.Minute
	})
	img := randomImage(t, 8<<20)
	upload(t, r, apptest.OperatorKey, "default", [][2]string{{"model", "test"}, {"version", "2.0.0"}}, img)
	tok := r.CreateDevice("default", "d", nil)
	conn, err := net.Dial("tcp", r.App.GatewayAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A small receive window: the relay's bounded send buffer then holds
	// the rest of the image back, and the download waits on the device.
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET /firmware/v1/%s HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n\r\n", sha(img), tok)
	eventually(t, 5*time.Second, "the download holds the slot", func() bool { return metric(t, r, "switchyard_gateway_downloads_active") == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := metric(t, r, "switchyard_gateway_downloads_active"); n != 1 {
		t.Fatalf("a download the device does not read ended: %v active (the kernel took the image?)", n)
	}
	began := time.Now()
	conn.Close()
	eventually(t, 5*time.Second, "the slot is free again", func() bool { return metric(t, r, "switchyard_gateway_downloads_active") == 0 })
	t.Logf("slot free %s after the device left", time.Since(began).Round(time.Millisecond))
	if resp, _ := fetch(t, r, "GET", "/firmware/v1/"+sha(img), tok, "Range", "bytes=0-9"); resp.StatusCode != 206 {
		t.Errorf("the next download: %d", resp.StatusCode)
	}
}
