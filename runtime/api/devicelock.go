package api

import (
	"hash/fnv"
	"sync"
)

// deviceLocks keeps the device catalog in step with the store: a write of a
// device holds its stripe from the store call to the catalog update, so two
// concurrent writes of one device (a rotation and a patch, say) reach the
// catalog in the order they reached the store, and an old token cannot
// outlive its rotation. Writes of different devices rarely share a stripe;
// deleting a tenant holds them all.
type deviceLocks [64]sync.Mutex

func (l *deviceLocks) stripe(tenant, id string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return &l[h.Sum32()%uint32(len(l))]
}

// device runs fn holding the stripe of one device.
func (l *deviceLocks) device(tenant, id string, fn func() error) error {
	m := l.stripe(tenant, id)
	m.Lock()
	defer m.Unlock()
	return fn()
}

// all runs fn holding every stripe.
func (l *deviceLocks) all(fn func() error) error {
	for i := range l {
		l[i].Lock()
	}
	defer func() {
		for i := range l {
			l[i].Unlock()
		}
	}()
	return fn()
}
