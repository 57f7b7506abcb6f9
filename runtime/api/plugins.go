package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/host"
	"github.com/switchyard/switchyard/runtime/modules"
	"github.com/switchyard/switchyard/runtime/reload"
)

// pluginRoutes mounts the plugin host's routes: instances, generations,
// reload, rollback and module uploads.
func (s *Server) pluginRoutes(v1, t *echo.Group) {
	v1.GET("/plugins", s.listPlugins)
	v1.POST("/reload", s.reload)
	v1.GET("/generations", s.listGenerations)
	v1.POST("/generations/rollback", s.rollback)

	t.GET("/plugins", s.listInstances)
	t.POST("/plugins", s.putInstance)
	t.GET("/plugins/:id", s.getInstance)
	t.PUT("/plugins/:id", s.putInstance)
	t.DELETE("/plugins/:id", s.deleteInstance)
	t.GET("/generations", s.listGenerations)
	t.POST("/generations/rollback", s.rollback)
	t.GET("/modules", s.listModules)
	t.POST("/modules", s.uploadModule)
	t.GET("/modules/:id", s.getModule)
	t.DELETE("/modules/:id", s.deleteModule)
}

// listPlugins lists the running plugin instances with their module's
// sha256, state and last error — every tenant's for the operator, its own
// for a tenant key — with the generation serving and the last refused one.
func (s *Server) listPlugins(c echo.Context) error {
	list := s.Plugins.List()
	tenant := callerTenant(c)
	if tenant != "" {
		list = slices.DeleteFunc(list, func(p host.Info) bool { return p.Tenant != tenant })
	}
	active, failed := s.Plugins.Status()
	body := map[string]any{"plugins": list, "generation": active.Number}
	if failed != nil && tenant != "" {
		// A tenant sees a failure on its instances or its request only.
		if mine := s.Plugins.History(tenant); len(mine) == 0 || mine[0].Number != failed.Number {
			failed = nil
		}
	}
	if failed != nil {
		body["last_failure"] = failed
	}
	return c.JSON(http.StatusOK, body)
}

// requireTenant answers 404 tenant_not_found for a path's tenant that does
// not exist, for the routes whose state is not kept in the store.
func (s *Server) requireTenant(c echo.Context) error {
	tenant := c.Param("tenant")
	if tenant == "" {
		return nil
	}
	if _, err := s.Store.GetTenant(c.Request().Context(), tenant); err != nil {
		return storeError("tenant", tenant, err)
	}
	return nil
}

// tenantOf is the tenant a route acts in: the path's, else the caller's
// ("" for the operator: every tenant).
func tenantOf(c echo.Context) string {
	if t := c.Param("tenant"); t != "" {
		return t
	}
	return callerTenant(c)
}

func (s *Server) listGenerations(c echo.Context) error {
	if err := s.requireTenant(c); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"generations": s.Plugins.History(tenantOf(c))})
}

func (s *Server) reload(c echo.Context) error {
	g, err := s.Control.Reload(c.Request().Context(), "api")
	if err != nil {
		return controlError("plugin", "", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"generation": g})
}

// rollback applies an earlier generation again: body {"to": N}, or no body
// for the one before.
func (s *Server) rollback(c echo.Context) error {
	if err := s.requireTenant(c); err != nil {
		return err
	}
	var body struct {
		To uint64 `json:"to"`
	}
	if c.Request().ContentLength != 0 {
		if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &body); err != nil {
			return err
		}
	}
	g, err := s.Control.Rollback(c.Request().Context(), tenantOf(c), body.To)
	if err != nil {
		return controlError("plugin", "", err)
	}
	return c.JSON(http.StatusOK, map[string]any{"generation": g})
}

func (s *Server) listInstances(c echo.Context) error {
	list, err := s.Store.Tenant(c.Param("tenant")).Plugins().List(c.Request().Context())
	if err != nil {
		return scopedError(c, "plugin", "", err)
	}
	if list == nil {
		list = []graph.PluginInstance{}
	}
	return c.JSON(http.StatusOK, map[string]any{"plugins": list})
}

func (s *Server) getInstance(c echo.Context) error {
	rec, err := s.Store.Tenant(c.Param("tenant")).Plugins().Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return scopedError(c, "plugin", c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, rec)
}

