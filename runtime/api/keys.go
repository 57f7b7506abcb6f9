package api

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/token"
)

// keyView is an API key as the API shows it: never its hash.
type keyView struct {
	Tenant    string    `json:"tenant"`
	ID        string    `json:"id"`
	Name      string    `json:"name,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func viewKey(k graph.APIKey) keyView {
	return keyView{Tenant: k.Tenant, ID: k.ID, Name: k.Name, CreatedAt: k.CreatedAt, UpdatedAt: k.UpdatedAt}
}

type keyCreate struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (s *Server) apiKeys(c echo.Context) graph.Collection[graph.APIKey] {
	return s.Store.Tenant(c.Param("tenant")).Keys()
}

// keyWrite runs write — a store write of API keys and the key table's
// update after it — alone, so that the table ends as the store does even
// when two writes of one key race.
func (s *Server) keyWrite(write func() error) error {
	s.keyWrites.Lock()
	defer s.keyWrites.Unlock()
	return write()
}

func (s *Server) listKeys(c echo.Context) error {
	list, err := s.apiKeys(c).List(c.Request().Context())
	if err != nil {
		return scopedError(c, "key", "", err)
	}
	out := make([]keyView, 0, len(list))
	for _, k := range list {
		out = append(out, viewKey(k))
	}
	return c.JSON(http.StatusOK, map[string]any{"keys": out})
}

// createKey stores a tenant API key and returns the key: the only time it
// is shown.
func (s *Server) createKey(c echo.Context) error {
	var b keyCreate
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &b); err != nil {
		return err
	}
	secret, hash := token.New(token.TenantKeyPrefix)
	var k graph.APIKey
	err := s.keyWrite(func() error {
		var err error
		k, err = s.apiKeys(c).Create(c.Request().Context(), graph.APIKey{Meta: graph.Meta{ID: b.ID}, Name: b.Name, KeyHash: hash[:]})
		if err != nil {
			return scopedError(c, "key", b.ID, err)
		}
		s.Keys.Put(k)
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("api key created", "tenant", k.Tenant, "api_key", k.ID)
	return c.JSON(http.StatusCreated, map[string]any{"api_key": viewKey(k), "key": secret})
}

func (s *Server) getKey(c echo.Context) error {
	k, err := s.apiKeys(c).Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return scopedError(c, "key", c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, viewKey(k))
}

// rotateKey replaces a key with a new one, returned once; the old key stops
// working at once.
func (s *Server) rotateKey(c echo.Context) error {
	ctx, id := c.Request().Context(), c.Param("id")
	secret, hash := token.New(token.TenantKeyPrefix)
	var k graph.APIKey
	err := s.keyWrite(func() error {
		var err error
		if k, err = s.apiKeys(c).Get(ctx, id); err != nil {
			return scopedError(c, "key", id, err)
		}
		k.KeyHash = hash[:]
		if k, err = s.apiKeys(c).Update(ctx, k); err != nil {
			return scopedError(c, "key", id, err)
		}
		s.Keys.Put(k)
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("api key rotated", "tenant", k.Tenant, "api_key", k.ID)
	return c.JSON(http.StatusOK, map[string]any{"api_key": viewKey(k), "key": secret})
}

// deleteKey revokes a key: it stops working at once.
func (s *Server) deleteKey(c echo.Context) error {
	tenant, id := c.Param("tenant"), c.Param("id")
	err := s.keyWrite(func() error {
		if err := s.apiKeys(c).Delete(c.Request().Context(), id); err != nil {
			return scopedError(c, "key", id, err)
		}
		s.Keys.Remove(tenant, id)
		return nil
	})
	if err != nil {
		return err
	}
	s.log.Info("api key revoked", "tenant", tenant, "api_key", id)
	return c.NoContent(http.StatusNoContent)
}
