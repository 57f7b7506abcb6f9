package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/gateway"
	"github.com/switchyard/switchyard/runtime/token"
)

// deviceView is a device as the API shows it: never its token hash, and with
// its live state from the gateway when it is connected (the store's last-seen
// is written in batches, the session's is current).
type deviceView struct {
	Tenant    string            `json:"tenant"`
	ID        string            `json:"id"`
	Name      string            `json:"name,omitempty"`
	Model     string            `json:"model,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Revoked   bool              `json:"revoked"`
	Firmware  string            `json:"firmware,omitempty"`
	LastSeen  *time.Time        `json:"last_seen,omitempty"`
	Connected bool              `json:"connected"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// view shows d; live is its session, nil when it is not connected.
func view(d graph.Device, live *gateway.SessionInfo) deviceView {
	v := deviceView{
		Tenant: d.Tenant, ID: d.ID, Name: d.Name, Model: d.Model, Labels: d.Labels,
		Revoked: d.Revoked, Firmware: d.Firmware, Connected: live != nil,
		CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
	}
	if live != nil {
		if live.LastSeen.After(d.LastSeen) {
			d.LastSeen = live.LastSeen
		}
		if live.Firmware != "" {
			v.Firmware = live.Firmware
		}
	}
	if !d.LastSeen.IsZero() {
		v.LastSeen = &d.LastSeen
	}
	return v
}

// live is the sessions of tenant's connected devices, by device id.
func (s *Server) live(tenant string) map[string]*gateway.SessionInfo {
	sessions := s.Gateway.Sessions(tenant)
	out := make(map[string]*gateway.SessionInfo, len(sessions))
	for i := range sessions {
		out[sessions[i].Device] = &sessions[i]
	}
	return out
}

type deviceCreate struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Model  string            `json:"model"`
	Labels map[string]string `json:"labels"`
}

type devicePatch struct {
	Name    *string            `json:"name"`
	Model   *string            `json:"model"`
	Labels  *map[string]string `json:"labels"`
	Revoked *bool              `json:"revoked"`
}

// apply sets the fields present in the patch.
func (b devicePatch) apply(d *graph.Device) {
	if b.Name != nil {
		d.Name = *b.Name
	}
	if b.Model != nil {
		d.Model = *b.Model
	}
	if b.Labels != nil {
		d.Labels = *b.Labels
	}
	if b.Revoked != nil {
		d.Revoked = *b.Revoked
	}
}

type messageBody struct {
	Subject string          `json:"subject"`
	Payload json.RawMessage `json:"payload"`
	Ack     bool            `json:"ack"`
}

func (s *Server) devices(c echo.Context) graph.Collection[graph.Device] {
	return s.Store.Tenant(c.Param("tenant")).Devices()
}

func (s *Server) listDevices(c echo.Context) error {
	list, err := s.devices(c).List(c.Request().Context())
	if err != nil {
		return scopedError(c, "device", "", err)
	}
	live := s.live(c.Param("tenant"))
	out := make([]deviceView, 0, len(list))
	for _, d := range list {
		out = append(out, view(d, live[d.ID]))
	}
	return c.JSON(http.StatusOK, map[string]any{"devices": out})
}

// createDevice stores a device and returns its token: the only time the
// token is shown.
func (s *Server) createDevice(c echo.Context) error {
	var b deviceCreate
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &b); err != nil {
		return err
	}
	secret, hash := token.New(token.DevicePrefix)
	var d graph.Device
	err := s.deviceWrites.device(c.Param("tenant"), b.ID, func() (err error) {
		d, err = s.devices(c).Create(c.Request().Context(), graph.Device{
			Meta: graph.Meta{ID: b.ID}, Name: b.Name, Model: b.Model, Labels: b.Labels, TokenHash: hash[:],
		})
		if err != nil {
			return scopedError(c, "device", b.ID, err)
		}
		s.Catalog.Put(d)
		return nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]any{"device": view(d, nil), "token": secret})
}

func (s *Server) getDevice(c echo.Context) error {
	d, err := s.devices(c).Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return scopedError(c, "device", c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, view(d, s.live(d.Tenant)[d.ID]))
}

