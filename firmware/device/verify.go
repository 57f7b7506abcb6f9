package device

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/switchyard/switchyard/firmware/manifest"
)

// DefaultMaxImageSize is the update slot's size when Config.MaxImageSize
// is zero.
const DefaultMaxImageSize = 64 << 20

// Offer holds the members of a firmware_offer frame (§8.2): the signed
// manifest, its signature and key id, and where to download the image.
type Offer struct {
	manifest.Offer
	URL string `json:"url"` // absolute path of the image on the device endpoint's host and port
}

// Manifest is a parsed, verified firmware manifest (§8.3).
type Manifest = manifest.Manifest

// VerifyOffer makes every check a device makes before it downloads an
// image, in the order of PROTOCOL.md §8.3, and returns the parsed manifest
// when all pass: manifest.Verify (the key, the signature over the exact
// bytes received, then the manifest itself), then Manifest.Admits (the
// model, the version against running and min_version, the size against
// maxSize; 0: DefaultMaxImageSize). The rules are those of package
// firmware/manifest, which the relay uses too.
//
// The error names the first check that failed, e.g. "signature does not
// verify" or "version 1.0.0 is not newer than 1.4.2"; it is meant to be
// the reason of a firmware_status failed. VerifyOffer has no side effects.
func VerifyOffer(o Offer, trusted []ed25519.PublicKey, model, running string, maxSize int64) (Manifest, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxImageSize
	}
	m, err := manifest.Verify(o.Offer, trusted)
	if err != nil {
		return Manifest{}, err
	}
	if err := m.Admits(model, running, maxSize); err != nil {
		return Manifest{}, err
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

// clip shortens s to at most n bytes (for quoting untrusted input in
// reasons, which are at most 256 bytes).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
