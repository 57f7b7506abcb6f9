// Package plugin is the contract between Switchyard and a plugin written in Go that runs
// in-process (a built-in) or as a subprocess: the Message that flows through junctions, the
// three kinds of plugin (Collector, Transform, Broker), the optional lifecycle interfaces, the
// registry of built-ins and the strict configuration decoder.
//
// A plugin is known by its ID, "kind.name" (collectors.mqtt, transforms.scale). A built-in
// registers itself from an init function:
//
//	func init() {
//		plugin.Register(plugin.Info{ID: "transforms.upper", New: func() any { return new(Upper) }})
//	}
//
//	var _ plugin.Transform = (*Upper)(nil) // interface guard
//
// # Lifecycle
//
// The runtime drives every plugin instance through the same steps, in this order:
//
//  1. new: Info.New returns a fresh, zero-configured value.
//  2. config: DecodeConfig decodes the instance's settings strictly into that value (an
//     unknown field or trailing data is an error naming the field).
//  3. Provision (optional, Provisioner): set up what the instance needs — defaults, clients,
//     compiled expressions. It may fail; nothing is running yet.
//  4. Validate (optional, Validator): check the provisioned instance; no side effects.
//  5. start: Collect runs until its context ends; Transform and Publish are called for each
//     message or batch and must be safe for use by several goroutines at once.
//  6. Cleanup (optional, CleanerUpper): release what Provision acquired. It is called for
//     every instance whose Provision was called, including one that failed Provision or
//     Validate, and after the instance has been swapped out by a reload and drained.
//
// If any step before start fails, the instance never starts, and on a reload the previous
// generation keeps running.
//
// This package never imports anything of the runtime, performs no I/O and starts no
// goroutines; it holds no state but the registry of built-ins filled in init.
package plugin
