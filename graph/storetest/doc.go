// Package storetest is the conformance suite every graph.Store backend must
// pass: call Run from the backend's own test with a function that opens a
// new, empty store.
//
// The suite checks only what the graph package documents — CRUD, ordering,
// the ErrNotFound / ErrConflict / *graph.InvalidError contract, tenant
// isolation, RecordSeen, settings, copies, concurrency, restart and Close —
// so the embedded (bbolt) and Dgraph backends are held to the same promises.
// Bench is the matching set of benchmarks (catalog load, get, list,
// RecordSeen batches), so that the backends' figures compare.
//
// It must never look at a backend's internals (files, buckets, namespaces)
// and never import a backend.
package storetest
