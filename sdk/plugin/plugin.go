package plugin

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Message is one unit of data moving through a junction: from a collector or a device, through
// transforms, to targets.
type Message struct {
	// Tenant owns the message; a plugin instance only ever sees its own tenant's messages.
	Tenant string
	// Source names where the message was made: a plugin instance id, or "device.<id>".
	Source string
	// Subject is the dotted topic junctions match on, such as "device.sensor-1.telemetry".
	Subject string
	// Time is when the message was made.
	Time time.Time
	// Meta carries small string attributes along the route; it may be nil.
	Meta map[string]string
	// Payload is the message body, usually JSON; it may be empty.
	Payload []byte
}

// Kind is the kind of a plugin: the first part of its ID.
type Kind string

// The kinds of plugin.
const (
	Collectors Kind = "collectors" // plugins that implement Collector
	Transforms Kind = "transforms" // plugins that implement Transform
	Brokers    Kind = "brokers"    // plugins that implement Broker
)

// Valid reports whether k is one of Collectors, Transforms and Brokers.
func (k Kind) Valid() bool {
	return k == Collectors || k == Transforms || k == Brokers
}

// maxNameLen bounds the name part of an ID.
const maxNameLen = 64

// ID names a plugin as "kind.name", such as "collectors.mqtt". The name starts with a
// lower-case letter and continues with lower-case letters, digits, '_' and '-', at most 64 bytes.
type ID string

// ParseID checks that s is a well-formed plugin ID and returns it.
func ParseID(s string) (ID, error) {
	kind, name, ok := strings.Cut(s, ".")
	if !ok {
		return "", fmt.Errorf("plugin id %q: want kind.name, such as transforms.scale", s)
	}
	if !Kind(kind).Valid() {
		return "", fmt.Errorf("plugin id %q: unknown kind %q (want %s, %s or %s)", s, kind, Collectors, Transforms, Brokers)
	}
	if err := checkName(name); err != nil {
		return "", fmt.Errorf("plugin id %q: %w", s, err)
	}
	return ID(s), nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty name")
	case len(name) > maxNameLen:
		return fmt.Errorf("name longer than %d bytes", maxNameLen)
	case name[0] < 'a' || name[0] > 'z':
		return fmt.Errorf("name %q must start with a lower-case letter", name)
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return fmt.Errorf("name %q: character %q not allowed (want a-z, 0-9, '_' or '-')", name, c)
		}
	}
	return nil
}

// Kind returns the part of id before the first dot.
func (id ID) Kind() Kind {
	kind, _, _ := strings.Cut(string(id), ".")
	return Kind(kind)
}

// Name returns the part of id after the first dot.
func (id ID) Name() string {
	_, name, _ := strings.Cut(string(id), ".")
	return name
}

// Emitter receives the messages a plugin produces.
type Emitter interface {
	// Emit hands one message on. An error means the message was not accepted (the route
	// is shutting down, or a bound was hit); the plugin should stop producing for this call.
	Emit(Message) error
}

// EmitFunc adapts a function to the Emitter interface.
type EmitFunc func(Message) error

var _ Emitter = EmitFunc(nil)

// Emit calls f(m).
func (f EmitFunc) Emit(m Message) error { return f(m) }

// Collector brings data into Switchyard from outside (an MQTT subscription, a polled HTTP
// endpoint, a sensor bus).
type Collector interface {
	// Collect emits messages to out until ctx ends, then returns nil. It returns an error
	// only when it cannot go on; the runtime reports it, naming the instance.
	Collect(ctx context.Context, out Emitter) error
}

// Transform turns one message into zero, one or many messages.
type Transform interface {
	// Transform emits the results for in to out: none drops the message, one maps it, more
	// fan it out. An error fails the whole call and the runtime discards what was emitted.
	Transform(ctx context.Context, in Message, out Emitter) error
}

// Broker delivers messages to a system outside Switchyard (an MQTT broker, a webhook).
type Broker interface {
	// Publish delivers batch, in order. An error means the batch was not (wholly) delivered;
	// the runtime may retry the whole batch within the junction's bounds, so delivery is at
	// least once.
	Publish(ctx context.Context, batch []Message) error
}

// Provisioner is implemented by plugins that set themselves up after their configuration is
// decoded: defaults, clients, compiled expressions.
type Provisioner interface {
	Provision(ctx context.Context) error
}

// Validator is implemented by plugins that check their provisioned configuration. Validate has
// no side effects.
type Validator interface {
	Validate() error
}

// CleanerUpper is implemented by plugins that hold resources to release when the instance is
// retired.
type CleanerUpper interface {
	Cleanup() error
}
