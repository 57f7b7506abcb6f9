package modules

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/switchyard/switchyard/firmware"
)

// Images is a Store serving package firmware as the keeper of image bytes
// (KindImage). The relay gives it a Store of its own, apart from the plugin
// modules, so the modules API never lists or deletes an image.
type Images struct{ s *Store }

var _ firmware.Blobs = Images{}

// NewImages serves s's images to package firmware.
func NewImages(s *Store) Images { return Images{s: s} }

// Put stores an image, with firmware's errors for the caller's mistakes.
func (i Images) Put(tenant string, r io.Reader, limit int64, want string) (string, int64, error) {
	info, err := i.s.Put(tenant, KindImage, r, limit, want)
	switch {
	case errors.Is(err, ErrTooLarge):
		return "", 0, fmt.Errorf("%w: larger than %d bytes", firmware.ErrTooLarge, limit)
	case errors.Is(err, ErrEmpty):
		return "", 0, firmware.ErrEmpty
	case errors.Is(err, ErrMismatch):
		return "", 0, fmt.Errorf("%w: %w", firmware.ErrDigestMismatch, err)
	case err != nil:
		return "", 0, err
	}
	return info.SHA256, info.Size, nil
}

// Open opens a stored image for reading.
func (i Images) Open(tenant, sum string) (*os.File, error) {
	path, _, err := i.s.Path(tenant, sum)
	if err != nil {
		return nil, err
	}
	return os.Open(path)
}

// Delete removes a stored image.
func (i Images) Delete(tenant, sum string) error { return i.s.Delete(tenant, sum) }

// RemoveTenant removes every image of a tenant.
func (i Images) RemoveTenant(tenant string) error { return i.s.RemoveTenant(tenant) }
