package firmware

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/firmware/manifest"
	"github.com/switchyard/switchyard/graph"
)

// ReleaseID is the record id of the release of model at version: models
// and versions hold characters ids may not, so the id is derived.
func ReleaseID(model, version string) string {
	sum := sha256.Sum256([]byte(model + "\x00" + version))
	return "fw-" + hex.EncodeToString(sum[:12])
}

// Upload is what an operator says about an image.
type Upload struct {
	Model      string
	Version    string
	MinVersion string
	Notes      string
	// SHA256, when set, is the digest the uploader expects (hex).
	SHA256 string
}

// check validates the upload's fields and returns the announced digest in
// lower case.
func (u Upload) check() (string, error) {
	errs := []error{graph.ValidModel("model", u.Model)}
	v, err := manifest.ParseVersion(u.Version)
	if err != nil {
		errs = append(errs, graph.Invalid("version", "%v", err))
	}
	if u.MinVersion != "" {
		mv, merr := manifest.ParseVersion(u.MinVersion)
		switch {
		case merr != nil:
			errs = append(errs, graph.Invalid("min_version", "%v", merr))
		case err == nil && mv.Compare(v) >= 0:
			errs = append(errs, graph.Invalid("min_version", "%s must be below the version %s", u.MinVersion, u.Version))
		}
	}
	if len(u.Notes) > graph.MaxReleaseNotes {
		errs = append(errs, graph.Invalid("notes", "is %d bytes, more than %d", len(u.Notes), graph.MaxReleaseNotes))
	}
	want := strings.ToLower(u.SHA256)
	if want != "" && !isSHA256(want) {
		errs = append(errs, graph.Invalid("sha256", "%q must be 64 hex digits", u.SHA256))
	}
	return want, errors.Join(errs...)
}

func isSHA256(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil && len(s) == 64
}

// Upload stores an image read from r as the release u describes, signs its
// manifest and records it. Uploading the same image with the same
// description again returns the stored release with created false. Every
// refusal leaves nothing behind: graph.InvalidError for a field,
// ErrTooLarge, ErrEmpty, ErrDigestMismatch, ErrMislabelled, ErrConflict
// when the model already has that version (or one of equal precedence)
// with other bytes or another description.
func (s *Service) Upload(ctx context.Context, tenantID string, u Upload, r io.Reader) (rel graph.FirmwareRelease, created bool, err error) {
	want, err := u.check()
	if err != nil {
		return rel, false, err
	}
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return rel, false, fmt.Errorf("firmware: upload: %w", err)
	}
	sum, size, err := s.o.Blobs.Put(tenantID, r, s.o.MaxImageSize, want)
	if err != nil {
		return rel, false, fmt.Errorf("firmware: upload %s %s: %w", u.Model, u.Version, err)
	}

	t.writes.Lock()
	defer t.writes.Unlock()
	keep := false
	defer func() {
		if !keep && !t.uses(sum) {
			if derr := s.o.Blobs.Delete(tenantID, sum); derr != nil {
				s.log.Warn("firmware: refused upload left its image behind", "tenant", tenantID, "sha256", sum, "err", derr)
			}
		}
	}()
	if err := s.checkLabel(tenantID, sum, u.Version); err != nil {
		return rel, false, fmt.Errorf("firmware: upload %s %s: %w", u.Model, u.Version, err)
	}
	t.mu.Lock()
	old := t.releaseOf(u.Model, u.Version)
	clash := t.samePrecedence(u.Model, u.Version)
	t.mu.Unlock()
	switch {
	case old != nil && old.SHA256 == sum && old.MinVersion == u.MinVersion && old.Notes == u.Notes:
		keep = true
		return *old, false, nil
	case old != nil:
		return rel, false, fmt.Errorf("firmware: upload %s %s: %w: the release exists with another image or description (sha256 %s); delete it first",
			u.Model, u.Version, ErrConflict, old.SHA256)
	case clash != nil:
		return rel, false, fmt.Errorf("firmware: upload %s %s: %w: release %s ranks equal to it (versions differing only in build metadata cannot be ordered)",
			u.Model, u.Version, ErrConflict, clash.Version)
	}
	key, err := s.o.Key.Private()
	if err != nil {
		return rel, false, err
	}
	offer, err := manifest.Sign(manifest.Manifest{
		Tenant: tenantID, Model: u.Model, Version: u.Version, MinVersion: u.MinVersion,
		Size: size, SHA256: sum, Notes: u.Notes, IssuedAt: s.now(),
	}, key)
	if err != nil {
		return rel, false, err
	}
	rel = graph.FirmwareRelease{
		Meta:  graph.Meta{ID: ReleaseID(u.Model, u.Version)},
		Model: u.Model, Version: u.Version, MinVersion: u.MinVersion, Size: size, SHA256: sum, Notes: u.Notes,
		Manifest: offer.Manifest, Signature: offer.Signature, KeyID: offer.KeyID,
	}
	rel, err = s.o.Store.Tenant(tenantID).Releases().Create(ctx, rel)
	if err != nil {
		return rel, false, fmt.Errorf("firmware: upload %s %s: %w", u.Model, u.Version, err)
	}
	keep = true
	t.mu.Lock()
	t.addRelease(rel)
	t.mu.Unlock()
	s.log.Info("firmware release uploaded", "tenant", tenantID, "model", u.Model, "version", u.Version, "size", size, "sha256", sum)
	return rel, true, nil
}

