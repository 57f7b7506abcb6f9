// Package process runs one plugin instance in a process of its own, through
// hashicorp/go-plugin and the switchyard.plugin.v1 gRPC protocol of sdk/rpc:
// it checks the binary's sha256 before it runs it, starts it with an
// explicit environment, AutoMTLS and a parent-death signal, configures the
// instance, calls it, bridges its stderr into slog, and supervises it:
// a process that dies is started again with exponential backoff, calls
// under way fail, and a collector's stream resumes on the new process.
//
// It never decides what a call's failure means for a message (the host and
// the router do) and never runs a binary whose sum is not the configured one.
package process
