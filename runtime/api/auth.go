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

// requireOperator lets a request to /api/ through when it carries the
// operator key; other paths (/health, /ready, /metrics) are open.
func (s *Server) requireOperator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !strings.HasPrefix(c.Request().URL.Path, "/api/") {
			return next(c)
		}
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		if h == "" {
			return newError(http.StatusUnauthorized, "unauthorized", "missing API key: send Authorization: Bearer <key>")
		}
		scheme, key, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "bearer") || key == "" {
			return newError(http.StatusUnauthorized, "unauthorized", "malformed Authorization header: send Authorization: Bearer <key>")
		}
		if !s.operator.Matches(key) {
			return newError(http.StatusUnauthorized, "unauthorized", "invalid API key")
		}
		return next(c)
	}
}
