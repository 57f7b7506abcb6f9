package api

import (
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/labstack/echo/v4"
)

// pprofPrefix is where Config.Pprof serves Go's runtime profiles. It is
// under /api/ and outside /tenants/, so only the operator key reaches it.
const pprofPrefix = "/api/v1/debug/pprof"

// servePprof adds net/http/pprof's handlers: the index, the named profiles
// (heap, allocs, goroutine, block, mutex, threadcreate) and the CPU profile
// and execution trace, which run for their ?seconds= (default 30 s and 1 s).
func servePprof(e *echo.Echo) {
	e.GET(pprofPrefix+"/", echo.WrapHandler(http.StripPrefix(pprofPrefix, http.HandlerFunc(pprofIndex))))
	e.GET(pprofPrefix+"/:profile", echo.WrapHandler(http.StripPrefix(pprofPrefix, http.HandlerFunc(pprofIndex))))
	e.GET(pprofPrefix+"/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
	e.GET(pprofPrefix+"/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
	e.GET(pprofPrefix+"/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.POST(pprofPrefix+"/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
	e.GET(pprofPrefix+"/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
}

// pprofIndex serves the index at "/" and a named profile at "/name".
// pprof.Index expects the /debug/pprof/ prefix, so the request is shown
// the path it knows.
func pprofIndex(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	if name == "" {
		r.URL.Path = "/debug/pprof/"
		pprof.Index(w, r)
		return
	}
	pprof.Handler(name).ServeHTTP(w, r)
}
