package main

// The shipped native plugins, for runtime: builtin and `plugin serve`.
import _ "github.com/switchyard/switchyard/plugins/builtins"
