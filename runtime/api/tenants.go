package api

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/gateway"
)

type tenantBody struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (s *Server) listTenants(c echo.Context) error {
	list, err := s.Store.ListTenants(c.Request().Context())
	if err != nil {
		return storeError("tenant", "", err)
	}
	if list == nil {
		list = []graph.Tenant{}
	}
	return c.JSON(http.StatusOK, map[string]any{"tenants": list})
}

func (s *Server) createTenant(c echo.Context) error {
	var b tenantBody
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &b); err != nil {
		return err
	}
	t, err := s.Store.CreateTenant(c.Request().Context(), graph.Tenant{ID: b.ID, Name: b.Name})
	if err != nil {
		return storeError("tenant", b.ID, err)
	}
	s.log.Info("tenant created", "tenant", t.ID)
	return c.JSON(http.StatusCreated, t)
}

func (s *Server) getTenant(c echo.Context) error {
	t, err := s.Store.GetTenant(c.Request().Context(), c.Param("tenant"))
	if err != nil {
		return storeError("tenant", c.Param("tenant"), err)
	}
	return c.JSON(http.StatusOK, t)
}

func (s *Server) updateTenant(c echo.Context) error {
	var b tenantBody
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &b); err != nil {
		return err
	}
	id := c.Param("tenant")
	if b.ID != "" && b.ID != id {
		return fieldError("id", "%q does not match the tenant in the path (%q); ids cannot be changed", b.ID, id)
	}
	t, err := s.Store.UpdateTenant(c.Request().Context(), graph.Tenant{ID: id, Name: b.Name})
	if err != nil {
		return storeError("tenant", id, err)
	}
	return c.JSON(http.StatusOK, t)
}

// deleteTenant removes a tenant with everything in it, refuses its API keys
// and disconnects its devices. The default tenant is kept: a single-user install depends on it.
func (s *Server) deleteTenant(c echo.Context) error {
	id := c.Param("tenant")
	if id == graph.DefaultTenant {
		return newError(http.StatusConflict, "tenant_protected", "the %q tenant cannot be deleted", id)
	}
	// Every device stripe too: a device written meanwhile would otherwise
	// reach the catalog after its tenant left it.
	err := s.deviceWrites.all(func() error {
		return s.keyWrite(func() error {
			if err := s.Store.DeleteTenant(c.Request().Context(), id); err != nil {
				return storeError("tenant", id, err)
			}
			s.Keys.RemoveTenant(id)
			s.Catalog.RemoveTenant(id)
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.Router.Set(id, nil)
	if err := s.Firmware.TenantDeleted(id); err != nil {
		s.log.Error("firmware images of a deleted tenant not removed", "tenant", id, "err", err)
	}
	for _, sess := range s.Gateway.Sessions(id) {
		s.Gateway.Disconnect(id, sess.Device, gateway.CloseRevoked, "tenant deleted")
	}
	if _, err := s.Control.TenantDeleted(c.Request().Context(), id); err != nil {
		// The tenant is gone; its instances stop at the next change.
		s.log.Error("plugin instances of a deleted tenant not stopped", "tenant", id, "err", err)
	}
	s.log.Info("tenant deleted", "tenant", id)
	return c.NoContent(http.StatusNoContent)
}
