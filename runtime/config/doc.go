// Package config loads Switchyard's configuration: plugins.yaml, then
// SWITCHYARD_* environment variables, then command-line overrides, each on
// top of Default. It decodes every source strictly (an unknown key, a value of
// the wrong type or a duration without a unit is an error naming the key
// path, the file line or the variable) and validates the result, reporting
// every problem at once as Problems.
//
// Plugin config maps are passed through as written: each plugin decodes its
// own strictly. Junction and plugin records are checked with the validators
// of package graph, so a record accepted here is accepted by the store.
//
// The package only reads what Load is given. It never reads os.Environ or
// flags itself, never keeps state between loads (a reload calls Load again),
// never opens listeners or stores, and never puts a secret's value in a
// message.
package config
