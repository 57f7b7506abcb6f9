// Package rpc is the subprocess side of Switchyard's plugin contract: it
// serves the Go plugins registered with sdk/plugin in a binary over
// hashicorp/go-plugin's gRPC transport (protocol switchyard.plugin.v1,
// generated in pluginv1), so that the same plugin code runs in the relay
// (runtime: builtin) or in a process of its own (runtime: process).
//
// A plugin binary's main is
//
//	func main() { rpc.Serve() }
//
// with the plugin packages imported for their init. The relay starts the
// binary, checks it against the sha256 of its configuration first, and says
// in Configure which plugin to make; README.md in this folder is the
// protocol for authors of plugins in other languages.
//
// The package also holds what both ends share: the handshake, the go-plugin
// plugin set and the conversions of Message. It never imports the runtime.
package rpc

import (
	"context"
	"os"
	"time"

	"log/slog"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/switchyard/switchyard/sdk/plugin"
	"github.com/switchyard/switchyard/sdk/rpc/pluginv1"
)

// The handshake between the relay and a plugin process. A change of the
// protocol that old plugins cannot serve is a new ProtocolVersion (and a
// pluginv2 package); the cookie only tells a binary started by hand that it
// is a plugin.
const (
	ProtocolVersion  = 1
	MagicCookieKey   = "SWITCHYARD_PLUGIN"
	MagicCookieValue = "switchyard-plugin-v1-4f7d0c2a9e"
	// PluginName is the name of the one plugin in go-plugin's plugin set.
	PluginName = "switchyard"
)

// Handshake is go-plugin's handshake configuration for both ends.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   MagicCookieKey,
	MagicCookieValue: MagicCookieValue,
}

// GRPCPlugin adapts the protocol to go-plugin: on the plugin's side it
// registers a server, on the host's side it dispenses a
// pluginv1.PluginClient.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	// Impl is what the plugin's side serves; nil on the host's side.
	Impl pluginv1.PluginServer
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers p.Impl.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, p.Impl)
	return nil
}

// GRPCClient returns a pluginv1.PluginClient on c.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginClient(c), nil
}

// Serve serves every plugin registered in this binary until the relay stops
// the process; Configure chooses one. It does not return. Run by hand, it
// prints that the binary is a plugin and exits with status 1.
func Serve() { serve(nil) }

// ServeOnly is Serve restricted to the plugins ids: Configure refuses any
// other with NOT_FOUND.
func ServeOnly(ids ...plugin.ID) { serve(ids) }

func serve(only []plugin.ID) {
	// The plugin's own logs (slog's default) go to the real stderr as JSON,
	// which the relay turns into its own log records.
	slog.SetDefault(slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         goplugin.PluginSet{PluginName: &GRPCPlugin{Impl: NewServer(only...)}},
		GRPCServer:      goplugin.DefaultGRPCServer,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "go-plugin", Level: hclog.Warn, Output: os.Stderr, JSONFormat: true,
		}),
	})
}

// ToProto converts m for the wire.
func ToProto(m plugin.Message) *pluginv1.Message {
	p := &pluginv1.Message{Tenant: m.Tenant, Source: m.Source, Subject: m.Subject, Meta: m.Meta, Payload: m.Payload}
	if !m.Time.IsZero() {
		p.TimeUnixNano = m.Time.UnixNano()
	}
	return p
}

// FromProto converts a message from the wire; a zero time stays zero.
func FromProto(p *pluginv1.Message) plugin.Message {
	m := plugin.Message{Tenant: p.GetTenant(), Source: p.GetSource(), Subject: p.GetSubject(), Meta: p.GetMeta(), Payload: p.GetPayload()}
	if ns := p.GetTimeUnixNano(); ns != 0 {
		m.Time = time.Unix(0, ns)
	}
	return m
}

// ToProtoBatch converts a batch for the wire.
func ToProtoBatch(ms []plugin.Message) *pluginv1.MessageBatch {
	b := &pluginv1.MessageBatch{Messages: make([]*pluginv1.Message, len(ms))}
	for i, m := range ms {
		b.Messages[i] = ToProto(m)
	}
	return b
}

// FromProtoBatch converts a batch from the wire.
func FromProtoBatch(b *pluginv1.MessageBatch) []plugin.Message {
	ms := make([]plugin.Message, len(b.GetMessages()))
	for i, p := range b.GetMessages() {
		ms[i] = FromProto(p)
	}
	return ms
}
