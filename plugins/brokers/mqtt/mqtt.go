// Package mqtt is the brokers.mqtt built-in plugin: it publishes each
// message of a batch to an MQTT server (MQTT 5, through paho's autopaho), in
// order, on a topic made from the message's subject, and returns only when
// the server has acknowledged every QoS 1 message.
package mqtt

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/switchyard/switchyard/plugins/internal/mqtt/conn"
	"github.com/switchyard/switchyard/plugins/internal/mqtt/topic"
	"github.com/switchyard/switchyard/sdk/plugin"
)

// Use is the plugin's ID.
const Use = "brokers.mqtt"

// Sample is sample.yaml: a plugins.yaml entry using the plugin.
//
//go:embed sample.yaml
var Sample string

func init() {
	plugin.Register(plugin.Info{ID: Use, New: func() any { return new(Broker) }})
}

var (
	_ plugin.Broker       = (*Broker)(nil)
	_ plugin.Provisioner  = (*Broker)(nil)
	_ plugin.Validator    = (*Broker)(nil)
	_ plugin.CleanerUpper = (*Broker)(nil)
)

// DefaultTimeout bounds one Publish call that has no earlier deadline.
const DefaultTimeout = 10 * time.Second

// Broker is the plugin; its exported fields are its configuration.
type Broker struct {
	conn.Options
	Topic       string        `json:"topic"`
	StripPrefix string        `json:"strip_prefix"`
	TopicPrefix string        `json:"topic_prefix"`
	QoS         int           `json:"qos"`
	Retain      bool          `json:"retain"`
	Timeout     conn.Duration `json:"timeout"`

	link    *conn.Link
	tmpl    []part
	timeout time.Duration
	log     *slog.Logger

	mu      sync.Mutex
	cm      *autopaho.ConnectionManager
	stop    context.CancelFunc
	lastErr error         // the last connect error, reworded
	refused chan struct{} // closed and replaced when a connect attempt is refused for good
}

// part is a piece of the topic template: literal text, or a placeholder.
type part struct {
	lit   string
	field string // "path", "subject", "tenant" or a token number "1", "2", …
}

// New decodes raw strictly and provisions and validates the result: what
// the runtime does before Publish.
func New(raw []byte) (*Broker, error) {
	b := new(Broker)
	if err := plugin.DecodeConfig(raw, b); err != nil {
		return nil, err
	}
	if err := b.Provision(context.Background()); err != nil {
		_ = b.Cleanup()
		return nil, err
	}
	if err := b.Validate(); err != nil {
		_ = b.Cleanup()
		return nil, err
	}
	return b, nil
}

// Provision checks the connection keys, fills in defaults, loads the TLS
// files and parses the topic template. It does not connect: the first
// Publish does.
func (b *Broker) Provision(ctx context.Context) error {
	link, err := b.Options.Prepare()
	if err != nil {
		return err
	}
	b.link = link
	b.timeout = time.Duration(b.Timeout)
	if b.timeout == 0 {
		b.timeout = DefaultTimeout
	}
	t := b.Topic
	if t == "" {
		t = "{path}"
	}
	if b.tmpl, err = parseTemplate(t); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	b.refused = make(chan struct{})
	b.log = plugin.Logger(ctx).With("plugin", Use, "server", link.URL.String(), "client_id", link.ClientID)
	return nil
}

