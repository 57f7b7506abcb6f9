package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// Format is the value of every manifest's format member.
const Format = "switchyard-firmware-manifest/1"

// Manifest is what a device is told about a release before it downloads
// it (PROTOCOL.md §8.3). Its JSON members are in the order of the protocol's
// table, which encoding/json keeps.
type Manifest struct {
	Format     string    `json:"format"`
	Tenant     string    `json:"tenant"`
	Model      string    `json:"model"`
	Version    string    `json:"version"`
	MinVersion string    `json:"min_version,omitempty"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Notes      string    `json:"notes,omitempty"`
	IssuedAt   time.Time `json:"issued_at"`
	KeyID      string    `json:"key_id"`
}

// Offer is a manifest as it travels: its exact bytes, their signature in
// standard base64 and the signing key's id (the firmware_offer frame's
// members, without the download URL).
type Offer struct {
	Manifest  string `json:"manifest"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
}

// KeyID names a public key: the first 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Sign encodes m, with m.Format and m.KeyID set from the key, and signs the
// bytes.
func Sign(m Manifest, key ed25519.PrivateKey) (Offer, error) {
	pub, ok := key.Public().(ed25519.PublicKey)
	if !ok || len(key) != ed25519.PrivateKeySize {
		return Offer{}, errors.New("manifest: sign: not an Ed25519 private key")
	}
	m.Format, m.KeyID = Format, KeyID(pub)
	m.IssuedAt = m.IssuedAt.UTC()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return Offer{}, fmt.Errorf("manifest: sign: %w", err)
	}
	text := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return Offer{
		Manifest:  string(text),
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, text)),
		KeyID:     m.KeyID,
	}, nil
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Verify checks an offer against the trusted keys, in the order of
// PROTOCOL.md §8.3: a trusted key id, the signature over the manifest's exact
// bytes, then the manifest itself (format, the same key id, a version, a
// positive size, a sum). It does not compare the manifest with the device:
// see Admits.
func Verify(o Offer, trusted []ed25519.PublicKey) (Manifest, error) {
	var m Manifest
	i := slices.IndexFunc(trusted, func(k ed25519.PublicKey) bool { return KeyID(k) == o.KeyID })
	if i < 0 {
		return m, fmt.Errorf("key %q is not a trusted key", o.KeyID)
	}
	sig, err := base64.StdEncoding.DecodeString(o.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return m, errors.New("signature is not 64 bytes of base64")
	}
	if !ed25519.Verify(trusted[i], []byte(o.Manifest), sig) {
		return m, errors.New("signature does not verify")
	}
	if err := json.Unmarshal([]byte(o.Manifest), &m); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	switch {
	case m.Format != Format:
		return m, fmt.Errorf("manifest format %q is not %q", m.Format, Format)
	case m.KeyID != o.KeyID:
		return m, fmt.Errorf("manifest names key %q, the offer %q", m.KeyID, o.KeyID)
	case m.Size <= 0:
		return m, fmt.Errorf("manifest size %d is not positive", m.Size)
	case !sha256Hex.MatchString(m.SHA256):
		return m, fmt.Errorf("manifest sha256 %q is not 64 lower-case hex digits", m.SHA256)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return m, fmt.Errorf("manifest: %w", err)
	}
	if m.MinVersion != "" {
		if _, err := ParseVersion(m.MinVersion); err != nil {
			return m, fmt.Errorf("manifest: min_version: %w", err)
		}
	}
	return m, nil
}

// Admits reports why a device of model running version running must not
// install m (nil: it may): another model, a version that is not newer, a
// running version below m's minimum, or an image larger than maxSize.
func (m Manifest) Admits(model, running string, maxSize int64) error {
	if m.Model != model {
		return fmt.Errorf("model %q is not this device's %q", m.Model, model)
	}
	cur, err := ParseDeviceVersion(running)
	if err != nil {
		return fmt.Errorf("running version: %w", err)
	}
	next, err := ParseVersion(m.Version)
	if err != nil {
		return err
	}
	if next.Compare(cur) <= 0 {
		return fmt.Errorf("version %s is not newer than the running %s", m.Version, running)
	}
	if m.MinVersion != "" {
		if minimum, err := ParseVersion(m.MinVersion); err != nil {
			return err
		} else if cur.Compare(minimum) < 0 {
			return fmt.Errorf("running version %s is below the minimum %s", running, m.MinVersion)
		}
	}
	if maxSize > 0 && m.Size > maxSize {
		return fmt.Errorf("image of %d bytes does not fit the %d-byte slot", m.Size, maxSize)
	}
	return nil
}
