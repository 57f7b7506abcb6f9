package device

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// ManifestFormat is the only manifest format a device accepts (§8.3).
const ManifestFormat = "switchyard-firmware-manifest/1"

// DefaultMaxImageSize is the update slot's size when Config.MaxImageSize
// is zero.
const DefaultMaxImageSize = 64 << 20

// Offer holds the members of a firmware_offer frame (§8.2).
type Offer struct {
	Manifest  string `json:"manifest"`  // the signed manifest, as the exact text received
	Signature string `json:"signature"` // Ed25519 signature of Manifest, standard base64 with padding
	KeyID     string `json:"key_id"`    // the signing key, see KeyID
	URL       string `json:"url"`       // absolute path of the image on the device endpoint's host and port
}

// Manifest is a parsed, verified firmware manifest (§8.3). Its fields are
// in the order the relay writes them, so json.Marshal of a Manifest gives
// the relay's encoding (tests use that to sign manifests).
type Manifest struct {
	Format     string    `json:"format"`
	Tenant     string    `json:"tenant"`
	Model      string    `json:"model"`
	Version    string    `json:"version"`
	MinVersion string    `json:"min_version,omitempty"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"` // 64 lower-case hex digits
	Notes      string    `json:"notes,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
	KeyID      string    `json:"key_id"`
}

// KeyID names an Ed25519 public key as the relay does (§8.3): the first 8
// bytes of the SHA-256 of the raw 32-byte key, in lower-case hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// rawManifest is the manifest as decoded, before the checks: pointers tell
// an absent (or null) member from an empty one, and a member of the wrong
// JSON type fails the decoding.
type rawManifest struct {
	Format     *string `json:"format"`
	Tenant     *string `json:"tenant"`
	Model      *string `json:"model"`
	Version    *string `json:"version"`
	MinVersion *string `json:"min_version"`
	Size       *int64  `json:"size"`
	SHA256     *string `json:"sha256"`
	Notes      *string `json:"notes"`
	IssuedAt   *string `json:"issued_at"`
	KeyID      *string `json:"key_id"`
}

// VerifyOffer runs, in the order of PROTOCOL.md §8.3, every check a device
// makes before it downloads an image, and returns the parsed manifest when
// all pass:
//
//  1. the offer's key_id names one of trusted and the signature verifies
//     over the exact bytes of the manifest string (before any parsing);
//  2. the manifest parses, its format is ManifestFormat, its key_id equals
//     the offer's, size is a positive integer and sha256 is 64 lower-case
//     hex digits;
//  3. its model is model;
//  4. its version (SemVer) is higher than running (SemVer; a leading "v"
//     is accepted) and running is not below its min_version;
//  5. its size is at most maxSize (0: DefaultMaxImageSize).
//
// The error names the first check that failed, e.g. "signature does not
// verify" or "version 1.0.0 is not newer than 1.4.2"; it is meant to be
// the reason of a firmware_status failed. VerifyOffer has no side effects.
func VerifyOffer(o Offer, trusted []ed25519.PublicKey, model, running string, maxSize int64) (Manifest, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxImageSize
	}
	// 1. The key, then the signature over the bytes as received.
	var pub ed25519.PublicKey
	for _, k := range trusted {
		if len(k) == ed25519.PublicKeySize && KeyID(k) == o.KeyID {
			pub = k
			break
		}
	}
	if pub == nil {
		return Manifest{}, fmt.Errorf("key_id %q names no trusted key", clip(o.KeyID, 32))
	}
	if len(o.Signature) != base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
		return Manifest{}, fmt.Errorf("signature is not %d characters of base64", base64.StdEncoding.EncodedLen(ed25519.SignatureSize))
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(o.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Manifest{}, errors.New("signature is not valid base64")
	}
	if !ed25519.Verify(pub, []byte(o.Manifest), sig) {
		return Manifest{}, errors.New("signature does not verify")
	}

	// 2. Parse, strictly enough: every required member present with its
	// type; unknown members are ignored (forward compatibility).
	var r rawManifest
	if err := json.Unmarshal([]byte(o.Manifest), &r); err != nil {
		return Manifest{}, fmt.Errorf("manifest does not parse: %v", err)
	}
	if !bytes.HasPrefix(bytes.TrimLeft([]byte(o.Manifest), " \t\r\n"), []byte("{")) {
		return Manifest{}, errors.New("manifest does not parse: not a JSON object")
	}
	for _, req := range []struct {
		name string
		ok   bool
	}{
		{"format", r.Format != nil}, {"tenant", r.Tenant != nil}, {"model", r.Model != nil},
		{"version", r.Version != nil}, {"size", r.Size != nil}, {"sha256", r.SHA256 != nil},
		{"issued_at", r.IssuedAt != nil}, {"key_id", r.KeyID != nil},
	} {
		if !req.ok {
			return Manifest{}, fmt.Errorf("manifest has no %s", req.name)
		}
	}
	if *r.Format != ManifestFormat {
		return Manifest{}, fmt.Errorf("manifest format %q is not %s", clip(*r.Format, 64), ManifestFormat)
	}
	if *r.KeyID != o.KeyID {
		return Manifest{}, fmt.Errorf("manifest key_id %q is not the offer's %q", clip(*r.KeyID, 32), o.KeyID)
	}
	if *r.Size <= 0 {
		return Manifest{}, fmt.Errorf("manifest size %d is not positive", *r.Size)
	}
	if !isLowerHex(*r.SHA256, sha256.Size*2) {
		return Manifest{}, fmt.Errorf("manifest sha256 %q is not 64 lower-case hex digits", clip(*r.SHA256, 80))
	}
	issued, err := time.Parse(time.RFC3339Nano, *r.IssuedAt)
	if err != nil {
		return Manifest{}, fmt.Errorf("manifest issued_at %q is not an RFC 3339 time", clip(*r.IssuedAt, 64))
	}
	m := Manifest{
		Format: *r.Format, Tenant: *r.Tenant, Model: *r.Model, Version: *r.Version,
		Size: *r.Size, SHA256: *r.SHA256, IssuedAt: issued, KeyID: *r.KeyID,
	}
	if r.MinVersion != nil {
		m.MinVersion = *r.MinVersion
	}
	if r.Notes != nil {
		m.Notes = *r.Notes
	}

	// 3. The model.
	if m.Model != model {
		return Manifest{}, fmt.Errorf("model %q is not this device's %q", clip(m.Model, 64), model)
	}

	// 4. Newer than what runs, and what runs is not below min_version.
	nv, err := parseSemver(m.Version)
	if err != nil {
		return Manifest{}, fmt.Errorf("version %q is not a semantic version: %v", clip(m.Version, 64), err)
	}
	rv, err := parseRunning(running)
	if err != nil {
		return Manifest{}, fmt.Errorf("running version %q is not a semantic version: %v", clip(running, 64), err)
	}
	if nv.compare(rv) <= 0 {
		return Manifest{}, fmt.Errorf("version %s is not newer than %s", m.Version, running)
	}
	if r.MinVersion != nil {
		mv, err := parseSemver(m.MinVersion)
		if err != nil {
			return Manifest{}, fmt.Errorf("min_version %q is not a semantic version: %v", clip(m.MinVersion, 64), err)
		}
		if rv.compare(mv) < 0 {
			return Manifest{}, fmt.Errorf("running version %s is below min_version %s", running, m.MinVersion)
		}
	}

	// 5. The slot.
	if m.Size > maxSize {
		return Manifest{}, fmt.Errorf("size %d exceeds the update slot's %d bytes", m.Size, maxSize)
	}
	return m, nil
}

// VerifyImage checks the file at path against the manifest: its length
// must be m.Size and its SHA-256 m.SHA256 (§8.3, after the download).
func VerifyImage(m Manifest, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("slot: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("slot: %v", err)
	}
	if st.Size() != m.Size {
		return fmt.Errorf("size mismatch: got %d bytes, manifest says %d", st.Size(), m.Size)
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("slot: %v", err)
	}
	if n != m.Size {
		return fmt.Errorf("size mismatch: got %d bytes, manifest says %d", n, m.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SHA256 {
		return fmt.Errorf("sha256 mismatch: got %s, manifest says %s", got, m.SHA256)
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// clip shortens s to at most n bytes (for quoting untrusted input in
// reasons, which are at most 256 bytes).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
