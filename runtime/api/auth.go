package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/token"
)

// operatorKeySetting is the store setting that holds the hash of a
// generated operator key.
const operatorKeySetting = "operator_key_sha256"

// OperatorKey decides the operator's API key hash at start. A key from the
// configuration (normally SWITCHYARD_API__OPERATOR_KEY) wins. Without one, the
// hash stored by an earlier start is used; on the very first start a key is
// generated, its hash stored, and the key returned in generated so the caller
// can print it once. It is never stored or shown again.
func OperatorKey(ctx context.Context, store graph.Store, configured string) (hash token.Hash, generated string, err error) {
	if configured != "" {
		return token.Of(configured), "", nil
	}
	stored, err := store.GetSetting(ctx, operatorKeySetting)
	switch {
	case err == nil:
		h, ok := token.FromBytes(stored)
		if !ok {
			return hash, "", fmt.Errorf("operator key: stored hash has %d bytes, want 32", len(stored))
		}
		return h, "", nil
	case !errors.Is(err, graph.ErrNotFound):
		return hash, "", fmt.Errorf("operator key: %w", err)
	}
	generated, hash = token.New(token.OperatorPrefix)
	if err := store.PutSetting(ctx, operatorKeySetting, hash[:]); err != nil {
		return hash, "", fmt.Errorf("operator key: store: %w", err)
	}
	return hash, generated, nil
}

// access says which keys may call a route.
type access int

const (
	// operatorOnly routes manage tenants: the operator key only.
	operatorOnly access = iota
	// ownTenant routes act in the path's tenant: the operator key, or a key
	// of that tenant.
	ownTenant
	// anyTenant routes take any key; the handler answers a tenant key with
	// its tenant's share (see callerTenant).
	anyTenant
)

// tenantRoute is the path template of one tenant; the routes under it act
// in that tenant.
const tenantRoute = "/api/v1/tenants/:tenant"

// routeAccess classifies a route by its method and path template. A route
// added under tenantRoute is open to the tenant's keys; any other new route
// is the operator's until classified here.
func routeAccess(method, path string) access {
	switch {
	case strings.HasPrefix(path, tenantRoute+"/"), path == tenantRoute && method == http.MethodGet:
		return ownTenant
	case (path == "/api/v1/plugins" || path == "/api/v1/generations" || path == "/api/v1/firmware/key") && method == http.MethodGet:
		return anyTenant
	}
	return operatorOnly
}

// callerKey is the echo context key of the caller's tenant.
const callerKey = "switchyard.caller_tenant"

// callerTenant is the tenant of the request's tenant key, or "" when the
// operator key made it.
func callerTenant(c echo.Context) string {
	tenant, _ := c.Get(callerKey).(string)
	return tenant
}

// authorize lets a request to /api/ through when its key may call the
// route; other paths (/health, /ready, /metrics) are open. A tenant key
// asking for another tenant gets the very answer a tenant that does not
// exist gets, so it cannot learn which tenants exist.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.HasPrefix(c.Request().URL.Path, "/api/") {
			return next(c)
		}
		key, err := bearer(c.Request())
		if err != nil {
			return err
		}
		tenant, ok := s.caller(key)
		if !ok {
			return newError(http.StatusUnauthorized, "unauthorized", "invalid API key")
		}
		if tenant != "" {
			if err := s.allow(c, tenant); err != nil {
				return err
			}
		}
		c.Set(callerKey, tenant)
		return next(c)
	}
}

// bearer returns the key of the Authorization header.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get(echo.HeaderAuthorization)
	if h == "" {
		return "", newError(http.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer <key>")
	}
	scheme, key, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || key == "" {
		return "", newError(http.StatusUnauthorized, "unauthorized", "malformed Authorization header: send Authorization: Bearer <key>")
	}
	return key, nil
}

// caller returns the tenant key's tenant, or "" for the operator key; ok is
// false for any other key.
func (s *Server) caller(key string) (tenant string, ok bool) {
	if s.operator.Matches(key) {
		return "", true
	}
	return s.Keys.Tenant(token.Of(key))
}

// allow decides whether a key of tenant may call the request's route.
func (s *Server) allow(c echo.Context, tenant string) error {
	method := c.Request().Method
	a, ok := s.access[method+" "+c.Path()]
	switch {
	case !ok:
		return nil // no such route: echo answers 404 or 405, whoever asks
	case a == operatorOnly:
		return newError(http.StatusForbidden, "forbidden", "%s %s needs an operator key: a tenant key manages only its own tenant", method, c.Path())
	case a == ownTenant && c.Param("tenant") != tenant:
		return storeError("tenant", c.Param("tenant"), graph.ErrTenantNotFound)
	}
	return nil
}
