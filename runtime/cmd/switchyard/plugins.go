package main

// The plugins compiled into the relay (plugins/builtins): they register
// themselves with sdk/plugin and run in-process (runtime: builtin) or,
// through `switchyard plugin serve <kind.name>`, in a process of their own
// (runtime: process, module: this binary) — one code path, two isolations.
import _ "github.com/switchyard/switchyard/plugins/builtins"
