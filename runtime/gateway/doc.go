// Package gateway is the device WebSocket server: the handshake with token
// authentication, the session table, device protocol v1
// (firmware/PROTOCOL.md), heartbeats, bounded per-device send queues and
// the graceful drain at shutdown. It serves on github.com/lesismal/nbio's
// nbhttp engine: epoll, no goroutine per connection.
//
// It must never call the graph store or block on anything slow: identities
// come from an Authenticator (the runtime's in-memory index), liveness goes
// to a SeenRecorder that batches writes, data frames go to a DataHandler
// that must not block. Device input never reaches a log line at Info or
// above, and no metric label carries a device id.
//
// # Concurrency
//
// nbio runs the frames of one connection one after another on its task
// pool. Send, SendMatching and Disconnect may be called from any goroutine.
// A single sweeper goroutine enforces the hello and heartbeat timeouts,
// drops connections that do not answer a close in time and reports
// liveness every last_seen_flush: no timer and no goroutine per session.
//
// # Backpressure
//
// nbio's Conn.Write never blocks: what the socket does not take it copies
// into a per-connection buffer with no bound of its own. The gateway
// therefore counts the bytes it hands to nbio (WebSocket framing and, under
// TLS, record overhead included, see session.wireSize) against the bytes
// nbio reports written (Engine.OnWrittenSize), and hands a queued message
// over only while nbio buffers nothing for that connection. Frames that
// wait stay in the session's queue, bounded by send_queue under the
// send_overflow policy (drop_oldest, drop_newest or disconnect with 4029),
// every drop counted in switchyard_gateway_send_dropped_total. nbio's
// MaxWriteBufferSize (2×max_frame_size+64 KiB) is only the backstop for a
// device that keeps sending but never reads. TLS is served with AEAD
// suites only (TLS 1.2 and 1.3) and fixed 16 KiB records so that the count
// stays exact.
//
// # Memory
//
// The target is at most 2 KiB of RSS per idle device (bare nbio: about
// 1.1–1.5 KiB). A session is one struct of about 300 bytes plus its table
// entry; its send queue is allocated only while frames wait and released
// when it drains; frames for SendMatching are encoded once and shared.
// nbio releases each message's read buffer after the handler returns
// (ReleaseWebsocketPayload), its read buffer is per poller, not per
// connection, permessage-deflate is off, and the upgrader's keepalive timer
// is disabled after the upgrade (the sweeper owns liveness).
package gateway
