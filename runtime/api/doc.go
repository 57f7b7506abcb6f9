// Package api is the admin HTTP API (echo): /api/v1 CRUD for tenants,
// devices, junctions, plugin instances and tenant API keys, messages to
// devices, and the operational endpoints /health, /ready and /metrics.
//
// Every /api/v1 call carries a key. The operator key may call every route; a
// tenant API key only its own tenant's routes, and a call in another tenant
// is answered exactly as one in a tenant that does not exist. Keys are
// checked against an in-memory table (KeyTable), never the store.
//
// It is the one writer of the graph store during operation: every write goes
// to the store first and, once stored, to the in-memory views the hot paths
// read (the device catalog, the gateway's sessions). It never serves devices;
// it runs on its own listener that defaults to loopback.
//
// Errors are JSON: {"error":{"code":"…","message":"…","field":"…"}} with a
// stable snake_case code (see docs/API.md) and a 4xx status for the caller's
// mistakes, 503 when the store is unavailable.
package api
