// Command example is the smallest useful plugin built with the Go guest kit: a transform that
// passes every message through unchanged, optionally under another subject. It shows the shape
// of every Go guest (functions registered from init, an empty main, strict configuration in
// Init) and is the module the kit's build test inspects. It must never need anything the kit
// does not give a plugin author.
//
// Configuration (a JSON object):
//
//	{"subject": "displays.text"}   // optional; empty keeps each message's own subject
//
// Build:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o example.wasm .
package main
