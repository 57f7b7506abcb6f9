package wasm

import "sync"

// kvState is an instance's key/value state: host-side, shared by the
// instance's pool, surviving the replacement of module instances, bounded
// by bytes (keys plus values) and by keys. Stored values are never
// modified, so readers copy them outside the lock.
type kvState struct {
	mu       sync.Mutex
	m        map[string][]byte
	bytes    int
	maxBytes int
	maxKeys  int
}

func newState(maxBytes, maxKeys int) *kvState {
	return &kvState{m: map[string][]byte{}, maxBytes: maxBytes, maxKeys: maxKeys}
}

func (st *kvState) get(key []byte) ([]byte, bool) {
	st.mu.Lock()
	v, ok := st.m[string(key)]
	st.mu.Unlock()
	return v, ok
}

// set stores a copy of val under key; statusLimit when the state would
// exceed its bounds (it is then unchanged).
func (st *kvState) set(key, val []byte) int32 {
	v := append(make([]byte, 0, len(val)), val...)
	st.mu.Lock()
	defer st.mu.Unlock()
	old, exists := st.m[string(key)]
	size := st.bytes + len(v)
	if exists {
		size -= len(old)
	} else {
		size += len(key)
	}
	if size > st.maxBytes || (!exists && len(st.m) >= st.maxKeys) {
		return statusLimit
	}
	st.m[string(key)] = v
	st.bytes = size
	return statusOK
}

func (st *kvState) delete(key []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if old, ok := st.m[string(key)]; ok {
		st.bytes -= len(key) + len(old)
		delete(st.m, string(key))
	}
}