func parseTemplate(s string) ([]part, error) {
	var parts []part
	for s != "" {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			parts = append(parts, part{lit: s})
			break
		}
		if s[i] == '}' {
			return nil, fmt.Errorf("'}' without '{' in %q", s)
		}
		if i > 0 {
			parts = append(parts, part{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("'{' without '}' in %q", s)
		}
		f := s[i+1 : i+j]
		switch n, err := strconv.Atoi(f); {
		case f == "path" || f == "subject" || f == "tenant":
		case err == nil && n >= 1 && n <= 64 && strconv.Itoa(n) == f:
		default:
			return nil, fmt.Errorf("unknown placeholder {%s} (want {path}, {subject}, {tenant} or a token number {1} … {64})", f)
		}
		parts = append(parts, part{field: f})
		s = s[i+j+1:]
	}
	return parts, nil
}

// Validate checks qos, the prefixes, and the template's literal text.
func (b *Broker) Validate() error {
	var errs []error
	if b.QoS != 0 && b.QoS != 1 {
		errs = append(errs, fmt.Errorf("qos: want 0 or 1, got %d", b.QoS))
	}
	if b.StripPrefix != "" {
		if err := topic.ValidPrefix(b.StripPrefix); err != nil {
			errs = append(errs, fmt.Errorf("strip_prefix: %w", err))
		}
	}
	if b.TopicPrefix != "" {
		if err := topic.ValidName(b.TopicPrefix); err != nil {
			errs = append(errs, fmt.Errorf("topic_prefix: %w", err))
		}
	}
	for _, p := range b.tmpl {
		if p.lit != "" && strings.ContainsAny(p.lit, "+#\x00") {
			errs = append(errs, fmt.Errorf("topic: %q: wildcards '+' and '#' cannot be published to", b.Topic))
			break
		}
	}
	return errors.Join(errs...)
}

// TopicOf returns the topic m is published to: topic_prefix, '/' and the
// template rendered over m's subject (just topic_prefix when the template
// renders empty).
func (b *Broker) TopicOf(m plugin.Message) (string, error) {
	rest := m.Subject
	if b.StripPrefix != "" {
		if rest == b.StripPrefix {
			rest = ""
		} else if r, ok := strings.CutPrefix(rest, b.StripPrefix+"."); ok {
			rest = r
		}
	}
	var tokens []string
	if rest != "" {
		tokens = strings.Split(rest, ".")
	}
	var sb strings.Builder
	for _, p := range b.tmpl {
		switch p.field {
		case "":
			sb.WriteString(p.lit)
		case "path":
			sb.WriteString(topic.Topic(rest))
		case "subject":
			sb.WriteString(m.Subject)
		case "tenant":
			sb.WriteString(m.Tenant)
		default:
			n, _ := strconv.Atoi(p.field)
			if n > len(tokens) {
				return "", fmt.Errorf("subject %q: topic template %q wants token {%d}, the subject has %d after strip_prefix", m.Subject, b.Topic, n, len(tokens))
			}
			sb.WriteString(topic.Level(tokens[n-1]))
		}
	}
	t := sb.String()
	switch {
	case b.TopicPrefix != "" && t != "":
		t = b.TopicPrefix + "/" + t
	case b.TopicPrefix != "":
		t = b.TopicPrefix
	}
	if err := topic.ValidName(t); err != nil {
		return "", fmt.Errorf("subject %q: %w", m.Subject, err)
	}
	return t, nil
}

// connection returns the connection manager, starting it on first use.
func (b *Broker) connection() (*autopaho.ConnectionManager, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cm != nil {
		return b.cm, nil
	}
	if b.link == nil {
		return nil, fmt.Errorf("%s: Publish before Provision", Use)
	}
	cfg := b.link.ClientConfig()
	// A publisher needs no session: Publish fails when the connection drops
	// before an acknowledgement, and the runtime sends the batch again.
	cfg.CleanStartOnInitialConnection = true
	cfg.SessionExpiryInterval = 0
	cfg.OnConnectionUp = func(*autopaho.ConnectionManager, *paho.Connack) { b.log.Info("mqtt connected") }
	cfg.OnConnectionDown = func() bool { b.log.Warn("mqtt connection lost; reconnecting"); return true }
	cfg.OnConnectError = func(err error) {
		err, permanent := b.link.ConnectError(err)
		b.mu.Lock()
		b.lastErr = err
		if permanent {
			close(b.refused)
			b.refused = make(chan struct{})
		}
		b.mu.Unlock()
		b.log.Warn("mqtt connect failed; retrying", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("%s: %w", Use, err)
	}
	b.cm, b.stop = cm, cancel
	return cm, nil
}

// Publish publishes batch in order, one message in flight at a time, and
// returns when the server has acknowledged every QoS 1 message. It waits for
// the connection (reconnecting with backoff) until ctx ends or timeout
// passes; a message whose acknowledgement the connection lost is sent again
// on the next connection within the same bounds.
func (b *Broker) Publish(ctx context.Context, batch []plugin.Message) error {
	cm, err := b.connection()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	for i, m := range batch {
		t, err := b.TopicOf(m)
		if err != nil {
			return fmt.Errorf("%s: %s: message %d of %d: %w", Use, b.link.URL, i+1, len(batch), err)
		}
		p := &paho.Publish{Topic: t, QoS: byte(b.QoS), Retain: b.Retain, Payload: m.Payload}
		for attempt := 1; ; attempt++ {
			err = b.awaitConnection(ctx, cm)
			if err == nil {
				var r *paho.PublishResponse
				r, err = cm.Publish(ctx, p)
				if err == nil && r != nil && r.ReasonCode >= 0x80 {
					return fmt.Errorf("%s: %s: publish to %q: refused by the server: %s (reason code 0x%02X)",
						Use, b.link.URL, t, conn.ReasonText(r.ReasonCode), r.ReasonCode)
				}
				if err == nil {
					break
				}
			}
			if ctx.Err() != nil || b.isRefused(err) {
				return fmt.Errorf("%s: %s: publish to %q (message %d of %d): %w", Use, b.link.URL, t, i+1, len(batch), err)
			}
			b.log.Debug("mqtt publish failed; retrying", "topic", t, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(b.link.Backoff(attempt)):
			}
		}
	}
	return nil
}

// errRefused marks a connect refusal that retrying cannot fix.
type errRefused struct{ error }

func (e errRefused) Unwrap() error { return e.error }

func (b *Broker) isRefused(err error) bool {
	var r errRefused
	return errors.As(err, &r)
}

// awaitConnection waits until the connection is up, ctx ends, or the server
// refuses a connect attempt for good.
func (b *Broker) awaitConnection(ctx context.Context, cm *autopaho.ConnectionManager) error {
	b.mu.Lock()
	refused := b.refused
	b.mu.Unlock()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-refused:
			cancel()
		case <-wctx.Done():
		}
	}()
	if err := cm.AwaitConnection(wctx); err != nil {
		b.mu.Lock()
		last := b.lastErr
		b.mu.Unlock()
		select {
		case <-refused:
			return errRefused{last}
		default:
		}
		if last != nil {
			return fmt.Errorf("not connected (%w); last connect error: %w", err, last)
		}
		return fmt.Errorf("not connected: %w", err)
	}
	return nil
}

// Cleanup disconnects.
func (b *Broker) Cleanup() error {
	b.mu.Lock()
	cm, stop := b.cm, b.stop
	b.cm, b.stop = nil, nil
	b.mu.Unlock()
	if cm == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := cm.Disconnect(ctx)
	stop()
	if err != nil {
		return fmt.Errorf("%s: %s: disconnect: %w", Use, b.link.URL, err)
	}
	return nil
}
