// Package modules is the relay's store of plugin modules: the WASM modules
// and process-plugin binaries that admins and tenants upload through the admin
// API, kept per tenant on the relay's disk and addressed by the sha256 of
// their bytes, so that a plugin instance can name the module it runs.
//
// A module lives at <dir>/<tenant>/<sha256>.wasm (mode 0600) or
// <dir>/<tenant>/<sha256>.bin (mode 0700, so it can be executed); a firmware
// image, in a Store of its own, at <dir>/<tenant>/<sha256>.img. The file is
// the whole record: its extension gives the kind, its size the size and its
// modification time the moment it was stored; there is no index to keep in
// step. An upload is streamed to a temporary file in the tenant's folder while
// it is hashed and checked, then fsynced and renamed into place, so a module
// is either complete under its final name or absent.
//
// The store never lets one tenant see, use or delete another tenant's
// modules, never builds a path from text it has not validated (tenants with
// graph.ValidID, sums as 64 hex digits), and never overwrites a stored module.
// It does not parse or run modules beyond checking the WASM header; loading
// them is the plugin host's job. One Store owns a directory: two processes
// must not open the same one.
//
// Every error about the caller's input wraps one of the Err* sentinels, so the
// admin API can map it to a status with errors.Is; errors of the disk or of
// the upload's reader wrap the underlying error instead.
package modules
