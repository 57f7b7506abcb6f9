// Command switchyard-load measures how many idle device connections a relay
// holds and at what memory cost, and how many message frames a second it
// delivers through a WASM pipeline (the deliveries command), each side by
// side with a bare nbio server measured in the same run; and how many
// firmware image downloads it serves beside N connected devices and what
// they do to the devices' heartbeat round trips (the downloads command,
// whose baseline is a phase without downloads in the same run).
//
// It re-executes itself as client worker processes (the open-file limit
// caps one process at ~19,500 sockets), spreads their source addresses over
// 127.0.0.2, 127.0.0.3, …, and reads the servers' VmRSS from /proc. Run
// `switchyard-load -h` for the commands and docs/BENCHMARKS.md for the
// figures it produced.
package main
