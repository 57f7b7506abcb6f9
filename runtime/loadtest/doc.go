// Package loadtest measures how many idle device connections a WebSocket
// server holds and what each one costs in server memory, and how many
// message frames a second it delivers to connected devices. It drives a
// bare nbio server (the baseline; for deliveries it broadcasts generated
// messages as fast as it writes them) and Switchyard relays the same way,
// so the figures come from one run on one machine and can be compared.
//
// For deliveries, clients count message frames without decoding them: they
// read only the frame's time member and keep receipt minus time in a
// fixed-size histogram that worker snapshots add up to.
//
// For downloads (RunDownloads), a sample of the connected devices send
// heartbeats with a seq and time the relay's answers into the same kind of
// histogram, by window, while a download worker process loops whole GETs of
// a firmware image and checks each body's length and SHA-256.
//
// Clients run in worker processes (the tool re-executes itself), because one
// process may hold at most ~19,500 sockets here. Each worker dials from its
// own slice of 127.0.0.x source addresses, finishes the WebSocket and
// protocol-v1 handshake synchronously, then hands the socket to an nbio
// poller so that an idle connection costs a few hundred bytes and no
// goroutine. The coordinator samples the servers' VmRSS from /proc before
// and after connecting and reports the median.
//
// The package never sends traffic outside 127.0.0.0/8 when driven by the
// switchyard-load command, and every loop it runs is bounded in count and in
// time: workers and servers it starts stop by themselves.
package loadtest
