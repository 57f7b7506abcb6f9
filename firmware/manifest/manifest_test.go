package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testKey is the relay's signing key in these tests.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func testPub() ed25519.PublicKey { return testKey.Public().(ed25519.PublicKey) }

// good is a release an esp32-s3 running 1.2.0 or later may install.
func good() Manifest {
	return Manifest{Tenant: "acme", Model: "esp32-s3", Version: "1.5.0", MinVersion: "1.2.0", Size: 1 << 20,
		SHA256: strings.Repeat("ab", 32), Notes: `<fixes> & "quotes"`, IssuedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

// signed is m as the relay offers it (Sign with testKey).
func signed(t testing.TB, m Manifest) Offer {
	t.Helper()
	o, err := Sign(m, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// resign is an offer of text as it is, signed with key: for manifests Sign
// would not write.
func resign(key ed25519.PrivateKey, text string) Offer {
	return Offer{
		Manifest:  text,
		Signature: base64.StdEncoding.EncodeToString(ed25519.Sign(key, []byte(text))),
		KeyID:     KeyID(key.Public().(ed25519.PublicKey)),
	}
}

func TestKeyID(t *testing.T) {
	pub := testPub()
	sum := sha256.Sum256(pub)
	if got, want := KeyID(pub), hex.EncodeToString(sum[:8]); got != want || len(got) != 16 {
		t.Fatalf("KeyID = %q, want %q", got, want)
	}
}

func TestSignedManifestBytes(t *testing.T) {
	o := signed(t, good())
	// The member order of PROTOCOL.md §8.3, no spaces, HTML characters as they are.
	want := `{"format":"switchyard-firmware-manifest/1","tenant":"acme","model":"esp32-s3","version":"1.5.0","min_version":"1.2.0",` +
		`"size":1048576,"sha256":"` + strings.Repeat("ab", 32) + `","notes":"<fixes> & \"quotes\"","issued_at":"2026-01-02T03:04:05Z","key_id":"` + KeyID(testPub()) + `"}`
	if o.Manifest != want {
		t.Errorf("manifest\n got %s\nwant %s", o.Manifest, want)
	}
	if len(o.Signature) != 88 || o.KeyID != KeyID(testPub()) {
		t.Errorf("signature %q (%d), key id %q", o.Signature, len(o.Signature), o.KeyID)
	}
	// What the relay signs verifies, and reads back as it was signed.
	m, err := Verify(o, []ed25519.PublicKey{testPub()})
	wantM := good()
	wantM.Format, wantM.KeyID = Format, KeyID(testPub())
	if err != nil || m != wantM {
		t.Fatalf("Verify: %+v, %v\nwant %+v", m, err, wantM)
	}
}

// same reports whether a and b are the same manifest, issued at the same
// instant whatever the time zone.
func same(a, b Manifest) bool {
	if !a.IssuedAt.Equal(b.IssuedAt) {
		return false
	}
	a.IssuedAt = b.IssuedAt
	return a == b
}

func TestVerify(t *testing.T) {
	pub := testPub()
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	o := signed(t, good())
	text := o.Manifest
	// edit signs the manifest with old replaced by new.
	edit := func(old, new string) Offer {
		if !strings.Contains(text, old) {
			t.Fatalf("the manifest has no %s", old)
		}
		return resign(testKey, strings.Replace(text, old, new, 1))
	}
	// value matches a member's value in the signed manifest.
	const value = `(?:"[^"]*"|-?[0-9]+)`
	without := func(name string) Offer {
		s := regexp.MustCompile(`"`+name+`":`+value+`,?`).ReplaceAllString(text, "")
		return resign(testKey, strings.Replace(s, ",}", "}", 1))
	}
	null := func(name string) Offer {
		return resign(testKey, regexp.MustCompile(`("`+name+`":)`+value).ReplaceAllString(text, "${1}null"))
	}
	mutate := func(f func(*Offer)) Offer { c := o; f(&c); return c }
	flipBit := mutate(func(o *Offer) {
		sig, _ := base64.StdEncoding.DecodeString(o.Signature)
		sig[10] ^= 1
		o.Signature = base64.StdEncoding.EncodeToString(sig)
	})
	// The 64th byte is written as two characters and "==": the second
	// character's low 4 bits are padding, which must be zero.
	nonCanonical := mutate(func(o *Offer) {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
		i := strings.IndexByte(alphabet, o.Signature[85]) | 1
		o.Signature = o.Signature[:85] + alphabet[i:i+1] + "=="
	})
	want := good()
	want.Format, want.KeyID = Format, o.KeyID
	edited := func(f func(*Manifest)) Manifest { m := want; f(&m); return m }

	type test struct {
		name  string
		offer Offer
		keys  []ed25519.PublicKey // nil: pub
		want  Manifest            // when err is ""
		err   string              // what the error says; "" for none
	}
	tests := []test{
		{name: "as signed", offer: o, want: want},
		{name: "among other keys", offer: o, keys: []ed25519.PublicKey{other.Public().(ed25519.PublicKey), pub}, want: want},
		{name: "a key of the wrong length is skipped", offer: o, keys: []ed25519.PublicKey{pub[:31], pub}, want: want},
		{name: "no min_version", offer: edit(`"min_version":"1.2.0",`, ""), want: edited(func(m *Manifest) { m.MinVersion = "" })},
		{name: "a pre-release", offer: edit(`"1.5.0"`, `"1.5.0-rc.1"`), want: edited(func(m *Manifest) { m.Version = "1.5.0-rc.1" })},
		{name: "white space around the object", offer: resign(testKey, " \n"+text+"\n"), want: want},
		{name: "white space between members", offer: resign(testKey, strings.ReplaceAll(strings.Replace(text,
			`"notes":"<fixes> & \"quotes\""`, `"notes" :  null `, 1), `,"`, ",\n  \"")), want: edited(func(m *Manifest) { m.Notes = "" })},
		{name: "issued_at with an offset and a fraction", offer: edit(`"2026-01-02T03:04:05Z"`, `"2026-01-02T04:04:05.000+01:00"`), want: want},

		// §2: unknown members are ignored, null is absent, a repeated
		// key's last value counts, keys are case-sensitive.
		{name: "unknown members are ignored", offer: edit(`"tenant"`, `"future":{"x":[1,2]},"tenant"`), want: want},
		{name: "null optional members", offer: edit(`"notes":"<fixes> & \"quotes\""`, `"notes":null,"min_version":null`),
			want: edited(func(m *Manifest) { m.Notes, m.MinVersion = "", "" })},
		{name: "a repeated key: the last counts", offer: edit(`"tenant"`, `"version":"1.0.0","tenant"`), want: want},
		{name: "keys are case-sensitive", offer: edit(`"tenant"`, `"Version":"9.9.9","MODEL":"other","tenant"`), want: want},
		{name: "a key in another case is not the member", offer: edit(`"key_id"`, `"Key_ID"`), err: "manifest has no key_id"},

		// 1. The key, then the signature over the bytes as received.
		{name: "untrusted key", offer: o, keys: []ed25519.PublicKey{other.Public().(ed25519.PublicKey)}, err: `key_id "` + o.KeyID + `" names no trusted key`},
		{name: "no trusted keys", offer: o, keys: []ed25519.PublicKey{}, err: "names no trusted key"},
		{name: "unknown key id", offer: mutate(func(o *Offer) { o.KeyID = "0011223344556677" }), err: `key_id "0011223344556677" names no trusted key`},
		{name: "the key id of a key of the wrong length", offer: mutate(func(o *Offer) { o.KeyID = KeyID(pub[:31]) }), keys: []ed25519.PublicKey{pub[:31]}, err: "names no trusted key"},
		{name: "signed by another key under a trusted key id", offer: mutate(func(o *Offer) { o.Signature = resign(other, text).Signature }), err: "signature does not verify"},
		{name: "tampered manifest", offer: mutate(func(o *Offer) { o.Manifest = strings.Replace(text, "1.5.0", "1.6.0", 1) }), err: "signature does not verify"},
		{name: "re-encoded manifest", offer: mutate(func(o *Offer) { o.Manifest = strings.ReplaceAll(text, ",", ", ") }), err: "signature does not verify"},
		// Nothing is parsed before the signature verifies.
		{name: "tampered into no JSON", offer: mutate(func(o *Offer) { o.Manifest = text[1:] }), err: "signature does not verify"},
		{name: "tampered signature", offer: flipBit, err: "signature does not verify"},
		{name: "signature not base64", offer: mutate(func(o *Offer) { o.Signature = strings.Repeat("!", 88) }), err: "signature is not valid base64"},
		{name: "signature in non-canonical base64", offer: nonCanonical, err: "signature is not valid base64"},
		{name: "signature too short", offer: mutate(func(o *Offer) { o.Signature = o.Signature[:86] }), err: "signature is not 88 characters of base64"},

		// 2. The manifest parses, its format, its members, its key_id.
		{name: "not JSON", offer: resign(testKey, "format=switchyard"), err: "manifest does not parse: invalid character"},
		{name: "an array", offer: resign(testKey, `["switchyard-firmware-manifest/1"]`), err: "manifest does not parse: not a JSON object"},
		{name: "a string", offer: resign(testKey, `"switchyard-firmware-manifest/1"`), err: "manifest does not parse: not a JSON object"},
		{name: "null", offer: resign(testKey, "null"), err: "manifest does not parse: not a JSON object"},
		{name: "trailing data", offer: resign(testKey, text+"{}"), err: "manifest does not parse: invalid character '{' after top-level value"},
		{name: "other format", offer: edit("manifest/1", "manifest/2"), err: `manifest format "switchyard-firmware-manifest/2" is not switchyard-firmware-manifest/1`},
		{name: "other format, whatever else it has", offer: resign(testKey, `{"format":"switchyard-firmware-manifest/2"}`), err: "manifest format"},
		{name: "a long format is quoted in part", offer: edit(`"switchyard-firmware-manifest/1"`, `"`+strings.Repeat("x", 1000)+`"`), err: `manifest format "xxxx`},
		{name: "format not a string", offer: edit(`"switchyard-firmware-manifest/1"`, `1`), err: "manifest does not parse: format is not a string"},
		{name: "version not a string", offer: edit(`"1.5.0"`, `150`), err: "manifest does not parse: version is not a string"},
		{name: "key_id an object", offer: edit(`"key_id":"`+o.KeyID+`"`, `"key_id":{}`), err: "manifest does not parse: key_id is not a string"},
		{name: "notes not a string", offer: edit(`"notes":"<fixes> & \"quotes\""`, `"notes":["x"]`), err: "manifest does not parse: notes is not a string"},
		{name: "size as a string", offer: edit(`"size":1048576`, `"size":"1048576"`), err: "manifest does not parse: size is not a 64-bit integer"},
		{name: "size as a fraction", offer: edit(`"size":1048576`, `"size":1048576.5`), err: "manifest does not parse: size is not a 64-bit integer"},
		{name: "size with an exponent", offer: edit(`"size":1048576`, `"size":1e6`), err: "manifest does not parse: size is not a 64-bit integer"},
		{name: "size beyond 64 bits", offer: edit(`"size":1048576`, `"size":9223372036854775808`), err: "manifest does not parse: size is not a 64-bit integer"},
		{name: "key_id differs from the offer's", offer: edit(`"key_id":"`+o.KeyID+`"`, `"key_id":"0011223344556677"`), err: `manifest key_id "0011223344556677" is not the offer's "` + o.KeyID + `"`},
		{name: "size zero", offer: edit(`"size":1048576`, `"size":0`), err: "manifest size 0 is not positive"},
		{name: "size negative", offer: edit(`"size":1048576`, `"size":-5`), err: "manifest size -5 is not positive"},
		{name: "sha256 upper case", offer: edit("abab", "ABAB"), err: "is not 64 lower-case hex digits"},
		{name: "sha256 short", offer: edit(strings.Repeat("ab", 32), strings.Repeat("ab", 31)+"a"), err: "is not 64 lower-case hex digits"},
		{name: "sha256 with a line feed", offer: edit(strings.Repeat("ab", 32), strings.Repeat("ab", 32)+`\n`), err: "is not 64 lower-case hex digits"},
		{name: "issued_at not a time", offer: edit(`"2026-01-02T03:04:05Z"`, `"yesterday"`), err: `manifest issued_at "yesterday" is not an RFC 3339 time`},
		{name: "issued_at without a zone", offer: edit(`"2026-01-02T03:04:05Z"`, `"2026-01-02T03:04:05"`), err: "is not an RFC 3339 time"},
		{name: "version not SemVer", offer: edit(`"1.5.0"`, `"1.5"`), err: `manifest version "1.5" must be MAJOR.MINOR.PATCH`},
		{name: "version with a leading v", offer: edit(`"1.5.0"`, `"v1.5.0"`), err: `manifest version "v1.5.0": "v1" is not a number`},
		{name: "min_version not SemVer", offer: edit(`"1.2.0"`, `"latest"`), err: `manifest min_version "latest" must be MAJOR.MINOR.PATCH`},
		{name: "min_version empty", offer: edit(`"1.2.0"`, `""`), err: "manifest min_version is empty"},
	}
	// Every required member: absent, or null, which is the same.
	for _, name := range []string{"format", "tenant", "model", "version", "size", "sha256", "issued_at", "key_id"} {
		tests = append(tests,
			test{name: "no " + name, offer: without(name), err: "manifest has no " + name},
			test{name: name + " null", offer: null(name), err: "manifest has no " + name})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := tt.keys
			if keys == nil {
				keys = []ed25519.PublicKey{pub}
			}
			m, err := Verify(tt.offer, keys)
			if tt.err == "" {
				if err != nil || !same(m, tt.want) {
					t.Fatalf("Verify: %+v, %v\nwant %+v", m, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Verify: %v, want an error that says %q", err, tt.err)
			}
			// The error is a firmware_status reason (PROTOCOL.md §8.5).
			if len(err.Error()) > 256 {
				t.Fatalf("the error is %d bytes, more than a reason may be: %q", len(err.Error()), err)
			}
			if m != (Manifest{}) {
				t.Fatalf("Verify refused the offer but returned %+v", m)
			}
		})
	}
}

func TestAdmits(t *testing.T) {
	edited := func(f func(*Manifest)) Manifest { m := good(); f(&m); return m }
	tests := []struct {
		m              Manifest
		model, running string
		max            int64
		want           string // what the error says; "" admits
	}{
		{good(), "esp32-s3", "1.4.2", 0, ""},
		{good(), "esp32-s3", "v1.4.2", 0, ""},
		{good(), "esp32-s3", "1.2.0", 4 << 20, ""}, // exactly min_version
		{good(), "esp32-s3", "1.5.0-rc.1", 0, ""},  // a pre-release of the version
		{good(), "esp32-s3", "1.4.2", 1 << 20, ""}, // exactly the slot
		{edited(func(m *Manifest) { m.MinVersion = "" }), "esp32-s3", "0.1.0", 0, ""},
		{edited(func(m *Manifest) { m.Version = "1.5.0-rc.1" }), "esp32-s3", "1.4.2", 0, ""},

		// 3. The model, first.
		{good(), "esp32-c3", "1.4.2", 0, `model "esp32-s3" is not this device's "esp32-c3"`},
		{edited(func(m *Manifest) { m.Version = "1.0.0" }), "esp32-c3", "1.4.2", 0, "model"},
		// 4. Newer than what runs, and what runs is not below min_version.
		{edited(func(m *Manifest) { m.Version = "1.0.0" }), "esp32-s3", "1.4.2", 0, "version 1.0.0 is not newer than 1.4.2"},
		{good(), "esp32-s3", "1.5.0", 0, "version 1.5.0 is not newer than 1.5.0"},
		{good(), "esp32-s3", "1.5.0+other", 0, "not newer"}, // build metadata does not count
		{edited(func(m *Manifest) { m.Version = "1.4.2+build.7" }), "esp32-s3", "1.4.2", 0, "version 1.4.2+build.7 is not newer than 1.4.2"},
		{edited(func(m *Manifest) { m.Version = "1.4.2-rc.1" }), "esp32-s3", "1.4.2", 0, "version 1.4.2-rc.1 is not newer than 1.4.2"},
		{good(), "esp32-s3", "2.0.0", 0, "not newer"},
		{good(), "esp32-s3", "1.1.9", 0, "running version 1.1.9 is below min_version 1.2.0"},
		{good(), "esp32-s3", "build-42", 0, `running version "build-42" must be MAJOR.MINOR.PATCH`},
		{good(), "esp32-s3", "", 0, "running version is empty"},
		// Admits takes any Manifest, not only a verified one.
		{edited(func(m *Manifest) { m.Version = "latest" }), "esp32-s3", "1.4.2", 0, `manifest version "latest"`},
		{edited(func(m *Manifest) { m.MinVersion = "1.2" }), "esp32-s3", "1.4.2", 0, `manifest min_version "1.2"`},
		// 5. The slot.
		{good(), "esp32-s3", "1.4.2", 1<<20 - 1, "size 1048576 exceeds the update slot's 1048575 bytes"},
	}
	for _, tt := range tests {
		err := tt.m.Admits(tt.model, tt.running, tt.max)
		if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s, min %s: Admits(%q, %q, %d) = %v, want %q", tt.m.Version, tt.m.MinVersion, tt.model, tt.running, tt.max, err, tt.want)
		}
	}
}

// FuzzVerify: Verify never panics, and whatever it accepts was signed by the
// trusted key, is a manifest by every rule of §8.3 (checked against an
// independent decoding) and is what Sign writes back. With sign set, the
// fuzzer's manifest is signed with the trusted key, so that the checks
// after the signature are explored too; what Verify accepts is then given
// to Admits with the fuzzer's running version.
func FuzzVerify(f *testing.F) {
	pub := testPub()
	o := signed(f, good())
	f.Add(o.Manifest, o.Signature, o.KeyID, "1.4.2", false)
	f.Add(o.Manifest, "", o.KeyID, "v1.0.0", true)
	f.Add(strings.Replace(o.Manifest, "1.5.0", "2.0.0-rc.1", 1), "", o.KeyID, "2.0.0-beta.11", true)
	f.Add(strings.Replace(o.Manifest, `"tenant"`, `"version":null,"Version":"9.0.0","tenant"`, 1), "", o.KeyID, "1.4.2", true)
	f.Add(`{"format":"switchyard-firmware-manifest/1","size":1e3}`, "", o.KeyID, "0.0.1", true)
	f.Add("{}", "", "", "", false)
	const model, maxSize = "esp32-s3", 1 << 20
	f.Fuzz(func(t *testing.T, text, sig, keyID, running string, sign bool) {
		if sign {
			sig = base64.StdEncoding.EncodeToString(ed25519.Sign(testKey, []byte(text)))
		}
		m, err := Verify(Offer{Manifest: text, Signature: sig, KeyID: keyID}, []ed25519.PublicKey{pub})
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		// 1.
		raw, _ := base64.StdEncoding.DecodeString(sig)
		if keyID != KeyID(pub) || !ed25519.Verify(pub, []byte(text), raw) {
			t.Fatalf("accepted an offer whose signature does not verify: %q %q", text, sig)
		}
		// 2., against a decoding of its own.
		dec := json.NewDecoder(strings.NewReader(text))
		dec.UseNumber()
		var fields map[string]any
		if err := dec.Decode(&fields); err != nil || fields == nil {
			t.Fatalf("accepted a manifest that is not a JSON object: %q", text)
		}
		for name, got := range map[string]string{"format": m.Format, "tenant": m.Tenant, "model": m.Model, "version": m.Version,
			"sha256": m.SHA256, "key_id": m.KeyID} {
			if fields[name] != got {
				t.Fatalf("accepted %s %q, the manifest says %#v: %q", name, got, fields[name], text)
			}
		}
		for name, got := range map[string]string{"min_version": m.MinVersion, "notes": m.Notes} {
			if v := fields[name]; v != nil && v != got || v == nil && got != "" {
				t.Fatalf("accepted %s %q, the manifest says %#v: %q", name, got, fields[name], text)
			}
		}
		if n, _ := fields["size"].(json.Number); string(n) != strconv.FormatInt(m.Size, 10) {
			t.Fatalf("accepted size %d, the manifest says %#v", m.Size, fields["size"])
		}
		if issued, _ := fields["issued_at"].(string); issued == "" || m.Format != Format || m.KeyID != keyID ||
			m.Size <= 0 || !sha256Hex.MatchString(m.SHA256) {
			t.Fatalf("accepted %+v from %q", m, text)
		}
		if _, err := ParseVersion(m.Version); err != nil {
			t.Fatalf("accepted version %q: %v", m.Version, err)
		}
		if _, ok := fields["min_version"].(string); ok {
			if _, err := ParseVersion(m.MinVersion); err != nil {
				t.Fatalf("accepted min_version %q: %v", m.MinVersion, err)
			}
		}
		// The relay's encoding of m verifies and reads back as m.
		o, err := Sign(m, testKey)
		if err != nil {
			if y := m.IssuedAt.UTC().Year(); y >= 0 && y <= 9999 {
				t.Fatalf("Sign refused what Verify accepted: %v", err)
			}
			return // an offset moved issued_at out of the years JSON can hold
		}
		back, err := Verify(o, []ed25519.PublicKey{pub})
		if err != nil {
			t.Fatalf("Sign wrote %q, which Verify refuses: %v", o.Manifest, err)
		}
		if !same(back, m) {
			t.Fatalf("Sign and Verify changed %+v into %+v", m, back)
		}
		// 3.–5.
		if m.Admits(model, running, maxSize) != nil {
			return
		}
		next, _ := ParseVersion(m.Version)
		cur, err := ParseDeviceVersion(running)
		if m.Model != model || err != nil || next.Compare(cur) <= 0 || m.Size > maxSize {
			t.Fatalf("admitted %+v on a %s running %q", m, model, running)
		}
		if minimum, err := ParseVersion(m.MinVersion); m.MinVersion != "" && (err != nil || cur.Compare(minimum) < 0) {
			t.Fatalf("admitted %+v on %q, below its min_version", m, running)
		}
	})
}
