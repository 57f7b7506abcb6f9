package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/switchyard/switchyard/runtime/config"
)

// smallReceiveBuffer makes the client's TCP receive window tiny, so a
// client that stops reading stalls the relay's socket after a few frames.
func smallReceiveBuffer(d *gws.Dialer, _ http.Header) {
	nd := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	d.NetDialContext = nd.DialContext
}

// serverSession returns the live session of a device (white box: the
// tests below check the byte accounting itself).
func (h *harness) serverSession(t *testing.T, tenant, device string) *session {
	t.Helper()
	s := h.g.lookup(tenant, device)
	if s == nil {
		t.Fatalf("no session of %s/%s", tenant, device)
	}
	return s
}

// stall sends numbered 32 KiB messages to a device that does not read until
// the relay starts queueing them, and returns how many it sent.
func stall(t *testing.T, h *harness, payload json.RawMessage) int {
	t.Helper()
	for i := range 2000 {
		if err := h.g.Send("t1", "dev-a", Outbound{ID: strconv.Itoa(i), Subject: "bulk", Payload: payload}); err != nil {
			t.Fatalf("Send %d before the queue filled: %v", i, err)
		}
		if h.session(t, "t1", "dev-a").QueueLength > 0 {
			return i + 1
		}
	}
	t.Fatal("the socket never stalled")
	return 0
}

// readIDs reads message frames until the one with id last, or until the
// connection ends; it returns the ids in order and how the reading ended.
func readIDs(t *testing.T, c *gws.Conn, last string) ([]int, error) {
	t.Helper()
	var ids []int
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 5000 {
		_, b, err := c.ReadMessage()
		if err != nil {
			return ids, err
		}
		var m struct{ Type, ID string }
		if err := json.Unmarshal(b, &m); err != nil || m.Type != "message" {
			t.Fatalf("frame %.80s", b)
		}
		n, _ := strconv.Atoi(m.ID)
		ids = append(ids, n)
		if m.ID == last {
			return ids, nil
		}
	}
	t.Fatal("too many frames")
	return ids, nil
}

func TestOverflowPolicies(t *testing.T) {
	const queue = 4
	const extra = 10 // messages sent after the socket stalled
	payload := json.RawMessage(`"` + strings.Repeat("x", 32<<10) + `"`)
	tests := []struct {
		policy    string
		dropLabel string
	}{
		{OverflowDropOldest, droppedOldest},
		{OverflowDropNewest, droppedNewest},
		{OverflowDisconnect, droppedDisconnect},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			h := start(t, func(c *config.Gateway) { c.SendQueue = queue; c.SendOverflow = tt.policy })
			c, _ := h.connect(t, "tok-a", smallReceiveBuffer)
			stalled := stall(t, h, payload)
			accepted := make([]int, 0, stalled+extra)
			for i := range stalled {
				accepted = append(accepted, i)
			}
			refused := 0
			for i := stalled; i < stalled+extra; i++ {
				err := h.g.Send("t1", "dev-a", Outbound{ID: strconv.Itoa(i), Subject: "bulk", Payload: payload})
				switch {
				case err == nil:
					accepted = append(accepted, i)
				case errors.Is(err, ErrQueueFull) && tt.policy != OverflowDropOldest:
					refused++
				default:
					t.Fatalf("Send %d: %v", i, err)
				}
				if si := h.session(t, "t1", "dev-a"); si.QueueLength > queue {
					t.Fatalf("queue length %d over the bound %d", si.QueueLength, queue)
				}
				if tt.policy == OverflowDisconnect && err != nil {
					break
				}
			}
			total := stalled + extra
			dropped := int(h.counter(t, "switchyard_gateway_send_dropped_total", "reason", tt.dropLabel))

			switch tt.policy {
			case OverflowDropOldest:
				// Every Send is accepted; the newest `queue` messages all
				// arrive, in order; what is missing was dropped and counted.
				if si := h.session(t, "t1", "dev-a"); si.QueueLength != queue {
					t.Fatalf("queue length %d, want %d", si.QueueLength, queue)
				}
				ids, err := readIDs(t, c, strconv.Itoa(total-1))
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				for i := 1; i < len(ids); i++ {
					if ids[i] <= ids[i-1] {
						t.Fatalf("ids out of order: %v", ids)
					}
				}
				tail := ids[len(ids)-queue:]
				for i, id := range tail {
					if id != total-queue+i {
						t.Fatalf("last ids %v, want the %d newest", tail, queue)
					}
				}
				if dropped == 0 || dropped != total-len(ids) {
					t.Fatalf("dropped %d, received %d of %d", dropped, len(ids), total)
				}
			case OverflowDropNewest:
				// Refused Sends are counted; every accepted message arrives,
				// in order, and nothing else does.
				if refused == 0 || dropped != refused {
					t.Fatalf("refused %d, dropped %d", refused, dropped)
				}
				last := accepted[len(accepted)-1]
				ids, err := readIDs(t, c, strconv.Itoa(last))
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if !slices.Equal(ids, accepted) {
					t.Fatalf("received %v, want the accepted %v", ids, accepted)
				}
			case OverflowDisconnect:
				if refused != 1 || dropped != 1 {
					t.Fatalf("refused %d, dropped %d, want 1", refused, dropped)
				}
				_, err := readIDs(t, c, "never")
				var ce *gws.CloseError
				if !errors.As(err, &ce) || ce.Code != CloseQueueOverflow {
					t.Fatalf("device saw %v, want close 4029", err)
				}
				if got := h.counter(t, "switchyard_gateway_send_dropped_total", "reason", droppedSessionClosed); got != queue {
					t.Errorf("dropped{session_closed} = %v, want %d", got, queue)
				}
			}
		})
	}
}

