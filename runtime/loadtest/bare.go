package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

// Replies of the bare server: the smallest frames that satisfy a protocol-v1
// client.
var (
	bareWelcome   = []byte(`{"type":"welcome","protocol":1}`)
	bareHeartbeat = []byte(`{"type":"heartbeat"}`)
)

// BareServer is the baseline: an nbio WebSocket server that upgrades any
// request on its path, answers hello with welcome and heartbeat with
// heartbeat, and does nothing else. It is what the relay's gateway costs at
// the least. Broadcast makes it also send generated message frames to
// every connection that said hello; GET /stats reports its counters.
type BareServer struct {
	engine   *nbhttp.Engine
	url      string
	log      *slog.Logger
	shutdown sync.Once
	err      error

	mu      sync.Mutex
	ready   map[*bareConn]struct{} // said hello, not closed
	version atomic.Uint64          // bumped on every change of ready
	changed chan struct{}          // signalled (without blocking) on every change of ready
	drained chan struct{}          // signalled when a connection's writes all reached the socket

	stats bareStats
}

// StartBareServer listens on listen (host:port, port 0 for any) and serves
// WebSocket upgrades on path. A connection that sends nothing for idle is
// closed.
func StartBareServer(listen, path string, idle time.Duration, log *slog.Logger) (*BareServer, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("bare server: listen: %w", err)
	}
	s := &BareServer{log: log, ready: map[*bareConn]struct{}{}, changed: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
	up := websocket.NewUpgrader()
	up.KeepaliveTime = idle
	up.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		if mt != websocket.TextMessage {
			return
		}
		bc := s.connOf(c)
		var env envelope
		if err := json.Unmarshal(data, &env); err != nil {
			log.Debug("bare server: frame is not json", "err", err)
			return
		}
		switch env.Type {
		case "hello":
			// Ready before the welcome goes out, so a client that has its
			// welcome is in the broadcast set (a message may precede the
			// welcome; clients skip it).
			s.setReady(bc, true)
			bc.write(bareWelcome)
		case "heartbeat":
			if env.Seq == nil {
				bc.write(bareHeartbeat)
				break
			}
			// Echo the seq, as the relay does (timed heartbeats).
			bc.write(append(strconv.AppendUint([]byte(`{"type":"heartbeat","seq":`), *env.Seq, 10), '}'))
		}
	})
	up.OnClose(func(c *websocket.Conn, _ error) {
		if bc, ok := c.Session().(*bareConn); ok {
			s.setReady(bc, false)
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			log.Debug("bare server: upgrade", "err", err)
			return
		}
		s.connOf(c)
	})
	mux.HandleFunc("GET "+StatsPath, s.serveStats)
	addr := ln.Addr().String()
	engine := nbhttp.NewEngine(nbhttp.Config{
		Name:                         "bare",
		Network:                      "tcp",
		Addrs:                        []string{addr},
		NListener:                    1,
		Listen:                       func(string, string) (net.Listener, error) { return ln, nil },
		Handler:                      mux,
		ReleaseWebsocketPayload:      true,
		SupportServerOnly:            true,
		MaxWebsocketFramePayloadSize: maxFramePayload,
	})
	up.Engine = engine
	engine.OnWrittenSize(s.onWritten)
	showAcceptHandoff(engine)
	if err := engine.Start(); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("bare server: start: %w", err)
	}
	s.engine, s.url = engine, "ws://"+addr+path
	return s, nil
}

// URL is the ws:// address clients dial.
func (s *BareServer) URL() string { return s.url }

// Online is the number of open connections.
func (s *BareServer) Online() int { return s.engine.Online() }

// Shutdown closes the listener and every connection. Later calls return
// the first call's result.
func (s *BareServer) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		if err := s.engine.Shutdown(ctx); err != nil {
			s.err = fmt.Errorf("bare server: shutdown: %w", err)
		}
	})
	return s.err
}
