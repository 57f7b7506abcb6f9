package firmware

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/switchyard/switchyard/firmware/manifest"
)

// Key is the relay's manifest signing key, kept in a PEM file (PKCS #8) and
// generated the first time it is needed, so a relay that never publishes
// firmware never makes one.
type Key struct {
	path string
	mu   sync.Mutex
	priv ed25519.PrivateKey
}

// NewKey returns the key kept at path; nothing is read or written yet.
func NewKey(path string) *Key { return &Key{path: path} }

// PublicKey describes the public half, as the admin API shows it.
type PublicKey struct {
	Algorithm string `json:"algorithm"`  // "ed25519"
	KeyID     string `json:"key_id"`     // manifest.KeyID
	PublicKey []byte `json:"public_key"` // the raw 32 bytes (base64 in JSON)
	PEM       string `json:"pem"`        // a PEM "PUBLIC KEY" block (PKIX)
}

// Private returns the private key, loading it from the file or, when the
// file does not exist, generating one and writing it (mode 0600, its folder
// created 0700). A file that exists but holds no Ed25519 private key is an
// error: it is never replaced.
func (k *Key) Private() (ed25519.PrivateKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.priv != nil {
		return k.priv, nil
	}
	data, err := os.ReadFile(k.path)
	switch {
	case err == nil:
		priv, err := parsePrivate(data)
		if err != nil {
			return nil, fmt.Errorf("firmware: signing key %s: %w", k.path, err)
		}
		k.priv = priv
		return priv, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("firmware: signing key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("firmware: generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("firmware: encode signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return nil, fmt.Errorf("firmware: signing key: %w", err)
	}
	// O_EXCL: two relays sharing a folder by mistake must not both write.
	f, err := os.OpenFile(k.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("firmware: write signing key: %w", err)
	}
	werr := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(k.path)
		return nil, fmt.Errorf("firmware: write signing key: %w", err)
	}
	k.priv = priv
	return priv, nil
}

func parsePrivate(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New(`no PEM "PRIVATE KEY" block`)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T, not an Ed25519 key", key)
	}
	return priv, nil
}

// Public describes the public key (creating the key pair if needed).
func (k *Key) Public() (PublicKey, error) {
	priv, err := k.Private()
	if err != nil {
		return PublicKey{}, err
	}
	pub := priv.Public().(ed25519.PublicKey)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return PublicKey{}, fmt.Errorf("firmware: encode public key: %w", err)
	}
	return PublicKey{
		Algorithm: "ed25519",
		KeyID:     manifest.KeyID(pub),
		PublicKey: pub,
		PEM:       string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
	}, nil
}
