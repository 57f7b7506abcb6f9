package device

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testKey is a fixed signing key for the pure tests.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func testPub() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// signed makes an offer of manifest text, signed as the relay does (§8.2).
func signed(priv ed25519.PrivateKey, manifest string) Offer {
	pub := priv.Public().(ed25519.PublicKey)
	return Offer{
		Manifest:  manifest,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(manifest))),
		KeyID:     KeyID(pub),
		URL:       "/firmware/v1/x",
	}
}

// goodManifest is a manifest that passes for an esp32-s3 running 1.4.2.
func goodManifest() Manifest {
	return Manifest{
		Format: ManifestFormat, Tenant: "default", Model: "esp32-s3", Version: "1.5.0", MinVersion: "1.2.0",
		Size: 1 << 20, SHA256: strings.Repeat("9f86d081", 8), Notes: "Fixes the backlight.",
		IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), KeyID: KeyID(testPub()),
	}
}

func encode(m Manifest) string {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestVerifyOffer(t *testing.T) {
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	with := func(f func(*Manifest)) Offer {
		m := goodManifest()
		f(&m)
		return signed(testKey, encode(m))
	}
	good := signed(testKey, encode(goodManifest()))
	tests := []struct {
		name    string
		offer   Offer
		running string
		wantErr string // "" for success
	}{
		{"valid", good, "1.4.2", ""},
		{"running with a leading v", good, "v1.4.2", ""},
		{"running a prerelease of the offered version", good, "1.5.0-rc.1", ""},
		{"running exactly min_version", good, "1.2.0", ""},
		{"no min_version", with(func(m *Manifest) { m.MinVersion = "" }), "0.1.0", ""},
		{"prerelease offered", with(func(m *Manifest) { m.Version = "1.5.0-rc.1" }), "1.4.2", ""},
		{"unknown members are ignored", signed(testKey, strings.Replace(encode(goodManifest()), `"tenant"`, `"future":{"x":[1,2]},"tenant"`, 1)), "1.4.2", ""},
		{"null optional members", signed(testKey, strings.Replace(encode(goodManifest()), `"notes":"Fixes the backlight."`, `"notes":null,"min_version":null`, 1)), "1.0.0", ""},
		{"a repeated key: the last counts", signed(testKey, strings.Replace(encode(goodManifest()), `"tenant"`, `"version":"1.0.0","tenant"`, 1)), "1.4.2", ""},

		// 1. key and signature
		{"unknown key id", func() Offer { o := good; o.KeyID = "0011223344556677"; return o }(), "1.4.2", `key_id "0011223344556677" names no trusted key`},
		{"signed by another key under a trusted key id", func() Offer { o := signed(other, good.Manifest); o.KeyID = good.KeyID; return o }(), "1.4.2", "signature does not verify"},
		{"tampered manifest byte", func() Offer { o := good; o.Manifest = strings.Replace(o.Manifest, "1.5.0", "1.6.0", 1); return o }(), "1.4.2", "signature does not verify"},
		{"re-encoded manifest", func() Offer { o := good; o.Manifest = strings.ReplaceAll(o.Manifest, ",", ", "); return o }(), "1.4.2", "signature does not verify"},
		{"tampered signature", func() Offer {
			o := good
			sig, _ := base64.StdEncoding.DecodeString(o.Signature)
			sig[10] ^= 1
			o.Signature = base64.StdEncoding.EncodeToString(sig)
			return o
		}(), "1.4.2", "signature does not verify"},
		{"signature not base64", func() Offer { o := good; o.Signature = strings.Repeat("!", 88); return o }(), "1.4.2", "signature is not valid base64"},
		{"signature too short", func() Offer { o := good; o.Signature = o.Signature[:86]; return o }(), "1.4.2", "signature is not 88 characters of base64"},
		// A tampered manifest that would also fail later checks still fails
		// on the signature: nothing is parsed before it verifies.
		{"tampered and wrong model", func() Offer { o := good; o.Manifest = strings.Replace(o.Manifest, "esp32-s3", "esp32-c3", 1); return o }(), "1.4.2", "signature does not verify"},

		// 2. parse, format, key_id, size, sha256
		{"not JSON", signed(testKey, "format=switchyard"), "1.4.2", "manifest does not parse"},
		{"not an object", signed(testKey, `["switchyard-firmware-manifest/1"]`), "1.4.2", "manifest does not parse"},
		{"null", signed(testKey, `null`), "1.4.2", "manifest does not parse: not a JSON object"},
		{"trailing data", signed(testKey, encode(goodManifest())+"{}"), "1.4.2", "manifest does not parse"},
		{"wrong format", with(func(m *Manifest) { m.Format = "switchyard-firmware-manifest/2" }), "1.4.2", `manifest format "switchyard-firmware-manifest/2" is not switchyard-firmware-manifest/1`},
		{"no format", signed(testKey, strings.Replace(encode(goodManifest()), `"format":"switchyard-firmware-manifest/1",`, "", 1)), "1.4.2", "manifest has no format"},
		{"no issued_at", signed(testKey, strings.Replace(encode(goodManifest()), `"issued_at":"2026-01-02T03:04:05Z",`, "", 1)), "1.4.2", "manifest has no issued_at"},
		{"issued_at not a time", signed(testKey, strings.Replace(encode(goodManifest()), `"2026-01-02T03:04:05Z"`, `"yesterday"`, 1)), "1.4.2", `manifest issued_at "yesterday" is not an RFC 3339 time`},
		{"key_id differs from the offer's", with(func(m *Manifest) { m.KeyID = "0011223344556677" }), "1.4.2", `manifest key_id "0011223344556677" is not the offer's`},
		{"size as a string", signed(testKey, strings.Replace(encode(goodManifest()), `"size":1048576`, `"size":"1048576"`, 1)), "1.4.2", "manifest does not parse"},
		{"size as a fraction", signed(testKey, strings.Replace(encode(goodManifest()), `"size":1048576`, `"size":1048576.5`, 1)), "1.4.2", "manifest does not parse"},
		{"size zero", with(func(m *Manifest) { m.Size = 0 }), "1.4.2", "manifest size 0 is not positive"},
		{"size negative", with(func(m *Manifest) { m.Size = -5 }), "1.4.2", "manifest size -5 is not positive"},
		{"sha256 upper case", with(func(m *Manifest) { m.SHA256 = strings.ToUpper(m.SHA256) }), "1.4.2", "is not 64 lower-case hex digits"},
		{"sha256 short", with(func(m *Manifest) { m.SHA256 = m.SHA256[:63] }), "1.4.2", "is not 64 lower-case hex digits"},

		// 3. model
		{"wrong model", with(func(m *Manifest) { m.Model = "esp32-c3" }), "1.4.2", `model "esp32-c3" is not this device's "esp32-s3"`},
		{"wrong model and older: the model is checked first", with(func(m *Manifest) { m.Model = "esp32-c3"; m.Version = "1.0.0" }), "1.4.2", `model "esp32-c3" is not this device's "esp32-s3"`},

		// 4. version and min_version
		{"older", with(func(m *Manifest) { m.Version = "1.0.0" }), "1.4.2", "version 1.0.0 is not newer than 1.4.2"},
		{"equal", with(func(m *Manifest) { m.Version = "1.4.2" }), "1.4.2", "version 1.4.2 is not newer than 1.4.2"},
		{"equal but for build metadata", with(func(m *Manifest) { m.Version = "1.4.2+build.7" }), "1.4.2", "version 1.4.2+build.7 is not newer than 1.4.2"},
		{"a prerelease of the running version", with(func(m *Manifest) { m.Version = "1.4.2-rc.1" }), "1.4.2", "version 1.4.2-rc.1 is not newer than 1.4.2"},
		{"below min_version", good, "1.1.9", "running version 1.1.9 is below min_version 1.2.0"},
		{"version not SemVer", with(func(m *Manifest) { m.Version = "1.5" }), "1.4.2", `version "1.5" is not a semantic version`},
		{"min_version not SemVer", with(func(m *Manifest) { m.MinVersion = "latest" }), "1.4.2", `min_version "latest" is not a semantic version`},
		{"running version not SemVer", good, "build-42", `running version "build-42" is not a semantic version`},

		// 5. size
		{"too large", with(func(m *Manifest) { m.Size = 1<<20 + 1 }), "1.4.2", "size 1048577 exceeds the update slot's 1048576 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := VerifyOffer(tc.offer, []ed25519.PublicKey{testPub()}, "esp32-s3", tc.running, 1<<20)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("VerifyOffer: %v", err)
				}
				if m.Format != ManifestFormat || m.Model != "esp32-s3" || m.Size <= 0 || m.KeyID != tc.offer.KeyID {
					t.Fatalf("VerifyOffer returned %+v", m)
				}
				return
			}
			if err == nil {
				t.Fatalf("VerifyOffer accepted it: %+v", m)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("VerifyOffer: %q; want it to say %q", err, tc.wantErr)
			}
			if len(err.Error()) > maxReasonLen {
				t.Fatalf("reason longer than %d bytes: %q", maxReasonLen, err)
			}
		})
	}
}

