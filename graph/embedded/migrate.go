package embedded

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// migrations[i] brings a file from schema version i+1 to i+2. Each runs in
// the transaction that opens the file, so a failed migration leaves the
// file as it was.
var migrations = []func(tx *bolt.Tx) error{
	addKeysBuckets,     // 1 → 2: tenant API keys
	addFirmwareBuckets, // 2 → 3: firmware releases, rollouts and histories
}

// migrate brings a file from schema version from up to SchemaVersion and
// records the new version.
func migrate(tx *bolt.Tx, from int) error {
	if from == SchemaVersion {
		return nil
	}
	if len(migrations) != SchemaVersion-1 {
		return fmt.Errorf("schema version %d has %d migrations, want %d", SchemaVersion, len(migrations), SchemaVersion-1)
	}
	for v := from; v < SchemaVersion; v++ {
		if err := migrations[v-1](tx); err != nil {
			return fmt.Errorf("migrate schema version %d to %d: %w", v, v+1, err)
		}
	}
	return tx.Bucket(systemBucket).Put(schemaKey, []byte(strconv.Itoa(SchemaVersion)))
}

// addKeysBuckets gives every tenant the keys bucket that version 1 lacks.
func addKeysBuckets(tx *bolt.Tx) error {
	return addTenantBuckets(tx, keysBucket)
}

// addFirmwareBuckets gives every tenant the releases, rollouts and
// firmware_history buckets that version 2 lacks.
func addFirmwareBuckets(tx *bolt.Tx) error {
	return addTenantBuckets(tx, firmwareBuckets...)
}

// addTenantBuckets creates the named kind buckets in every tenant that lacks
// them; those a tenant has are kept as they are.
func addTenantBuckets(tx *bolt.Tx, names ...[]byte) error {
	all := tx.Bucket(tenantsBucket)
	// Names first: bbolt forbids changing a bucket while iterating it.
	var tenants [][]byte
	if err := all.ForEachBucket(func(k []byte) error {
		tenants = append(tenants, append([]byte{}, k...))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range tenants {
		for _, name := range names {
			if _, err := all.Bucket(id).CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("tenant %q: create the %s bucket: %w", id, name, err)
			}
		}
	}
	return nil
}
