package dgraph

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
)

// KeySize is the length of the encryption key: AES-256.
const KeySize = 32

// sealer encrypts the secrets kept in the galaxy namespace. The associated
// data binds a sealed value to the record it belongs to, so that a value
// copied onto another record does not open.
type sealer struct{ aead cipher.AEAD }

const sealVersion = 1

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key has %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain []byte, bound string) string {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	_, _ = rand.Read(out[1:])
	out = s.aead.Seal(out, out[1:], plain, []byte(bound))
	return base64.RawStdEncoding.EncodeToString(out)
}

var errWrongKey = errors.New("does not open with this encryption key")

func (s *sealer) open(sealed, bound string) ([]byte, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	n := s.aead.NonceSize()
	if err != nil || len(raw) < 1+n || raw[0] != sealVersion {
		return nil, errors.New("is not a sealed value")
	}
	plain, err := s.aead.Open(nil, raw[1:1+n], raw[1+n:], []byte(bound))
	if err != nil {
		return nil, errWrongKey
	}
	return plain, nil
}