// putInstance creates (POST) or replaces (PUT) an instance and answers
// once the generation holding it serves.
func (s *Server) putInstance(c echo.Context) error {
	if err := s.requireTenant(c); err != nil {
		return err
	}
	rec, err := decodeRecord[graph.PluginInstance](c, s, c.Param("id"))
	if err != nil {
		return err
	}
	create := c.Request().Method == http.MethodPost
	out, g, err := s.Control.PutInstance(c.Request().Context(), c.Param("tenant"), rec, create)
	if err != nil {
		if errors.Is(err, graph.ErrTenantNotFound) {
			return scopedError(c, "plugin", rec.ID, err)
		}
		return controlError("plugin", rec.ID, err)
	}
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	return c.JSON(status, map[string]any{"plugin": out, "generation": g})
}

func (s *Server) deleteInstance(c echo.Context) error {
	g, err := s.Control.DeleteInstance(c.Request().Context(), c.Param("tenant"), c.Param("id"))
	if err != nil {
		if errors.Is(err, graph.ErrTenantNotFound) {
			return scopedError(c, "plugin", c.Param("id"), err)
		}
		return controlError("plugin", c.Param("id"), err)
	}
	return c.JSON(http.StatusOK, map[string]any{"generation": g})
}

// sentinels are the answers to the errors of a plugin change and of the
// module store that say what went wrong.
var sentinels = []struct {
	err    error
	status int
	code   string
}{
	{reload.ErrNoFile, http.StatusConflict, "no_configuration_file"},
	{reload.ErrDeclaredInFile, http.StatusConflict, "declared_in_file"},
	{reload.ErrModule, http.StatusUnprocessableEntity, "module_unavailable"},
	{reload.ErrNoGeneration, http.StatusConflict, "no_generation"},
	{host.ErrStopping, http.StatusServiceUnavailable, "shutting_down"},
	{modules.ErrNotFound, http.StatusNotFound, "module_not_found"},
	{modules.ErrTooLarge, http.StatusRequestEntityTooLarge, "module_too_large"},
	{modules.ErrMismatch, http.StatusUnprocessableEntity, "sha256_mismatch"},
	{modules.ErrConflict, http.StatusConflict, "module_exists"},
	{modules.ErrEmpty, http.StatusUnprocessableEntity, "invalid_module"},
	{modules.ErrNotWASM, http.StatusUnprocessableEntity, "invalid_module"},
}

func sentinelError(err error) *Error {
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			return newError(s.status, s.code, "%v", err)
		}
	}
	return nil
}

// controlError maps an error of a plugin change to the API's error.
func controlError(kind, id string, err error) *Error {
	var notApplied *host.NotAppliedError
	var problems config.Problems
	var e *Error
	switch {
	case errors.Is(err, reload.ErrLiveOnly) && errors.As(err, &problems):
		e = newError(http.StatusUnprocessableEntity, "live_only_setting", "%v", err)
	case errors.As(err, &problems):
		e = newError(http.StatusUnprocessableEntity, "invalid_configuration", "%v", err)
	case sentinelError(err) != nil:
		return sentinelError(err)
	case errors.As(err, &notApplied) && !isStoreError(notApplied.Err):
		return newError(http.StatusUnprocessableEntity, "plugin_refused", "%v", err)
	default:
		return storeError(kind, id, err)
	}
	for _, p := range problems {
		e.Problems = append(e.Problems, p.String())
	}
	return e
}

func isStoreError(err error) bool {
	var inv *graph.InvalidError
	return errors.As(err, &inv) || errors.Is(err, graph.ErrNotFound) || errors.Is(err, graph.ErrConflict) || errors.Is(err, graph.ErrUnavailable)
}

func (s *Server) listModules(c echo.Context) error {
	if err := s.requireTenant(c); err != nil {
		return err
	}
	list, err := s.Modules.List(c.Param("tenant"))
	if err != nil {
		return moduleError(err)
	}
	return c.JSON(http.StatusOK, map[string]any{"modules": list})
}

func (s *Server) getModule(c echo.Context) error {
	if err := s.requireTenant(c); err != nil {
		return err
	}
	info, err := s.Modules.Get(c.Param("tenant"), c.Param("id"))
	if err != nil {
		return moduleError(err)
	}
	return c.JSON(http.StatusOK, info)
}

