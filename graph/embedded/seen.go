package embedded

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/switchyard/switchyard/graph"
)

// A device's observed fields — LastSeen and Firmware — live apart from its
// JSON record, in the tenant's seen bucket: key the device id, value 8 bytes
// of big-endian Unix nanoseconds followed by the firmware version. RecordSeen
// runs for the whole connected fleet every flush interval; this way it writes
// a few bytes per device instead of decoding and re-encoding every record
// (which, at 19,000 devices, tripled the relay's memory per connection), and
// an Update cannot roll the fields back. Create writes the entry of every
// device (zero nanoseconds: never seen), so a flush reads only this bucket;
// devices stored before that have none until their first sighting.

const deviceKind = "device"

func deviceBuckets(tb *bolt.Bucket, tenant string) (devices, seen *bolt.Bucket, err error) {
	devices, seen = tb.Bucket(devicesBucket), tb.Bucket(seenBucket)
	if devices == nil || seen == nil {
		return nil, nil, fmt.Errorf("%w: tenant %q lacks its devices or seen bucket", ErrNotDatabase, tenant)
	}
	return devices, seen, nil
}

func encodeSeen(at time.Time, firmware string) []byte {
	v := make([]byte, 8+len(firmware))
	var nanos int64
	if !at.IsZero() {
		nanos = at.UnixNano()
	}
	binary.BigEndian.PutUint64(v, uint64(nanos))
	copy(v[8:], firmware)
	return v
}

func decodeSeen(v []byte) (at time.Time, firmware string, err error) {
	if len(v) < 8 {
		return at, "", fmt.Errorf("%w: a seen entry has %d bytes, want at least 8", ErrNotDatabase, len(v))
	}
	if nanos := int64(binary.BigEndian.Uint64(v)); nanos != 0 {
		at = time.Unix(0, nanos).UTC()
	}
	return at, string(v[8:]), nil
}

// recordSeen applies one sighting over the stored entry old (nil: none);
// an empty firmware keeps the stored one.
func recordSeen(seen *bolt.Bucket, e graph.Seen, old []byte) error {
	firmware := e.Firmware
	if firmware == "" && old != nil {
		if _, fw, err := decodeSeen(old); err == nil {
			firmware = fw
		}
	}
	return seen.Put([]byte(e.Device), encodeSeen(e.At, firmware))
}

func putSeen(tb *bolt.Bucket, tenant string, e graph.Seen) error {
	_, seen, err := deviceBuckets(tb, tenant)
	if err != nil {
		return err
	}
	return seen.Put([]byte(e.Device), encodeSeen(e.At, e.Firmware))
}

func loadSeen(tb *bolt.Bucket, tenant string, d *graph.Device) error {
	_, seen, err := deviceBuckets(tb, tenant)
	if err != nil {
		return err
	}
	v := seen.Get([]byte(d.ID))
	if v == nil {
		return nil
	}
	at, fw, err := decodeSeen(v)
	if err != nil {
		return fmt.Errorf("device %q: %w", d.ID, err)
	}
	d.LastSeen, d.Firmware = at, fw
	return nil
}

func deleteSeen(tb *bolt.Bucket, tenant, id string) error {
	_, seen, err := deviceBuckets(tb, tenant)
	if err != nil {
		return err
	}
	return seen.Delete([]byte(id))
}
