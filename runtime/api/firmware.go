package api

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/firmware"
	"github.com/switchyard/switchyard/graph"
)

// firmwareRoutes are the update routes: releases and rollouts of a tenant,
// a device's firmware history, and the relay's public signing key.
func (s *Server) firmwareRoutes(v1, t *echo.Group) {
	v1.GET("/firmware/key", s.firmwareKey)
	t.GET("/firmware", s.listReleases)
	t.POST("/firmware", s.uploadRelease)
	t.GET("/firmware/:model/:version", s.getRelease)
	t.DELETE("/firmware/:model/:version", s.deleteRelease)
	t.GET("/rollouts", s.listRollouts)
	t.POST("/rollouts", s.createRollout)
	t.GET("/rollouts/:id", s.getRollout)
	t.PATCH("/rollouts/:id", s.changeRollout)
	t.DELETE("/rollouts/:id", s.deleteRollout)
	t.GET("/devices/:id/firmware", s.deviceFirmware)
}

// firmwareError maps the update service's errors to the API's.
func firmwareError(c echo.Context, kind, id string, err error) error {
	switch {
	case errors.Is(err, firmware.ErrTooLarge):
		return newError(http.StatusRequestEntityTooLarge, "image_too_large", "%v (firmware.max_image_size)", err)
	case errors.Is(err, firmware.ErrEmpty):
		return newError(http.StatusUnprocessableEntity, "invalid_image", "the image is empty")
	case errors.Is(err, firmware.ErrDigestMismatch):
		return newError(http.StatusUnprocessableEntity, "sha256_mismatch", "%v", err)
	case errors.Is(err, firmware.ErrMislabelled):
		return newError(http.StatusUnprocessableEntity, "image_mislabelled", "%v", err)
	case errors.Is(err, firmware.ErrInUse):
		return newError(http.StatusConflict, kind+"_in_use", "%v", err)
	case errors.Is(err, firmware.ErrConflict):
		return newError(http.StatusConflict, kind+"_conflict", "%v", err)
	}
	return scopedError(c, kind, id, err)
}

func (s *Server) firmwareKey(c echo.Context) error {
	pub, err := s.FirmwareKey.Public()
	if err != nil {
		return newError(http.StatusInternalServerError, "internal", "%v", err)
	}
	return c.JSON(http.StatusOK, pub)
}

func (s *Server) listReleases(c echo.Context) error {
	list, err := s.Firmware.Releases(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return scopedError(c, "release", "", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"releases": list})
}

func (s *Server) getRelease(c echo.Context) error {
	model, version := c.Param("model"), c.Param("version")
	r, err := s.Firmware.Release(c.Request().Context(), c.Param("tenant"), model, version)
	if err != nil {
		return scopedError(c, "release", model+" "+version, err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) deleteRelease(c echo.Context) error {
	model, version := c.Param("model"), c.Param("version")
	if err := s.Firmware.DeleteRelease(c.Request().Context(), c.Param("tenant"), model, version); err != nil {
		return firmwareError(c, "release", model+" "+version, err)
	}
	return c.NoContent(http.StatusNoContent)
}

// uploadFields are the text parts of an upload, each at most this long
// (release notes are the longest).
const maxUploadField = graph.MaxReleaseNotes

// uploadRelease takes a multipart/form-data upload: the text parts model,
// version and, optionally, min_version, notes and sha256, then the part
// image with the bytes. The image is streamed to disk as it arrives; the
// text parts come first so that a bad one costs no upload.
func (s *Server) uploadRelease(c echo.Context) error {
	req := c.Request()
	mt, params, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"send the release as multipart/form-data: parts model, version, optional min_version, notes and sha256, then image (e.g. curl -F model=esp32 -F version=1.5.0 -F image=@fw.bin)")
	}
	u, image, err := readUpload(multipart.NewReader(req.Body, params["boundary"]))
	if err != nil {
		return err
	}
	rel, created, err := s.Firmware.Upload(req.Context(), c.Param("tenant"), u, image)
	var bad *bodyError
	switch {
	case errors.As(err, &bad):
		return newError(http.StatusBadRequest, "invalid_body", "%v", bad.err)
	case err != nil:
		return firmwareError(c, "release", u.Model+" "+u.Version, err)
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	return c.JSON(status, rel)
}

// readUpload reads an upload's text parts up to its image part, and
// returns them with a reader of the image (fuzzed: FuzzReadUpload).
func readUpload(mr *multipart.Reader) (firmware.Upload, io.Reader, error) {
	var u firmware.Upload
	fields := map[string]*string{"model": &u.Model, "version": &u.Version, "min_version": &u.MinVersion, "notes": &u.Notes, "sha256": &u.SHA256}
	seen := map[string]bool{}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return u, nil, fieldError("image", "the image part is missing: send the image's bytes as the last part, named image")
		}
		if err != nil {
			return u, nil, newError(http.StatusBadRequest, "invalid_body", "malformed multipart body: %v", err)
		}
		name := part.FormName()
		switch {
		case seen[name]:
			return u, nil, fieldError(name, "the part %q appears twice", name)
		case name == "image":
			if u.Model == "" || u.Version == "" {
				return u, nil, fieldError("image", "the parts model and version must come before the image")
			}
			return u, &lastPart{Part: part, mr: mr}, nil
		case fields[name] == nil:
			e := newError(http.StatusBadRequest, "unknown_field", "unknown part %q: the parts are model, version, min_version, notes, sha256 and image", name)
			e.Field = name
			return u, nil, e
		}
		seen[name] = true
		text, err := io.ReadAll(io.LimitReader(part, maxUploadField+1))
		if err != nil {
			return u, nil, newError(http.StatusBadRequest, "invalid_body", "read part %q: %v", name, err)
		}
		if len(text) > maxUploadField {
			return u, nil, fieldError(name, "is longer than %d bytes", maxUploadField)
		}
		*fields[name] = string(text)
	}
}