// uses reports whether a release of the tenant references the image.
func (t *tenant) uses(sum string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.releases {
		if r.SHA256 == sum {
			return true
		}
	}
	return false
}

// samePrecedence returns a release of model whose version ranks equal to
// version without being the same text, or nil.
func (t *tenant) samePrecedence(model, version string) *graph.FirmwareRelease {
	v, err := manifest.ParseVersion(version)
	if err != nil {
		return nil
	}
	for _, r := range t.releases {
		if r.Model != model || r.Version == version {
			continue
		}
		if rv, err := manifest.ParseVersion(r.Version); err == nil && rv.Compare(v) == 0 {
			return r
		}
	}
	return nil
}

// The ESP-IDF application image: a 24-byte image header starting with
// 0xE9, an 8-byte segment header, then the application description
// (esp_app_desc_t), whose magic word is 0xABCD5432 and whose version is a
// NUL-terminated string of at most 32 bytes, 16 bytes in.
const (
	espImageMagic   = 0xE9
	espAppDescAt    = 32
	espAppDescMagic = 0xABCD5432
	espVersionAt    = espAppDescAt + 16
	espVersionLen   = 32
)

// checkLabel refuses an image that names its own version, when that is not
// the version it is uploaded as: the device would say hello with the
// image's, and the update would be recorded as failed. Only ESP-IDF
// application images name theirs in a known place.
func (s *Service) checkLabel(tenant, sum, version string) error {
	f, err := s.o.Blobs.Open(tenant, sum)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, espVersionAt+espVersionLen)
	if _, err := io.ReadFull(f, head); err != nil {
		return nil // shorter than an ESP-IDF header: not one
	}
	if head[0] != espImageMagic || binary.LittleEndian.Uint32(head[espAppDescAt:]) != espAppDescMagic {
		return nil
	}
	named, _, _ := bytes.Cut(head[espVersionAt:], []byte{0})
	if !sameVersion(string(named), version) {
		return fmt.Errorf("%w: its ESP-IDF application description says version %q, not %q", ErrMislabelled, named, version)
	}
	return nil
}

// Releases lists a tenant's releases by model, then version precedence.
func (s *Service) Releases(ctx context.Context, tenantID string) ([]graph.FirmwareRelease, error) {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	out := make([]graph.FirmwareRelease, 0, len(t.releases))
	for _, r := range t.releases {
		out = append(out, *r)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b graph.FirmwareRelease) int {
		if c := cmp.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		va, _ := manifest.ParseVersion(a.Version)
		vb, _ := manifest.ParseVersion(b.Version)
		return cmp.Or(va.Compare(vb), cmp.Compare(a.Version, b.Version))
	})
	return out, nil
}

// Release returns the release of model at version; graph.ErrNotFound when
// there is none.
func (s *Service) Release(ctx context.Context, tenantID, model, version string) (graph.FirmwareRelease, error) {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return graph.FirmwareRelease{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.releaseOf(model, version); r != nil {
		return *r, nil
	}
	return graph.FirmwareRelease{}, fmt.Errorf("firmware: release %s %s: %w", model, version, graph.ErrNotFound)
}

// DeleteRelease removes a release and, when no other release uses them, its
// image's bytes. A release a rollout offers is refused with ErrInUse.
func (s *Service) DeleteRelease(ctx context.Context, tenantID, model, version string) error {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return err
	}
	t.writes.Lock()
	defer t.writes.Unlock()
	t.mu.Lock()
	rel := t.releaseOf(model, version)
	var user string
	for _, r := range t.rollouts {
		if r.Model == model && r.Version == version {
			user = r.ID
		}
	}
	t.mu.Unlock()
	switch {
	case rel == nil:
		return fmt.Errorf("firmware: release %s %s: %w", model, version, graph.ErrNotFound)
	case user != "":
		return fmt.Errorf("firmware: release %s %s: %w: rollout %q offers it; delete the rollout first", model, version, ErrInUse, user)
	}
	if err := s.o.Store.Tenant(tenantID).Releases().Delete(ctx, rel.ID); err != nil && !errors.Is(err, graph.ErrNotFound) {
		return fmt.Errorf("firmware: delete release %s %s: %w", model, version, err)
	}
	t.mu.Lock()
	delete(t.releases, rel.ID)
	t.mu.Unlock()
	if !t.uses(rel.SHA256) {
		if err := s.o.Blobs.Delete(tenantID, rel.SHA256); err != nil {
			s.log.Warn("firmware: deleted release left its image behind", "tenant", tenantID, "sha256", rel.SHA256, "err", err)
		}
	}
	s.log.Info("firmware release deleted", "tenant", tenantID, "model", model, "version", version)
	return nil
}