func TestVerifyOfferResult(t *testing.T) {
	m, err := VerifyOffer(signed(testKey, encode(goodManifest())), []ed25519.PublicKey{testPub()}, "esp32-s3", "1.4.2", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := goodManifest(); m != want {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	// A key of the wrong length among the trusted ones is skipped, not a panic.
	if _, err := VerifyOffer(signed(testKey, encode(goodManifest())), []ed25519.PublicKey{testPub()[:31], testPub()}, "esp32-s3", "1.4.2", 0); err != nil {
		t.Fatal(err)
	}
	// The default slot size.
	big := goodManifest()
	big.Size = DefaultMaxImageSize + 1
	if _, err := VerifyOffer(signed(testKey, encode(big)), []ed25519.PublicKey{testPub()}, "esp32-s3", "1.4.2", 0); err == nil {
		t.Fatal("accepted an image larger than DefaultMaxImageSize")
	}
}

func TestKeyID(t *testing.T) {
	pub := testPub()
	sum := sha256.Sum256(pub)
	if got, want := KeyID(pub), hex.EncodeToString(sum[:8]); got != want || len(got) != 16 {
		t.Fatalf("KeyID = %q, want %q", got, want)
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

// FuzzVerifyOffer checks that VerifyOffer never panics and that whatever
// it accepts passed every check of §8.3. With sign set, the fuzzer's
// manifest is signed with the trusted key, so that the checks after the
// signature are explored too.
func FuzzVerifyOffer(f *testing.F) {
	pub := testPub()
	good := encode(goodManifest())
	f.Add(good, "", KeyID(pub), "1.4.2", true)
	f.Add(good, signed(testKey, good).Signature, KeyID(pub), "v1.0.0", false)
	f.Add(strings.Replace(good, "1.5.0", "2.0.0-rc.1", 1), "", KeyID(pub), "2.0.0-beta.11", true)
	f.Add(`{"format":"switchyard-firmware-manifest/1","size":1e3}`, "", KeyID(pub), "0.0.1", true)
	f.Add("", "", "", "", false)
	const maxSize = 1 << 20
	f.Fuzz(func(t *testing.T, manifest, sig, keyID, running string, sign bool) {
		if sign {
			sig = base64.StdEncoding.EncodeToString(ed25519.Sign(testKey, []byte(manifest)))
		}
		m, err := VerifyOffer(Offer{Manifest: manifest, Signature: sig, KeyID: keyID}, []ed25519.PublicKey{pub}, "esp32-s3", running, maxSize)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// 1.
		raw, _ := base64.StdEncoding.DecodeString(sig)
		if keyID != KeyID(pub) || !ed25519.Verify(pub, []byte(manifest), raw) {
			t.Fatalf("accepted an offer whose signature does not verify: %q %q", manifest, sig)
		}
		// 2.
		var fields map[string]any
		if err := json.Unmarshal([]byte(manifest), &fields); err != nil {
			t.Fatalf("accepted a manifest that is not a JSON object: %q", manifest)
		}
		if m.Format != ManifestFormat || fields["format"] != ManifestFormat || m.KeyID != keyID || !isLowerHex(m.SHA256, 64) || m.IssuedAt.IsZero() && fields["issued_at"] == nil {
			t.Fatalf("accepted %+v from %q", m, manifest)
		}
		// 3.
		if m.Model != "esp32-s3" {
			t.Fatalf("accepted model %q", m.Model)
		}
		// 4.
		if c, err := CompareVersions(m.Version, running); err != nil || c <= 0 || strings.HasPrefix(m.Version, "v") {
			t.Fatalf("accepted version %q over %q (%d, %v)", m.Version, running, c, err)
		}
		if m.MinVersion != "" {
			if c, err := CompareVersions(running, m.MinVersion); err != nil || c < 0 {
				t.Fatalf("accepted running %q below min_version %q", running, m.MinVersion)
			}
		}
		// 5.
		if m.Size <= 0 || m.Size > maxSize {
			t.Fatalf("accepted size %d", m.Size)
		}
	})
}
