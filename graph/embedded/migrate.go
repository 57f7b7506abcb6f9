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
	addKeysBuckets, // 1 → 2: tenant API keys
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
		if _, err := all.Bucket(id).CreateBucketIfNotExists(keysBucket); err != nil {
			return fmt.Errorf("tenant %q: %w", id, err)
		}
	}
	return nil
}
