// Package mqtt is the collectors.mqtt built-in plugin: it subscribes to topic
// filters on an MQTT server (MQTT 5, through paho's autopaho) and emits each
// message it receives as a Switchyard message whose subject is the topic
// under subject_prefix (see package topic for the reversible mapping).
//
// Delivery is at least once for QoS 1: a message is acknowledged to the
// server only after Emit accepted it, with a persistent session (clean_start
// false, the default) so that what arrives while the collector is away or
// the server restarts waits for it. It never acknowledges a message Emit
// refused: it drops that connection and reconnects after a backoff, and the
// server delivers the unacknowledged messages again.
package mqtt

import (
	"context"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/switchyard/switchyard/plugins/internal/mqtt/conn"
	"github.com/switchyard/switchyard/plugins/internal/mqtt/topic"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's ID.
const Use = "collectors.mqtt"

// Sample is sample.yaml: a plugins.yaml entry using the plugin.
//
//go:embed sample.yaml
var Sample string

func init() {
	plugin.Register(plugin.Info{ID: Use, New: func() any { return new(Collector) }})
}

var (
	_ plugin.Collector    = (*Collector)(nil)
	_ plugin.Provisioner  = (*Collector)(nil)
	_ plugin.Validator    = (*Collector)(nil)
	_ plugin.CleanerUpper = (*Collector)(nil)
)

// DefaultSessionExpiry is how long the server keeps the session of a
// disconnected collector (its subscriptions and queued QoS 1 messages).
const DefaultSessionExpiry = time.Hour

// ackInterval is how often paho sends the acknowledgements Collect released.
const ackInterval = 10 * time.Millisecond

// Subscription is one topic filter and the QoS it is subscribed with.
type Subscription struct {
	Topic string `json:"topic"`
	QoS   int    `json:"qos"`
}

// Collector is the plugin; its exported fields are its configuration.
type Collector struct {
	conn.Options
	CleanStart    bool           `json:"clean_start"`
	SessionExpiry *conn.Duration `json:"session_expiry"`
	Subscriptions []Subscription `json:"subscriptions"`
	SubjectPrefix string         `json:"subject_prefix"`

	link   *conn.Link
	expiry time.Duration
	log    *slog.Logger
	// ready, when set (by tests), is called each time the subscriptions are
	// in place on a new connection.
	ready func()
}

// New decodes raw strictly and provisions and validates the result: what
// the runtime does before Collect.
func New(raw []byte) (*Collector, error) {
	c := new(Collector)
	if err := plugin.DecodeConfig(raw, c); err != nil {
		return nil, err
	}
	if err := c.Provision(context.Background()); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Provision checks the connection keys, fills in defaults and loads the TLS files.
func (c *Collector) Provision(ctx context.Context) error {
	if !c.CleanStart && c.ClientID == "" {
		return errors.New("client_id: is required for a persistent session (clean_start false); the server keeps the session under this id")
	}
	link, err := c.Options.Prepare()
	if err != nil {
		return err
	}
	c.link = link
	c.expiry = DefaultSessionExpiry
	if c.SessionExpiry != nil {
		c.expiry = time.Duration(*c.SessionExpiry)
	}
	c.log = plugin.Logger(ctx).With("plugin", Use, "server", link.URL.String(), "client_id", link.ClientID)
	return nil
}

// Validate checks the subscriptions, the subject prefix and the session expiry.
func (c *Collector) Validate() error {
	var errs []error
	if err := topic.ValidPrefix(c.SubjectPrefix); err != nil {
		errs = append(errs, fmt.Errorf("subject_prefix: %w", err))
	}
	if len(c.Subscriptions) == 0 {
		errs = append(errs, errors.New(`subscriptions: want at least one, such as {topic: "home/#", qos: 1}`))
	}
	for i, s := range c.Subscriptions {
		if err := topic.ValidFilter(s.Topic); err != nil {
			errs = append(errs, fmt.Errorf("subscriptions[%d].topic: %w", i, err))
		}
		if s.QoS != 0 && s.QoS != 1 {
			errs = append(errs, fmt.Errorf("subscriptions[%d].qos: want 0 or 1, got %d", i, s.QoS))
		}
	}
	if c.expiry > time.Duration(^uint32(0))*time.Second {
		errs = append(errs, errors.New("session_expiry: at most 136 years (2^32-1 s)"))
	}
	return errors.Join(errs...)
}

// Cleanup releases nothing: Collect closes its connection when it returns.
func (c *Collector) Cleanup() error { return nil }

// session is the state of one Collect call that the paho callbacks share.
type session struct {
	c     *Collector
	ctx   context.Context
	out   plugin.Emitter
	fatal chan error

	mu       sync.Mutex
	netConn  net.Conn     // the current connection
	refused  *paho.Client // the connection on which Emit refused a message
	failures int          // refusals in a row, for the backoff
}

// Collect connects, subscribes, and emits what arrives until ctx ends; then
// it disconnects cleanly and returns nil. It returns an error when retrying
// cannot help: the server refused the credentials, the client id or a
// subscription, or its certificate does not verify.
func (c *Collector) Collect(ctx context.Context, out plugin.Emitter) error {
	if c.link == nil {
		return fmt.Errorf("%s: Collect before Provision", Use)
	}
	s := &session{c: c, ctx: ctx, out: out, fatal: make(chan error, 1)}
	cfg := c.link.ClientConfig()
	cfg.CleanStartOnInitialConnection = c.CleanStart
	cfg.SessionExpiryInterval = uint32(c.expiry / time.Second)
	cfg.AttemptConnection = func(ctx context.Context, _ autopaho.ClientConfig, _ *url.URL) (net.Conn, error) {
		nc, err := c.link.Dial(ctx)
		if err == nil {
			s.mu.Lock()
			s.netConn = nc
			s.mu.Unlock()
		}
		return nc, err
	}
	cfg.OnConnectionUp = func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
		c.log.Info("mqtt connected", "session_present", ca.SessionPresent)
		go s.subscribe(cm)
	}
	cfg.OnConnectionDown = func() bool {
		c.log.Warn("mqtt connection lost; reconnecting")
		return true
	}
	cfg.OnConnectError = func(err error) {
		err, permanent := c.link.ConnectError(err)
		if permanent {
			s.stop(err)
			return
		}
		c.log.Warn("mqtt connect failed; retrying", "err", err)
	}
	cfg.EnableManualAcknowledgment = true
	cfg.SendAcksInterval = ackInterval
	cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){s.receive}

	// The connection lives on its own context so that the end of ctx can
	// first let the released acknowledgements go out, then disconnect.
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	cm, err := autopaho.NewConnection(connCtx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", Use, err)
	}
	select {
	case <-ctx.Done():
	case err = <-s.fatal:
	}
	time.Sleep(3 * ackInterval) // paho sends released acknowledgements every ackInterval
	dctx, dcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer dcancel()
	if derr := cm.Disconnect(dctx); derr != nil {
		c.log.Warn("mqtt disconnect", "err", derr)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", Use, err)
	}
	c.log.Info("mqtt disconnected")
	return nil
}

