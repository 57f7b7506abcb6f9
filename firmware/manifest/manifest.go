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

// Verify makes the checks of PROTOCOL.md §8.3 that need no knowledge of the
// device (steps 1 and 2), in the spec's order, and returns the manifest
// when all pass:
//
//  1. the offer's key_id names one of trusted (keys that are not 32 bytes
//     are skipped) and its signature, 88 characters of canonical standard
//     base64, verifies over the manifest's exact bytes; nothing is parsed
//     before that;
//  2. the manifest parses as a JSON object by the rules of §2 (keys are
//     case-sensitive, a repeated key's last value counts, null is absent,
//     unknown members are ignored), its format is Format, every required
//     member is present with its JSON type (size an integer, the others
//     strings), its key_id equals the offer's, size is positive, sha256 is
//     64 lower-case hex digits, issued_at is an RFC 3339 time, and version
//     and min_version (when present) are strict semantic versions.
//
// The error names the first check that failed, e.g. "signature does not
// verify"; it quotes at most a few dozen characters of what it received,
// so that it can be a firmware_status reason (§8.5). Verify does not
// compare the manifest with the device: see Admits.
func Verify(o Offer, trusted []ed25519.PublicKey) (Manifest, error) {
	i := slices.IndexFunc(trusted, func(k ed25519.PublicKey) bool {
		return len(k) == ed25519.PublicKeySize && KeyID(k) == o.KeyID
	})
	if i < 0 {
		return Manifest{}, fmt.Errorf("key_id %.32q names no trusted key", o.KeyID)
	}
	if n := base64.StdEncoding.EncodedLen(ed25519.SignatureSize); len(o.Signature) != n {
		return Manifest{}, fmt.Errorf("signature is not %d characters of base64", n)
	}
	// Strict: one signature has one encoding (no stray bits in the padding).
	sig, err := base64.StdEncoding.Strict().DecodeString(o.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return Manifest{}, errors.New("signature is not valid base64")
	}
	if !ed25519.Verify(trusted[i], []byte(o.Manifest), sig) {
		return Manifest{}, errors.New("signature does not verify")
	}
	return parse(o.Manifest, o.KeyID)
}

// parse decodes a manifest whose signature verified and checks its members
// (step 2 of Verify).
func parse(text, keyID string) (Manifest, error) {
	// A map keeps the keys as written (case-sensitive), the last value of
	// a repeated key, and null as null; each member is then decoded alone.
	var members map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &members); err != nil {
		if _, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
			return Manifest{}, errors.New("manifest does not parse: not a JSON object")
		}
		return Manifest{}, fmt.Errorf("manifest does not parse: %v", err)
	}
	if members == nil { // the text is null
		return Manifest{}, errors.New("manifest does not parse: not a JSON object")
	}
	var m Manifest
	// The format first: a manifest of another format is refused as such,
	// whatever members it has.
	if ok, err := member(members, "format", &m.Format); err != nil {
		return Manifest{}, err
	} else if !ok {
		return Manifest{}, errors.New("manifest has no format")
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("manifest format %.64q is not %s", m.Format, Format)
	}
	var issuedAt string
	for _, f := range []struct {
		name string
		v    any
	}{
		{"tenant", &m.Tenant}, {"model", &m.Model}, {"version", &m.Version}, {"size", &m.Size},
		{"sha256", &m.SHA256}, {"issued_at", &issuedAt}, {"key_id", &m.KeyID},
	} {
		if ok, err := member(members, f.name, f.v); err != nil {
			return Manifest{}, err
		} else if !ok {
			return Manifest{}, fmt.Errorf("manifest has no %s", f.name)
		}
	}
	hasMinVersion, err := member(members, "min_version", &m.MinVersion)
	if err != nil {
		return Manifest{}, err
	}
	if _, err := member(members, "notes", &m.Notes); err != nil {
		return Manifest{}, err
	}
	switch {
	case m.KeyID != keyID:
		return Manifest{}, fmt.Errorf("manifest key_id %.32q is not the offer's %q", m.KeyID, keyID)
	case m.Size <= 0:
		return Manifest{}, fmt.Errorf("manifest size %d is not positive", m.Size)
	case !sha256Hex.MatchString(m.SHA256):
		return Manifest{}, fmt.Errorf("manifest sha256 %.80q is not 64 lower-case hex digits", m.SHA256)
	}
	// Strictly RFC 3339, as encoding/json reads a time.Time.
	if err := m.IssuedAt.UnmarshalText([]byte(issuedAt)); err != nil {
		return Manifest{}, fmt.Errorf("manifest issued_at %.64q is not an RFC 3339 time", issuedAt)
	}
	// ParseVersion's errors begin with "version": the prefixes say which.
	if _, err := ParseVersion(m.Version); err != nil {
		return Manifest{}, fmt.Errorf("manifest %w", err)
	}
	if hasMinVersion { // present but empty is not a version either
		if _, err := ParseVersion(m.MinVersion); err != nil {
			return Manifest{}, fmt.Errorf("manifest min_%w", err)
		}
	}
	return m, nil
}

// member decodes the member name of a manifest into v, a *string or an
// *int64, and reports whether it was given: absent and null are the same
// (§2), and leave v as it is.
func member(members map[string]json.RawMessage, name string, v any) (bool, error) {
	raw, ok := members[name]
	if !ok || string(raw) == "null" {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		if _, ok := v.(*int64); ok {
			return true, fmt.Errorf("manifest does not parse: %s is not a 64-bit integer", name)
		}
		return true, fmt.Errorf("manifest does not parse: %s is not a string", name)
	}
	return true, nil
}

// Admits makes the checks of PROTOCOL.md §8.3 that compare a verified
// manifest with the device (steps 3 to 5), in the spec's order, and says
// why a device of model running version running must not install m (nil:
// it may): another model; a version that is not newer by SemVer precedence
// (the running version may have a leading "v", see ParseDeviceVersion); a
// running version below m's min_version; an image larger than maxSize (0:
// no limit).
func (m Manifest) Admits(model, running string, maxSize int64) error {
	if m.Model != model {
		return fmt.Errorf("model %.64q is not this device's %q", m.Model, model)
	}
	next, err := ParseVersion(m.Version)
	if err != nil {
		return fmt.Errorf("manifest %w", err)
	}
	cur, err := ParseDeviceVersion(running)
	if err != nil {
		return fmt.Errorf("running %w", err)
	}
	if next.Compare(cur) <= 0 {
		return fmt.Errorf("version %s is not newer than %s", m.Version, running)
	}
	if m.MinVersion != "" {
		minimum, err := ParseVersion(m.MinVersion)
		if err != nil {
			return fmt.Errorf("manifest min_%w", err)
		}
		if cur.Compare(minimum) < 0 {
			return fmt.Errorf("running version %s is below min_version %s", running, m.MinVersion)
		}
	}
	if maxSize > 0 && m.Size > maxSize {
		return fmt.Errorf("size %d exceeds the update slot's %d bytes", m.Size, maxSize)
	}
	return nil
}
