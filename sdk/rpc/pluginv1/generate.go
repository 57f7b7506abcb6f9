// Package pluginv1 is the generated Go code of plugin.proto, the gRPC
// protocol between the relay and a process plugin (switchyard.plugin.v1).
// Plugin authors in Go do not use it directly: sdk/rpc serves it.
//
// The .pb.go files are committed; CI does not run protoc. After a change to
// plugin.proto, run `go generate ./rpc/pluginv1` in sdk/ with protoc 3.21+,
// protoc-gen-go v1.36.8 and protoc-gen-go-grpc v1.3.0 on PATH.
package pluginv1

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative plugin.proto
