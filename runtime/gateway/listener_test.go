package gateway

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/switchyard/switchyard/runtime/config"
)

// TestListenerSettled: a connection's setup counts as finished only once
// the accept loop has come back for the next one.
func TestListenerSettled(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newListener(raw, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = l.Close() })

	client, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	mark := l.mark()
	if l.settled(mark) {
		t.Fatal("settled before the accept loop came back")
	}
	accepted := make(chan error, 1)
	go func() { // the accept loop, back for the next connection
		_, err := l.Accept()
		accepted <- err
	}()
	eventually(t, "settled", func() bool { return l.settled(mark) })

	// stopAccepting releases the port but keeps Accept waiting until Close.
	l.stopAccepting()
	if _, err := net.DialTimeout("tcp", raw.Addr().String(), time.Second); err == nil {
		t.Error("the port still accepts after stopAccepting")
	}
	select {
	case err := <-accepted:
		t.Fatalf("Accept returned %v before Close", err)
	case <-time.After(50 * time.Millisecond):
	}
	_ = l.Close()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
}

// TestSessionsOutliveHandshakeDeadline: the deadline that bounds a
// connection before its upgrade (hello_timeout) never ends a session.
func TestSessionsOutliveHandshakeDeadline(t *testing.T) {
	h := start(t, func(c *config.Gateway) { c.HelloTimeout = 300 * time.Millisecond })
	for i := range 30 {
		tok := "tok-n" + string(rune('a'+i))
		h.auth.add(tok, Identity{Tenant: "t3", Device: "n" + string(rune('a'+i))})
		h.connect(t, tok)
	}
	time.Sleep(700 * time.Millisecond)
	if n := h.g.Connections(); n != 30 {
		t.Fatalf("%d of 30 sessions left after the handshake deadline passed twice", n)
	}
}