// lastPart reads the image part, and fails at its end if another part
// follows: the image must be last, and an upload that breaks the rule must
// leave nothing behind. Its errors are the request body's: a *bodyError.
type lastPart struct {
	*multipart.Part
	mr *multipart.Reader
}

// bodyError is a request body that could not be read as a whole upload.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return e.err.Error() }

func (p *lastPart) Read(b []byte) (int, error) {
	n, err := p.Part.Read(b)
	switch {
	case errors.Is(err, io.EOF):
		next, nerr := p.mr.NextPart()
		switch {
		case errors.Is(nerr, io.EOF):
		case nerr != nil:
			return n, &bodyError{fmt.Errorf("malformed multipart body after the image: %w", nerr)}
		default:
			return n, &bodyError{fmt.Errorf("part %q follows the image; the image must be the last part", next.FormName())}
		}
	case err != nil:
		return n, &bodyError{fmt.Errorf("read the image: %w", err)}
	}
	return n, err
}

func (s *Server) listRollouts(c echo.Context) error {
	list, err := s.Firmware.Rollouts(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return scopedError(c, "rollout", "", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"rollouts": list})
}

func (s *Server) getRollout(c echo.Context) error {
	r, err := s.Firmware.Rollout(c.Request().Context(), c.Param("tenant"), c.Param("id"))
	if err != nil {
		return scopedError(c, "rollout", c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) createRollout(c echo.Context) error {
	var n firmware.NewRollout
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &n); err != nil {
		return err
	}
	r, err := s.Firmware.CreateRollout(c.Request().Context(), c.Param("tenant"), n)
	if err != nil {
		return firmwareError(c, "rollout", n.ID, err)
	}
	return c.JSON(http.StatusCreated, r)
}

func (s *Server) changeRollout(c echo.Context) error {
	var ch firmware.RolloutChange
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &ch); err != nil {
		return err
	}
	r, err := s.Firmware.ChangeRollout(c.Request().Context(), c.Param("tenant"), c.Param("id"), ch)
	if err != nil {
		return firmwareError(c, "rollout", c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) deleteRollout(c echo.Context) error {
	if err := s.Firmware.DeleteRollout(c.Request().Context(), c.Param("tenant"), c.Param("id")); err != nil {
		return firmwareError(c, "rollout", c.Param("id"), err)
	}
	return c.NoContent(http.StatusNoContent)
}

// deviceFirmware shows a device's firmware: what it runs, its update in
// progress, and its history.
func (s *Server) deviceFirmware(c echo.Context) error {
	tenant, id := c.Param("tenant"), c.Param("id")
	d, err := s.devices(c).Get(c.Request().Context(), id)
	if err != nil {
		return scopedError(c, "device", id, err)
	}
	v := view(d, s.live(tenant)[id])
	events, update := s.Firmware.History(tenant, id)
	return c.JSON(http.StatusOK, struct {
		Device   string                 `json:"device"`
		Firmware string                 `json:"firmware,omitempty"`
		Update   *firmware.DeviceUpdate `json:"update"`
		Events   []graph.FirmwareEvent  `json:"events"`
	}{id, v.Firmware, update, events})
}
