// Package embedded is the default graph.Store: one bbolt file on local disk,
// for a single relay process (a LAN server, a Raspberry Pi) that needs no
// database server.
//
// Layout: a "system" bucket holds the schema version and the operator
// settings; a "tenants" bucket holds one bucket per tenant, which holds the
// tenant record and one bucket per record kind (devices, junctions,
// plugins, keys, releases, rollouts, firmware_history). Records are JSON; an API key is kept as the SHA-256 of the
// key, never the key. Deleting a tenant deletes its bucket and so every
// record in it; no call ever reads or writes outside the bucket of the
// scope's tenant.
//
// The layout has a version (SchemaVersion). Open migrates a file written by
// an older version in the transaction that opens it — all steps or none —
// and refuses a file written by a newer one.
//
// Single-record writes go through bbolt's Batch, so concurrent API writes
// share one commit (one fsync); RecordSeen applies a whole batch in one
// transaction. Backup streams a consistent copy while the store is in use.
//
// The package must never be on the hot path (the runtime keeps its own
// in-memory view) and never be opened by two processes at once: bbolt holds
// an exclusive file lock, and Open reports ErrLocked rather than waiting
// forever.
package embedded