// uploadModule stores a module for the path's tenant. The body is the
// module (application/wasm, or application/octet-stream with ?kind=process
// for a process binary; ?sha256= checks it), or, for the operator only,
// JSON {"path", "sha256", "kind"} naming a file on the relay's disk. A
// WASM module is compiled and checked against the ABI before it is kept.
func (s *Server) uploadModule(c echo.Context) error {
	ctx := c.Request().Context()
	tenant := c.Param("tenant")
	if err := s.requireTenant(c); err != nil {
		return err
	}
	limit := int64(s.Config.MaxModuleSize)
	kind, want := modules.Kind(c.QueryParam("kind")), c.QueryParam("sha256")
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	var path string
	switch mt {
	case "application/json":
		var body struct {
			Path   string       `json:"path"`
			SHA256 string       `json:"sha256"`
			Kind   modules.Kind `json:"kind"`
		}
		if err := decodeBody(c.Request(), int64(s.Config.MaxBodySize), &body); err != nil {
			return err
		}
		if callerTenant(c) != "" {
			return newError(http.StatusForbidden, "forbidden", "registering a file on the relay's disk needs an operator key; upload the module's bytes instead")
		}
		if body.Path == "" || body.SHA256 == "" {
			return fieldError("path", "path and sha256 are both required to register a file on the relay's disk")
		}
		path, kind, want = body.Path, body.Kind, body.SHA256
	case "application/wasm":
		if kind == "" {
			kind = modules.KindWASM
		}
	case "application/octet-stream":
	default:
		return newError(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"content type %q: send the module as application/wasm (or application/octet-stream with ?kind=), or JSON naming a path", mt)
	}
	if kind != modules.KindWASM && kind != modules.KindProcess {
		return fieldError("kind", "%q must be wasm or process", kind)
	}
	if kind == modules.KindProcess && callerTenant(c) != "" {
		return newError(http.StatusForbidden, "forbidden", "process binaries run with the host's privileges: uploading one needs an operator key")
	}
	var info modules.Info
	var err error
	existed := false // the same bytes were stored before: 200, not 201
	switch {
	case kind == modules.KindWASM:
		// Read whole, to compile it before it is kept.
		var code []byte
		if path != "" {
			code, err = readLimited(path, limit)
		} else {
			code, err = io.ReadAll(io.LimitReader(c.Request().Body, limit+1))
		}
		switch {
		case err != nil && errors.Is(err, os.ErrNotExist):
			return fieldError("path", "%v", err)
		case err != nil:
			return newError(http.StatusBadRequest, "invalid_body", "read module: %v", err)
		case int64(len(code)) > limit:
			return newError(http.StatusRequestEntityTooLarge, "module_too_large", "the module is larger than api.max_module_size (%d bytes)", limit)
		case len(code) == 0:
			return newError(http.StatusUnprocessableEntity, "invalid_module", "the module is empty")
		}
		// The store checks want too; checked here, a wrong sum costs no compile.
		sum := sha256.Sum256(code)
		if got := hex.EncodeToString(sum[:]); want != "" && !strings.EqualFold(want, got) {
			return newError(http.StatusUnprocessableEntity, "sha256_mismatch", "the module's sha256 is %s, not the %s given", got, want)
		}
		if err := s.CheckWASM(ctx, code); err != nil {
			return newError(http.StatusUnprocessableEntity, "invalid_module", "%v", err)
		}
		_, had := s.Modules.Get(tenant, hex.EncodeToString(sum[:]))
		existed = had == nil
		info, err = s.Modules.Put(tenant, kind, bytes.NewReader(code), limit, want)
	case path != "":
		_, had := s.Modules.Get(tenant, want)
		existed = had == nil
		info, err = s.Modules.PutFile(tenant, kind, path, limit, want)
	default:
		info, err = s.Modules.Put(tenant, kind, c.Request().Body, limit, want)
	}
	if err != nil {
		return moduleError(err)
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	return c.JSON(status, info)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit+1))
}

// deleteModule removes a module no instance of the tenant uses.
func (s *Server) deleteModule(c echo.Context) error {
	if err := s.requireTenant(c); err != nil {
		return err
	}
	tenant, sha := c.Param("tenant"), c.Param("id")
	info, err := s.Modules.Get(tenant, sha)
	if err != nil {
		return moduleError(err)
	}
	recs, err := s.Store.Tenant(tenant).Plugins().List(c.Request().Context())
	if err != nil {
		return scopedError(c, "plugin", "", err)
	}
	for _, r := range recs {
		if r.Module == info.SHA256 {
			return newError(http.StatusConflict, "module_in_use", "module %s is used by plugin instance %q; remove or change it first", info.SHA256, r.ID)
		}
	}
	if err := s.Modules.Delete(tenant, sha); err != nil {
		return moduleError(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// moduleError maps an error of the module store.
func moduleError(err error) *Error {
	var inv *graph.InvalidError
	switch {
	case sentinelError(err) != nil:
		return sentinelError(err)
	case errors.As(err, &inv):
		return fieldError(inv.Field, "%s", inv.Message)
	case errors.Is(err, modules.ErrInvalid):
		return newError(http.StatusBadRequest, "invalid_field", "%v", err)
	case errors.Is(err, os.ErrNotExist):
		return fieldError("path", "%v", err)
	}
	return newError(http.StatusInternalServerError, "internal", "%v", err)
}
