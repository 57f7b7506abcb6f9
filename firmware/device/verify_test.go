package device

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/firmware/manifest"
)

// VerifyOffer is manifest.Verify then Manifest.Admits, whose rules are
// tested in firmware/manifest; this tests the joint: the order (the
// signature before the model, the model before the version), the default
// slot size and that a refusal returns no manifest.
func TestVerifyOffer(t *testing.T) {
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	trusted := []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}
	offer := func(f func(*Manifest)) Offer {
		m := Manifest{Tenant: "default", Model: "esp32-s3", Version: "1.5.0", MinVersion: "1.2.0",
			Size: 1 << 20, SHA256: strings.Repeat("9f86d081", 8), IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		if f != nil {
			f(&m)
		}
		o, err := manifest.Sign(m, priv)
		if err != nil {
			t.Fatal(err)
		}
		return Offer{Offer: o, URL: "/firmware/v1/" + m.SHA256}
	}
	tampered := offer(func(m *Manifest) { m.Model = "esp32-c3"; m.Version = "1.0.0" })
	tampered.Manifest = strings.Replace(tampered.Manifest, `"default"`, `"evil"`, 1)
	tests := []struct {
		name    string
		offer   Offer
		maxSize int64
		want    string // what the error says; "" for none
	}{
		{"valid", offer(nil), 0, ""},
		{"the slot", offer(nil), 1 << 20, ""},
		{"wrong model, older and tampered: the signature first", tampered, 0, "signature does not verify"},
		{"wrong model and older: the model first", offer(func(m *Manifest) { m.Model = "esp32-c3"; m.Version = "1.0.0" }), 0,
			`model "esp32-c3" is not this device's "esp32-s3"`},
		{"older", offer(func(m *Manifest) { m.Version = "1.0.0" }), 0, "version 1.0.0 is not newer than 1.4.2"},
		{"larger than the slot", offer(nil), 1<<20 - 1, "size 1048576 exceeds the update slot's 1048575 bytes"},
		{"larger than the default slot", offer(func(m *Manifest) { m.Size = DefaultMaxImageSize + 1 }), 0,
			"size 67108865 exceeds the update slot's 67108864 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := VerifyOffer(tc.offer, trusted, "esp32-s3", "1.4.2", tc.maxSize)
			if tc.want == "" {
				if err != nil || m.Version != "1.5.0" || m.KeyID != tc.offer.KeyID {
					t.Fatalf("VerifyOffer: %+v, %v", m, err)
				}
				return
			}
			if err == nil || err.Error() != tc.want || m != (Manifest{}) {
				t.Fatalf("VerifyOffer: %+v, %v; want the error %q", m, err, tc.want)
			}
		})
	}
}

func TestVerifyImage(t *testing.T) {
	dir := t.TempDir()
	image := bytes.Repeat([]byte("firmware"), 1000)
	sum := sha256.Sum256(image)
	m := Manifest{Size: int64(len(image)), SHA256: hex.EncodeToString(sum[:])}
	path := filepath.Join(dir, "slot.bin")
	write := func(b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(image)
	if err := VerifyImage(m, path); err != nil {
		t.Fatalf("VerifyImage: %v", err)
	}
	tampered := bytes.Clone(image)
	tampered[4000] ^= 0x20
	write(tampered)
	if err := VerifyImage(m, path); err == nil || !strings.HasPrefix(err.Error(), "sha256 mismatch: got ") {
		t.Fatalf("tampered image: %v", err)
	}
	write(image[:len(image)-1])
	if err := VerifyImage(m, path); err == nil || !strings.HasPrefix(err.Error(), "size mismatch") {
		t.Fatalf("short image: %v", err)
	}
	write(append(bytes.Clone(image), 0))
	if err := VerifyImage(m, path); err == nil || !strings.HasPrefix(err.Error(), "size mismatch") {
		t.Fatalf("long image: %v", err)
	}
	if err := VerifyImage(m, filepath.Join(dir, "missing")); err == nil || !strings.HasPrefix(err.Error(), "slot: ") {
		t.Fatalf("missing slot: %v", err)
	}
}