// TestWireAccounting checks that the bytes the gateway counts as handed to
// nbio equal the bytes nbio reports written, for frame sizes around every
// WebSocket header boundary and over TLS 1.3 and 1.2: if the count drifted,
// the queue would either stall for good or stop bounding anything.
func TestWireAccounting(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	tests := []struct {
		name   string
		client *tls.Config // nil: plain TCP
	}{
		{"plain", nil},
		{"TLS 1.3", &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}},
		{"TLS 1.2 AES-GCM", &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}},
		{"TLS 1.2 ChaCha20", &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}},
	}
	// Payload sizes put the frames at the 7-bit, 16-bit and 64-bit header
	// lengths and across 16 KiB TLS records.
	sizes := []int{1, 60, 125, 126, 1000, 16 << 10, 40000, 65535, 65536, 200000}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, func(c *config.Gateway) {
				c.MaxFrameSize = 256 << 10
				if tt.client != nil {
					c.TLS.CertFile, c.TLS.KeyFile = certFile, keyFile
				}
			})
			h.tls = tt.client
			c, _ := h.connect(t, "tok-a")
			sendRaw(t, c, `{"type":"heartbeat","seq":1}`)
			read(t, c)
			for i, n := range sizes {
				// The message frame's JSON wraps the payload; vary the
				// payload so the frames hit the exact sizes too.
				for _, delta := range []int{-80, 0} {
					p := max(n+delta, 1)
					payload := json.RawMessage(`"` + strings.Repeat("z", p) + `"`)
					if err := h.g.Send("t1", "dev-a", Outbound{ID: strconv.Itoa(i), Subject: "s", Payload: payload}); err != nil {
						t.Fatalf("Send %d bytes: %v", p, err)
					}
					m := read(t, c)
					if got := len(m["payload"].(string)); got != p {
						t.Fatalf("payload of %d bytes arrived as %d", p, got)
					}
				}
			}
			s := h.serverSession(t, "t1", "dev-a")
			eventually(t, "written to reach handed", func() bool { return s.written.Load() >= s.handed.Load() })
			if hd, wr := s.handed.Load(), s.written.Load(); hd != wr {
				t.Fatalf("handed %d bytes, nbio wrote %d", hd, wr)
			}
			if si := h.session(t, "t1", "dev-a"); si.PendingBytes != 0 || si.QueueLength != 0 {
				t.Fatalf("session %+v", si)
			}
		})
	}
}

// selfSigned writes an ECDSA certificate for 127.0.0.1 and returns its
// files and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "switchyard test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
