// Package dgraph is the graph.Store on a Dgraph v25 cluster, through dgo.
//
// Each tenant lives in its own Dgraph namespace. Creating a tenant creates
// the namespace (as the galaxy guardian, through the alpha's /admin
// endpoint) with a generated guardian password for it; the password is
// sealed with the installation's encryption key (AES-256-GCM) and kept with
// the tenant's record in the galaxy namespace (0), and every call on the
// tenant's records goes through a client logged into that namespace only.
// Deleting a tenant drops its namespace. Nothing in one namespace can name a
// node of another, so a tenant scope cannot reach another tenant's data even
// through a bug in a query.
//
// The galaxy namespace holds what is not a tenant's: the tenant records,
// operator settings and the recorded schema version. Several installations
// may share one cluster: every galaxy key starts with the installation name.
//
// Records are nodes keyed by "<kind>/<id>" (sy.key, an @upsert index), with
// their kind (sy.kind, indexed for listing), the record's JSON in sy.doc, its
// creation time in sy.created_at, and the observed device fields
// (device.last_seen, device.firmware) apart, so that the batched last-seen
// writes never rewrite a record and an update cannot roll them back. Each call is one request committed at once;
// a transaction aborted by a concurrent write is retried.
//
// Sessions outlive their tokens: dgo renews an expired access token with
// the refresh token, and a session whose refresh token has expired too logs
// in again with its password. While the cluster cannot be reached, calls
// fail at once with an error that wraps graph.ErrUnavailable (they do not
// wait for it), and the same Store works again within seconds of the
// cluster's return: gRPC reconnects with a backoff capped at two seconds.
package dgraph