// patchDevice changes the fields present in the body. Revoking a device
// disconnects it at once.
func (s *Server) patchDevice(c echo.Context) error {
	var b devicePatch
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &b); err != nil {
		return err
	}
	var d graph.Device
	var wasRevoked bool
	err := s.deviceWrites.device(c.Param("tenant"), c.Param("id"), func() (err error) {
		ctx := c.Request().Context()
		if d, err = s.devices(c).Get(ctx, c.Param("id")); err != nil {
			return scopedError(c, "device", c.Param("id"), err)
		}
		wasRevoked = d.Revoked
		b.apply(&d)
		if d, err = s.devices(c).Update(ctx, d); err != nil {
			return scopedError(c, "device", d.ID, err)
		}
		s.Catalog.Put(d)
		return nil
	})
	if err != nil {
		return err
	}
	if d.Revoked && !wasRevoked {
		s.Gateway.Disconnect(d.Tenant, d.ID, gateway.CloseRevoked, "device revoked")
		s.log.Info("device revoked", "tenant", d.Tenant, "device", d.ID)
	}
	return c.JSON(http.StatusOK, view(d, s.live(d.Tenant)[d.ID]))
}

func (s *Server) deleteDevice(c echo.Context) error {
	tenant, id := c.Param("tenant"), c.Param("id")
	err := s.deviceWrites.device(tenant, id, func() error {
		if err := s.devices(c).Delete(c.Request().Context(), id); err != nil {
			return scopedError(c, "device", id, err)
		}
		s.Catalog.Remove(tenant, id)
		return nil
	})
	if err != nil {
		return err
	}
	s.Firmware.ForgetDevice(tenant, id)
	s.Gateway.Disconnect(tenant, id, gateway.CloseRevoked, "device deleted")
	return c.NoContent(http.StatusNoContent)
}

// rotateToken replaces a device's token; a session on the old token is
// closed, and the new token is returned once.
func (s *Server) rotateToken(c echo.Context) error {
	secret, hash := token.New(token.DevicePrefix)
	var d graph.Device
	err := s.deviceWrites.device(c.Param("tenant"), c.Param("id"), func() (err error) {
		ctx := c.Request().Context()
		if d, err = s.devices(c).Get(ctx, c.Param("id")); err != nil {
			return scopedError(c, "device", c.Param("id"), err)
		}
		d.TokenHash = hash[:]
		if d, err = s.devices(c).Update(ctx, d); err != nil {
			return scopedError(c, "device", d.ID, err)
		}
		s.Catalog.Put(d)
		return nil
	})
	if err != nil {
		return err
	}
	s.Gateway.Disconnect(d.Tenant, d.ID, gateway.CloseRevoked, "token rotated")
	return c.JSON(http.StatusOK, map[string]any{"device": view(d, nil), "token": secret})
}

// sendMessage queues a message frame to a connected device.
func (s *Server) sendMessage(c echo.Context) error {
	var b messageBody
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &b); err != nil {
		return err
	}
	if err := graph.ValidSubject(b.Subject); err != nil {
		return fieldError("subject", "%v", err)
	}
	if len(b.Payload) == 0 {
		return fieldError("payload", "is required (any JSON value)")
	}
	tenant, id := c.Param("tenant"), c.Param("id")
	if _, err := s.devices(c).Get(c.Request().Context(), id); err != nil {
		return scopedError(c, "device", id, err)
	}
	msgID := newMessageID()
	err := s.Gateway.Send(tenant, id, gateway.Outbound{ID: msgID, Subject: b.Subject, Time: time.Now(), Payload: b.Payload, Ack: b.Ack})
	switch {
	case errors.Is(err, gateway.ErrNotConnected):
		return newError(http.StatusConflict, "device_not_connected", "device %q is not connected", id)
	case errors.Is(err, gateway.ErrQueueFull):
		return newError(http.StatusTooManyRequests, "send_queue_full", "the send queue of device %q is full", id)
	case err != nil:
		return err
	}
	return c.JSON(http.StatusAccepted, map[string]string{"id": msgID})
}

func (s *Server) listSessions(c echo.Context) error {
	tenant := c.Param("tenant")
	if _, err := s.Store.GetTenant(c.Request().Context(), tenant); err != nil {
		return storeError("tenant", tenant, err)
	}
	list := s.Gateway.Sessions(tenant)
	if list == nil {
		list = []gateway.SessionInfo{}
	}
	return c.JSON(http.StatusOK, map[string]any{"sessions": list})
}

func newMessageID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
