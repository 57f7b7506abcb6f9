package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/switchyard/switchyard/graph"
)

// Error is the body of every error response.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// Problems lists every problem of a configuration refused.
	Problems []string `json:"problems,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func fieldError(field, format string, args ...any) *Error {
	e := newError(http.StatusBadRequest, "invalid_field", format, args...)
	e.Field = field
	return e
}

// storeError maps a graph error about a record of kind ("device", "tenant", …)
// to the API's error.
func storeError(kind, id string, err error) *Error {
	var inv *graph.InvalidError
	switch {
	case errors.As(err, &inv):
		return fieldError(inv.Field, "%s", inv.Message)
	case errors.Is(err, graph.ErrNotFound):
		return newError(http.StatusNotFound, kind+"_not_found", "%s %q not found", kind, id)
	case errors.Is(err, graph.ErrConflict):
		return newError(http.StatusConflict, kind+"_exists", "%s %q already exists", kind, id)
	case errors.Is(err, graph.ErrUnavailable):
		return newError(http.StatusServiceUnavailable, "store_unavailable", "the graph store is unavailable: %v", err)
	}
	return newError(http.StatusInternalServerError, "internal", "%s %q: %v", kind, id, err)
}

// errorHandler writes every error, echo's own included, in the API's shape.
func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var apiErr *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &apiErr):
	case errors.As(err, &he):
		apiErr = fromEcho(he)
	default:
		apiErr = newError(http.StatusInternalServerError, "internal", "%v", err)
	}
	if apiErr.Status >= 500 {
		s.log.Error("api request failed", "method", c.Request().Method, "route", c.Path(), "code", apiErr.Code, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(apiErr.Status)
		return
	}
	_ = c.JSON(apiErr.Status, map[string]*Error{"error": apiErr})
}

func fromEcho(he *echo.HTTPError) *Error {
	msg := http.StatusText(he.Code)
	if m, ok := he.Message.(string); ok {
		msg = m
	}
	code := map[int]string{
		http.StatusNotFound:              "route_not_found",
		http.StatusMethodNotAllowed:      "method_not_allowed",
		http.StatusRequestEntityTooLarge: "body_too_large",
		http.StatusUnsupportedMediaType:  "unsupported_media_type",
		http.StatusUnauthorized:          "unauthorized",
	}[he.Code]
	if code == "" {
		code = "http_" + fmt.Sprint(he.Code)
	}
	return newError(he.Code, code, "%s", msg)
}
