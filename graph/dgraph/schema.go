package dgraph

// The schema of the galaxy namespace (tenant records, settings) and of every
// tenant namespace, as numbered migrations. Open applies the galaxy's
// migrations after the recorded version (and re-applies the current schema,
// which Dgraph treats as a no-op when nothing changed); a tenant namespace
// is brought to the latest version when it is created, and at Open when its
// recorded version (kept on the tenant's galaxy record) is behind. A version
// above the latest means a newer build wrote the data: Open refuses it.
//
// A migration that changes data besides the schema gets a function here
// beside its schema text when the first one is needed.

type migration struct {
	version int
	schema  string
}

var galaxyMigrations = []migration{
	{1, `
sy.key: string @index(exact) @upsert .
sy.kind: string @index(exact) .
sy.doc: string .
sy.created_at: datetime .
sy.schema_version: int .
sy.key_check: string .
tenant.namespace: int .
tenant.secret: string .
tenant.schema_version: int .
setting.value: string .
garbage.namespace: int .
`},
}

var tenantMigrations = []migration{
	{1, `
sy.key: string @index(exact) @upsert .
sy.kind: string @index(exact) .
sy.doc: string .
sy.created_at: datetime .
device.last_seen: datetime .
device.firmware: string .
`},
}

func latest(ms []migration) int { return ms[len(ms)-1].version }

// pending returns the migrations after version.
func pending(ms []migration, version int) []migration {
	for i, m := range ms {
		if m.version > version {
			return ms[i:]
		}
	}
	return nil
}
