package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
)

// recordPtr is a pointer to a record type the generic handlers serve.
type recordPtr[T any] interface {
	*T
	graph.Record
}

// records mounts list/create/get/replace/delete of one record kind under path,
// for kinds that need nothing beyond the store (junctions, plugin instances).
// changed, when not nil, runs after every successful write, with the tenant.
func records[T any, P recordPtr[T]](g *echo.Group, path, kind string, s *Server, coll func(graph.Scope) graph.Collection[T], changed func(c echo.Context) error) {
	in := func(c echo.Context) graph.Collection[T] { return coll(s.Store.Tenant(c.Param("tenant"))) }
	g.GET(path, func(c echo.Context) error {
		list, err := in(c).List(c.Request().Context())
		if err != nil {
			return scopedError(c, kind, "", err)
		}
		if list == nil {
			list = []T{}
		}
		return c.JSON(http.StatusOK, map[string]any{kind + "s": list})
	})
	g.POST(path, func(c echo.Context) error {
		rec, err := decodeRecord[T, P](c, s, "")
		if err != nil {
			return err
		}
		out, err := in(c).Create(c.Request().Context(), rec)
		if err != nil {
			return scopedError(c, kind, P(&rec).RecordMeta().ID, err)
		}
		if err := notify(c, changed); err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, out)
	})
	g.GET(path+"/:id", func(c echo.Context) error {
		out, err := in(c).Get(c.Request().Context(), c.Param("id"))
		if err != nil {
			return scopedError(c, kind, c.Param("id"), err)
		}
		return c.JSON(http.StatusOK, out)
	})
	g.PUT(path+"/:id", func(c echo.Context) error {
		rec, err := decodeRecord[T, P](c, s, c.Param("id"))
		if err != nil {
			return err
		}
		out, err := in(c).Update(c.Request().Context(), rec)
		if err != nil {
			return scopedError(c, kind, c.Param("id"), err)
		}
		if err := notify(c, changed); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	})
	g.DELETE(path+"/:id", func(c echo.Context) error {
		if err := in(c).Delete(c.Request().Context(), c.Param("id")); err != nil {
			return scopedError(c, kind, c.Param("id"), err)
		}
		if err := notify(c, changed); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
}

// decodeRecord decodes a record body. Read-only fields (tenant, created_at,
// updated_at) are ignored except that a tenant other than the path's is an
// error, and on replace (pathID set) the body's id must be absent or equal.
func decodeRecord[T any, P recordPtr[T]](c echo.Context, s *Server, pathID string) (T, error) {
	var rec T
	if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &rec); err != nil {
		return rec, err
	}
	m := P(&rec).RecordMeta()
	if m.Tenant != "" && m.Tenant != c.Param("tenant") {
		return rec, fieldError("tenant", "%q does not match the tenant in the path (%q); leave it out", m.Tenant, c.Param("tenant"))
	}
	if err := mayDeclare(c, &rec); err != nil {
		return rec, err
	}
	if pathID != "" {
		if m.ID != "" && m.ID != pathID {
			return rec, fieldError("id", "%q does not match the id in the path (%q); ids cannot be changed", m.ID, pathID)
		}
		m.ID = pathID
	}
	return rec, nil
}

// mayDeclare refuses a tenant key a plugin instance that would run with the
// host's privileges: only the operator declares builtin and process
// instances; a tenant runs WASM modules, inside the sandbox.
func mayDeclare(c echo.Context, rec any) error {
	p, ok := rec.(*graph.PluginInstance)
	if !ok || callerTenant(c) == "" || p.Runtime == "wasm" {
		return nil
	}
	return newError(http.StatusForbidden, "forbidden", "runtime %q needs an operator key: it runs with the host's privileges; a tenant key may declare wasm instances only", p.Runtime)
}

// scopedError maps a store error of a call in the path's tenant.
func scopedError(c echo.Context, kind, id string, err error) error {
	if errors.Is(err, graph.ErrTenantNotFound) {
		return storeError("tenant", c.Param("tenant"), err)
	}
	return storeError(kind, id, err)
}

func notify(c echo.Context, changed func(echo.Context) error) error {
	if changed == nil {
		return nil
	}
	return changed(c)
}
