package config

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
)

// isLive reports whether key, a key of Config, is a section a running
// Switchyard applies on reload. Every other key is fixed for the life of the
// process.
func isLive(key string) bool {
	switch key {
	case "tenants", "devices", "plugins", "junctions":
		return true
	}
	return false
}

// LiveOnlyChanges returns a Problem for every value of now that differs from
// was outside the sections a reload applies (tenants, devices, plugins,
// junctions), or nil when there is none. Its Path is the key path, for
// example "gateway.listen"; lists and mappings are compared as a whole. The
// values are shown unless the key is a secret; the encryption key, which is
// not a key of the file, is reported at SWITCHYARD_ENCRYPTION_KEY. The
// problems come in the order the keys are declared; Source and Line are
// left empty. was and now must not be nil.
func LiveOnlyChanges(was, now *Config) Problems {
	var ps Problems
	report := func(path, change string) {
		ps = append(ps, Problem{Path: path, Message: "cannot change while Switchyard runs (" + change + "); restart to apply it"})
	}
	t := reflect.TypeFor[Config]()
	ov, nv := reflect.ValueOf(was).Elem(), reflect.ValueOf(now).Elem()
	for i := range t.NumField() {
		if k := keyOf(t.Field(i)); k != "" && !isLive(k) {
			fixedChanges(k, ov.Field(i), nv.Field(i), isSecret(t.Field(i)), report)
		}
	}
	if !bytes.Equal(was.EncryptionKey, now.EncryptionKey) {
		report(EnvEncryptionKey, secretChange)
	}
	return ps
}

// secretChange stands for the values of a secret that changed.
const secretChange = "the value changed"

// fixedChanges calls report for every value at or under path (a section,
// list, mapping or single value) that differs between o and n.
func fixedChanges(path string, o, n reflect.Value, secret bool, report func(path, change string)) {
	if o.Kind() == reflect.Struct {
		t := o.Type()
		for i := range t.NumField() {
			if k := keyOf(t.Field(i)); k != "" {
				fixedChanges(joinPath(path, k), o.Field(i), n.Field(i), secret || isSecret(t.Field(i)), report)
			}
		}
		return
	}
	if reflect.DeepEqual(o.Interface(), n.Interface()) {
		return
	}
	if secret {
		report(path, secretChange)
		return
	}
	report(path, "was "+showValue(o)+", now "+showValue(n))
}

// showValue writes a value for a message: strings quoted, lists as
// ["a", "b"], anything else as it prints (durations and sizes as they are
// written, mappings in key order).
func showValue(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	case reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = showValue(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	default:
		return fmt.Sprint(v.Interface())
	}
}