// stop ends Collect with err (the first one wins).
func (s *session) stop(err error) {
	select {
	case s.fatal <- err:
	default:
	}
}

// subscribe subscribes to every filter on a new connection; with a session
// the server kept, it is a no-op for the server, and retained messages are
// only sent for subscriptions that are new.
func (s *session) subscribe(cm *autopaho.ConnectionManager) {
	sub := &paho.Subscribe{}
	for _, f := range s.c.Subscriptions {
		sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f.Topic, QoS: byte(f.QoS), RetainHandling: 1})
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.c.link.ConnectTimeout)
	defer cancel()
	sa, err := cm.Subscribe(ctx, sub)
	if err != nil {
		// The connection dropped (the next one subscribes again) or Collect is ending.
		s.c.log.Warn("mqtt subscribe failed; retrying on the next connection", "err", err)
		return
	}
	for i, code := range sa.Reasons {
		if code >= 0x80 && i < len(s.c.Subscriptions) {
			s.stop(fmt.Errorf("%s: subscribe %q: refused by the server: %s (reason code 0x%02X)",
				s.c.link.URL, s.c.Subscriptions[i].Topic, conn.ReasonText(code), code))
			return
		}
	}
	s.c.log.Info("mqtt subscribed", "filters", len(sub.Subscriptions))
	if s.c.ready != nil {
		s.c.ready()
	}
}

// receive handles one PUBLISH; paho calls it for one connection at a time,
// in the order the server sent them.
func (s *session) receive(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	s.mu.Lock()
	refused := s.refused == pr.Client
	s.mu.Unlock()
	if refused || s.ctx.Err() != nil {
		// Not acknowledged: the server sends it again on the next connection.
		return true, nil
	}
	m := plugin.Message{
		Subject: topic.Subject(s.c.SubjectPrefix, p.Topic),
		Time:    time.Now(),
		Meta:    map[string]string{"mqtt_topic": p.Topic, "mqtt_qos": strconv.Itoa(int(p.QoS))},
		Payload: Payload(p.Payload),
	}
	if p.Retain {
		m.Meta["mqtt_retain"] = "true"
	}
	if err := s.out.Emit(m); err != nil {
		if p.QoS == 0 {
			s.c.log.Debug("mqtt QoS 0 message not accepted; dropped", "topic", p.Topic, "err", err)
			return true, nil
		}
		s.refuse(pr.Client, p.Topic, err)
		return true, nil
	}
	s.mu.Lock()
	s.failures = 0
	s.mu.Unlock()
	if p.QoS > 0 {
		if err := pr.Client.Ack(p); err != nil {
			s.c.log.Debug("mqtt ack", "topic", p.Topic, "err", err)
		}
	}
	return true, nil
}

// refuse leaves a QoS 1 message Emit refused unacknowledged: after a backoff
// it drops the connection (every later message of it stays unacknowledged
// too, keeping their order), and the server delivers them again on the next
// connection.
func (s *session) refuse(cl *paho.Client, t string, err error) {
	s.mu.Lock()
	s.refused = cl
	s.failures++
	n := s.failures
	nc := s.netConn
	s.mu.Unlock()
	wait := s.c.link.Backoff(n)
	s.c.log.Warn("mqtt message not accepted; reconnecting for redelivery", "topic", t, "err", err, "retry_in", wait)
	// Wait first, so that paho sends the acknowledgements of the messages
	// before this one; the connection receives nothing meanwhile, and paho
	// reconnects only after this handler returns.
	select {
	case <-s.ctx.Done():
	case <-time.After(wait):
	}
	if nc != nil {
		_ = nc.Close()
	}
}

// Payload turns an MQTT payload into a message payload: JSON passes
// unchanged; other UTF-8 text becomes {"text": "…"}; bytes that are not
// UTF-8 become {"base64": "…"} (standard encoding, with padding). An empty
// payload is {"text": ""}.
func Payload(b []byte) []byte {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	var v any
	if utf8.Valid(b) {
		v = struct {
			Text string `json:"text"`
		}{string(b)}
	} else {
		v = struct {
			Base64 string `json:"base64"`
		}{base64.StdEncoding.EncodeToString(b)}
	}
	out, _ := json.Marshal(v)
	return out
}
