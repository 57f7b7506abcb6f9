package plugin

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Info describes a built-in plugin.
type Info struct {
	// ID is the plugin's "kind.name".
	ID ID
	// New returns a new, unconfigured instance: a pointer to the plugin's type, which must
	// implement the interface of ID's kind. It must be cheap and have no side effects;
	// Register calls it once to check the type.
	New func() any
}

var registry = struct {
	sync.RWMutex
	infos map[ID]Info
}{infos: make(map[ID]Info)}

// Register adds a built-in plugin. It is meant to be called from init functions and panics
// when info is invalid: a malformed ID, a nil New, a value from New that does not implement
// the interface of the ID's kind, or an ID that is already registered.
func Register(info Info) {
	if _, err := ParseID(string(info.ID)); err != nil {
		panic("plugin: register: " + err.Error())
	}
	if info.New == nil {
		panic(fmt.Sprintf("plugin: register %s: New is nil", info.ID))
	}
	if err := checkKind(info.ID.Kind(), info.New()); err != nil {
		panic(fmt.Sprintf("plugin: register %s: %v", info.ID, err))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.infos[info.ID]; dup {
		panic(fmt.Sprintf("plugin: register %s: already registered", info.ID))
	}
	registry.infos[info.ID] = info
}

func checkKind(kind Kind, v any) error {
	var ok bool
	var want string
	switch kind {
	case Collectors:
		_, ok = v.(Collector)
		want = "plugin.Collector"
	case Transforms:
		_, ok = v.(Transform)
		want = "plugin.Transform"
	case Brokers:
		_, ok = v.(Broker)
		want = "plugin.Broker"
	}
	if !ok {
		return fmt.Errorf("New returns %T, which does not implement %s", v, want)
	}
	return nil
}

// Lookup returns the built-in registered under id.
func Lookup(id ID) (Info, bool) {
	registry.RLock()
	defer registry.RUnlock()
	info, ok := registry.infos[id]
	return info, ok
}

// List returns every registered built-in, sorted by ID.
func List() []Info {
	registry.RLock()
	infos := make([]Info, 0, len(registry.infos))
	for _, info := range registry.infos {
		infos = append(infos, info)
	}
	registry.RUnlock()
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return infos
}
