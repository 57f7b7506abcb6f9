// Package token makes and hashes the bearer secrets Switchyard hands out:
// device tokens, the operator's API key and tenant API keys. A secret is
// shown to its owner once; only its SHA-256 is kept. The secrets are 256
// random bits, so a fast hash is enough: there is nothing to brute-force
// that a slow hash would protect.
//
// The package never stores, logs or compares plaintext secrets beyond the
// call that creates them.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// Prefixes tell a reader what kind of secret leaked (as GitHub's do).
const (
	DevicePrefix    = "sydev_"
	OperatorPrefix  = "syop_"
	TenantKeyPrefix = "sytk_"
)

// Hash is the stored form of a secret.
type Hash [sha256.Size]byte

// New returns a fresh secret with prefix and its hash.
func New(prefix string) (string, Hash) {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on Linux (Go ≥ 1.24 panics instead)
	s := prefix + base64.RawURLEncoding.EncodeToString(raw[:])
	return s, Of(s)
}

// Of hashes a presented secret.
func Of(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// FromBytes converts a stored hash; ok is false when b is not a hash.
func FromBytes(b []byte) (h Hash, ok bool) {
	if len(b) != len(h) {
		return h, false
	}
	copy(h[:], b)
	return h, true
}

// Matches reports, in constant time, whether secret hashes to h.
func (h Hash) Matches(secret string) bool {
	got := Of(secret)
	return subtle.ConstantTimeCompare(got[:], h[:]) == 1
}
