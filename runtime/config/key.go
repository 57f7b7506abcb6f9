package config

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// EncryptionKeySize is the length of SWITCHYARD_ENCRYPTION_KEY: AES-256.
const EncryptionKeySize = 32

// ParseEncryptionKey reads an encryption key written as 64 hex digits or as
// base64 (standard or URL alphabet, padded or not) of 32 bytes. Its errors
// never show the value.
func ParseEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	const hint = " (generate one with: openssl rand -base64 32)"
	if s == "" {
		return nil, errors.New("is empty" + hint)
	}
	if len(s) == 2*EncryptionKeySize {
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != EncryptionKeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d%s", len(k), EncryptionKeySize, hint)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("is neither 64 hex digits nor base64 of %d bytes%s", EncryptionKeySize, hint)
}
