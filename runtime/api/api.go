package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard/switchyard/firmware"
	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/runtime/catalog"
	"github.com/switchyard/switchyard/runtime/config"
	"github.com/switchyard/switchyard/runtime/gateway"
	"github.com/switchyard/switchyard/runtime/host"
	"github.com/switchyard/switchyard/runtime/junction"
	"github.com/switchyard/switchyard/runtime/modules"
	"github.com/switchyard/switchyard/runtime/reload"
	"github.com/switchyard/switchyard/runtime/token"
)

// Check is one readiness check: nil when ready.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Options wires the API to the rest of the runtime.
type Options struct {
	Config  config.API
	Store   graph.Store
	Catalog *catalog.Catalog
	Gateway *gateway.Gateway
	Router  *junction.Router
	Plugins *host.Host
	Control *reload.Controller
	Modules *modules.Store
	// Backup writes a backup archive of the installation (runtime/backup);
	// nil when the store has its own (Dgraph).
	Backup func(w io.Writer) error
	// Firmware is the update service; FirmwareKey its signing key.
	Firmware    *firmware.Service
	FirmwareKey *firmware.Key
	// CheckWASM compiles an uploaded WASM module and checks it against the
	// ABI, so a module that cannot load is refused at upload.
	CheckWASM   func(ctx context.Context, code []byte) error
	OperatorKey token.Hash
	Keys        *KeyTable // every tenant's API keys (see LoadKeys)
	Ready       []Check
	Logger      *slog.Logger
	Registry    *prometheus.Registry
	Version     string
}

// Server is the admin API.
type Server struct {
	Options
	log      *slog.Logger
	operator token.Hash
	echo     *echo.Echo
	ln       net.Listener
	started  time.Time
	requests *prometheus.CounterVec
	// access classifies every /api/ route by "METHOD path template".
	access map[string]access
	// keyWrites keeps the key table in step with the store (see keyWrite).
	keyWrites sync.Mutex
	// deviceWrites keeps the device catalog in step with the store.
	deviceWrites deviceLocks
}

// Route is one route of the API: its method and path template, in echo's
// syntax (/api/v1/tenants/:tenant).
type Route struct {
	Method string
	Path   string
}

// New builds the API; Start serves it.
func New(o Options) *Server {
	s := &Server{Options: o, log: o.Logger, operator: o.OperatorKey, started: time.Now()}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchyard_api_requests_total",
		Help: "Admin API requests by route template, method and status code.",
	}, []string{"route", "method", "code"})
	o.Registry.MustRegister(s.requests)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(s.count, s.authorize)
	e.GET("/health", s.health)
	e.GET("/ready", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry})))

	// Authorization is router-wide middleware (it passes everything outside
	// /api/), not group middleware: echo answers 404 instead of 405 for a
	// group with middleware.
	v1 := e.Group("/api/v1")
	v1.GET("/tenants", s.listTenants)
	v1.POST("/tenants", s.createTenant)
	v1.GET("/tenants/:tenant", s.getTenant)
	v1.PUT("/tenants/:tenant", s.updateTenant)
	v1.DELETE("/tenants/:tenant", s.deleteTenant)

	t := v1.Group("/tenants/:tenant")
	t.GET("/devices", s.listDevices)
	t.POST("/devices", s.createDevice)
	t.GET("/devices/:id", s.getDevice)
	t.PATCH("/devices/:id", s.patchDevice)
	t.DELETE("/devices/:id", s.deleteDevice)
	t.POST("/devices/:id/token", s.rotateToken)
	t.POST("/devices/:id/messages", s.sendMessage)
	t.GET("/sessions", s.listSessions)
	records(t, "/junctions", "junction", s, graph.Scope.Junctions, s.junctionsChanged)
	t.GET("/keys", s.listKeys)
	t.POST("/keys", s.createKey)
	t.GET("/keys/:id", s.getKey)
	t.POST("/keys/:id/rotate", s.rotateKey)
	t.DELETE("/keys/:id", s.deleteKey)
	s.pluginRoutes(v1, t)
	s.firmwareRoutes(v1, t)
	v1.GET("/backup", s.backup)
	if o.Config.Pprof {
		servePprof(e)
	}
	s.echo = e
	s.access = map[string]access{}
	for _, r := range s.Routes() {
		s.access[r.Method+" "+r.Path] = routeAccess(r.Method, r.Path)
	}
	return s
}

// Routes lists the /api/ routes, ordered by path and method.
func (s *Server) Routes() []Route {
	var out []Route
	for _, r := range s.echo.Routes() {
		if strings.HasPrefix(r.Path, "/api/") {
			out = append(out, Route{Method: r.Method, Path: r.Path})
		}
	}
	slices.SortFunc(out, func(a, b Route) int { return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(a.Method, b.Method)) })
	return out
}

// Start listens on Config.Listen and serves in the background.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.Config.Listen)
	if err != nil {
		return fmt.Errorf("api: listen on %s: %w", s.Config.Listen, err)
	}
	s.ln = ln
	srv := &http.Server{Handler: s.echo, ReadHeaderTimeout: 10 * time.Second}
	s.echo.Server = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("api server stopped", "err", err)
		}
	}()
	s.log.Info("admin API listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the bound address (after Start).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handler is the API's HTTP handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.echo }

// Shutdown stops accepting and waits for requests in flight, within ctx.
func (s *Server) Shutdown(ctx context.Context) error { return s.echo.Server.Shutdown(ctx) }

func (s *Server) count(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		status := c.Response().Status
		if err != nil {
			var apiErr *Error
			var he *echo.HTTPError
			switch {
			case errors.As(err, &apiErr):
				status = apiErr.Status
			case errors.As(err, &he):
				status = he.Code
			default:
				status = http.StatusInternalServerError
			}
		}
		route := c.Path()
		if route == "" || status == http.StatusNotFound && c.Path() == "/*" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(status)).Inc()
		return err
	}
}

func (s *Server) health(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{
		"status":         "ok",
		"version":        s.Version,
		"uptime_seconds": int64(time.Since(s.started).Seconds()),
		"connections":    s.Gateway.Connections(),
		"devices":        s.Catalog.Len(),
	})
}

func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{}
	status := http.StatusOK
	for _, ch := range s.Ready {
		if err := ch.Check(ctx); err != nil {
			checks[ch.Name] = err.Error()
			status = http.StatusServiceUnavailable
			continue
		}
		checks[ch.Name] = "ok"
	}
	body := map[string]any{"status": "ready", "checks": checks}
	if status != http.StatusOK {
		body["status"] = "not_ready"
	}
	return c.JSON(status, body)
}

// junctionsChanged reloads the router's table of the request's tenant from
// the store, after a junction write.
func (s *Server) junctionsChanged(c echo.Context) error {
	tenant := c.Param("tenant")
	if err := s.Router.Reload(c.Request().Context(), s.Store, tenant); err != nil {
		return storeError("tenant", tenant, err)
	}
	return nil
}
