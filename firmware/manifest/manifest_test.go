package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestVersionPrecedence(t *testing.T) {
	// SemVer 2.0.0 §11: each is lower than the next.
	ordered := []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0",
	}
	for i := range ordered {
		for j := range ordered {
			a, err := ParseVersion(ordered[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ParseVersion(ordered[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%s vs %s = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	a, _ := ParseVersion("1.0.0+build.1")
	b, _ := ParseVersion("1.0.0+build.2")
	if a.Compare(b) != 0 || a.String() != "1.0.0+build.1" {
		t.Errorf("build metadata must not count: %d, %s", a.Compare(b), a)
	}
}

func TestParseVersionRefuses(t *testing.T) {
	for _, v := range []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.3-", "1.2.3-01", "1.2.3-a..b",
		"1.2.3+", "1.2.3-é", "v1.2.3", " 1.2.3", "1.2.3 ", "99999999999999999999.0.0", strings.Repeat("1", 65)} {
		if _, err := ParseVersion(v); err == nil {
			t.Errorf("ParseVersion(%q) accepted it", v)
		}
	}
	for _, v := range []string{"v1.2.3", "V1.2.3", "1.2.3"} {
		if _, err := ParseDeviceVersion(v); err != nil {
			t.Errorf("ParseDeviceVersion(%q): %v", v, err)
		}
	}
}

func signed(t *testing.T) (Offer, ed25519.PublicKey, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	o, err := Sign(Manifest{Tenant: "acme", Model: "esp32-s3", Version: "1.5.0", MinVersion: "1.2.0", Size: 1 << 20,
		SHA256: strings.Repeat("ab", 32), Notes: "<fixes> & \"quotes\"", IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, priv)
	if err != nil {
		t.Fatal(err)
	}
	return o, pub, priv
}

func TestSignedManifestBytes(t *testing.T) {
	o, pub, _ := signed(t)
	// The member order of PROTOCOL.md §8.3, no spaces, HTML characters as they are.
	want := `{"format":"switchyard-firmware-manifest/1","tenant":"acme","model":"esp32-s3","version":"1.5.0","min_version":"1.2.0",` +
		`"size":1048576,"sha256":"` + strings.Repeat("ab", 32) + `","notes":"<fixes> & \"quotes\"","issued_at":"2026-01-02T03:04:05Z","key_id":"` + KeyID(pub) + `"}`
	if o.Manifest != want {
		t.Errorf("manifest\n got %s\nwant %s", o.Manifest, want)
	}
	if len(o.Signature) != 88 || len(o.KeyID) != 16 {
		t.Errorf("signature %q (%d), key id %q", o.Signature, len(o.Signature), o.KeyID)
	}
	m, err := Verify(o, []ed25519.PublicKey{pub})
	if err != nil || m.Version != "1.5.0" || m.Notes != `<fixes> & "quotes"` {
		t.Fatalf("Verify: %+v, %v", m, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	o, pub, priv := signed(t)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	resign := func(text string) Offer {
		return Offer{Manifest: text, Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(text))), KeyID: o.KeyID}
	}
	tests := []struct {
		name  string
		offer Offer
		keys  []ed25519.PublicKey
		want  string
	}{
		{"untrusted key", o, []ed25519.PublicKey{other}, "not a trusted key"},
		{"no keys", o, nil, "not a trusted key"},
		{"tampered manifest", Offer{Manifest: strings.Replace(o.Manifest, "1.5.0", "1.6.0", 1), Signature: o.Signature, KeyID: o.KeyID}, []ed25519.PublicKey{pub}, "does not verify"},
		{"re-encoded manifest", Offer{Manifest: strings.Replace(o.Manifest, ",", ", ", 1), Signature: o.Signature, KeyID: o.KeyID}, []ed25519.PublicKey{pub}, "does not verify"},
		{"tampered signature", Offer{Manifest: o.Manifest, Signature: strings.Repeat("A", 86) + "==", KeyID: o.KeyID}, []ed25519.PublicKey{pub}, "does not verify"},
		{"short signature", Offer{Manifest: o.Manifest, Signature: "AAAA", KeyID: o.KeyID}, []ed25519.PublicKey{pub}, "64 bytes"},
		{"not JSON", resign("not json"), []ed25519.PublicKey{pub}, "manifest:"},
		{"other format", resign(strings.Replace(o.Manifest, "manifest/1", "manifest/2", 1)), []ed25519.PublicKey{pub}, "format"},
		{"key id differs", resign(strings.Replace(o.Manifest, o.KeyID, "0000000000000000", 1)), []ed25519.PublicKey{pub}, "names key"},
		{"no size", resign(strings.Replace(o.Manifest, `"size":1048576`, `"size":0`, 1)), []ed25519.PublicKey{pub}, "size"},
		{"bad sum", resign(strings.Replace(o.Manifest, "abab", "ABAB", 1)), []ed25519.PublicKey{pub}, "sha256"},
		{"bad version", resign(strings.Replace(o.Manifest, `"version":"1.5.0"`, `"version":"1.5"`, 1)), []ed25519.PublicKey{pub}, "MAJOR.MINOR.PATCH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Verify(tt.offer, tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Verify: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestAdmits(t *testing.T) {
	o, pub, _ := signed(t)
	m, err := Verify(o, []ed25519.PublicKey{pub})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model, running string
		max            int64
		want           string // "" admits
	}{
		{"esp32-s3", "1.4.2", 0, ""},
		{"esp32-s3", "v1.2.0", 4 << 20, ""},
		{"esp32-s3", "1.5.0-rc.1", 0, ""},
		{"esp32-c3", "1.4.2", 0, "model"},
		{"esp32-s3", "1.5.0", 0, "not newer"},
		{"esp32-s3", "1.5.0+other", 0, "not newer"},
		{"esp32-s3", "2.0.0", 0, "not newer"},
		{"esp32-s3", "1.1.9", 0, "below the minimum"},
		{"esp32-s3", "1.4.2", 1 << 19, "does not fit"},
		{"esp32-s3", "latest", 0, "running version"},
	}
	for _, tt := range tests {
		err := m.Admits(tt.model, tt.running, tt.max)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Admits(%q, %q, %d) = %v, want %q", tt.model, tt.running, tt.max, err, tt.want)
		}
	}
}

// FuzzVerify: whatever Verify accepts was signed by the trusted key and is
// a manifest a device can act on.
func FuzzVerify(f *testing.F) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	o, _ := Sign(Manifest{Tenant: "t", Model: "m", Version: "1.0.0", Size: 1, SHA256: strings.Repeat("0", 64)}, priv)
	f.Add(o.Manifest, o.Signature, o.KeyID)
	f.Add("{}", "", "")
	f.Add(strings.Replace(o.Manifest, "1.0.0", "2.0.0", 1), o.Signature, o.KeyID)
	f.Fuzz(func(t *testing.T, text, sig, keyID string) {
		m, err := Verify(Offer{Manifest: text, Signature: sig, KeyID: keyID}, []ed25519.PublicKey{pub})
		if err != nil {
			return
		}
		raw, _ := base64.StdEncoding.DecodeString(sig)
		if !ed25519.Verify(pub, []byte(text), raw) || m.Format != Format || m.KeyID != keyID || m.Size <= 0 {
			t.Fatalf("accepted an offer that fails a check: %+v", m)
		}
		if _, err := ParseVersion(m.Version); err != nil {
			t.Fatalf("accepted version %q: %v", m.Version, err)
		}
	})
}

// FuzzParseVersion: a parsed version prints back as given, and compares
// equal to itself.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "1.0.0-alpha.1+build.5", "0.0.0", "1.2.3-0a", "1.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("%q prints as %q", s, v.String())
		}
		if v.Compare(v) != 0 {
			t.Fatalf("%q does not equal itself", s)
		}
	})
}
