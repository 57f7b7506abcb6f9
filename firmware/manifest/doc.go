// Package manifest is the signed description of a firmware release that
// the relay sends and a device verifies (firmware/PROTOCOL.md §8.3): its
// encoding, its Ed25519 signature, the key id, the checks a device makes
// before it downloads, and SemVer parsing and precedence, which both sides
// need to agree on.
//
// The relay (package firmware) signs with Sign; the reference device
// (firmware/device) checks with Verify and Manifest.Admits. These are the
// only implementation of the rules: both sides call them rather than
// keeping their own. The package holds no key and keeps no state; it never
// re-encodes a manifest it verifies.
package manifest
