package mosquittotest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// ClientOptions tune Connect.
type ClientOptions struct {
	ClientID           string
	Username, Password string
	TLS                *tls.Config // for an mqtts:// URL
	// Subscribe lists filters subscribed at QoS 1 before Connect returns.
	Subscribe []string
}

// Received is one message a Client got.
type Received struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
}

// Client is a plain MQTT 5 client (paho) for the other side of a test: it
// publishes, and collects what its subscriptions deliver.
type Client struct {
	c    *paho.Client
	msgs chan Received
}

// Connect connects a client to url (mqtt:// or mqtts://) and disconnects it
// when the test ends.
func Connect(tb testing.TB, rawURL string, o ClientOptions) *Client {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conn net.Conn
	if u.Scheme == "mqtts" {
		d := tls.Dialer{Config: o.TLS}
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", u.Host)
	}
	if err != nil {
		tb.Fatalf("mosquittotest: dial %s: %v", rawURL, err)
	}
	cl := &Client{msgs: make(chan Received, 10000)}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			cl.msgs <- Received{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain}
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: o.ClientID, CleanStart: true, KeepAlive: 30}
	if o.Username != "" {
		cp.UsernameFlag, cp.Username = true, o.Username
		cp.PasswordFlag, cp.Password = true, []byte(o.Password)
	}
	ca, err := cl.c.Connect(ctx, cp)
	if err != nil {
		tb.Fatalf("mosquittotest: connect to %s: %v (connack %+v)", rawURL, err, ca)
	}
	tb.Cleanup(func() { _ = cl.c.Disconnect(&paho.Disconnect{ReasonCode: 0}) })
	for _, f := range o.Subscribe {
		sa, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: f, QoS: 1}}})
		if err != nil {
			tb.Fatalf("mosquittotest: subscribe %q: %v", f, err)
		}
		if len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
			tb.Fatalf("mosquittotest: subscribe %q refused: %v", f, sa.Reasons)
		}
	}
	return cl
}

// Publish publishes one message and, at QoS 1, waits for its PUBACK.
func (c *Client) Publish(tb testing.TB, topic string, payload []byte, qos byte) {
	tb.Helper()
	if err := c.TryPublish(topic, payload, qos); err != nil {
		tb.Fatal(err)
	}
}

// TryPublish is Publish returning its error.
func (c *Client) TryPublish(topic string, payload []byte, qos byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos})
	if err != nil {
		return fmt.Errorf("mosquittotest: publish to %q: %w", topic, err)
	}
	if r != nil && r.ReasonCode >= 0x80 {
		return fmt.Errorf("mosquittotest: publish to %q refused: reason code 0x%02X", topic, r.ReasonCode)
	}
	return nil
}

// Next returns the next message the client's subscriptions delivered,
// failing the test when none comes within d.
func (c *Client) Next(tb testing.TB, d time.Duration) Received {
	tb.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(d):
		tb.Fatalf("mosquittotest: no message within %s", d)
		return Received{}
	}
}
