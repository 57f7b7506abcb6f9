package rpc

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/sdk/plugin"
	"github.com/switchyard/switchyard/sdk/rpc/pluginv1"
)

// Bounds of the batches a collector's stream sends.
const (
	collectQueue = 256 // messages emitted and not yet sent
	collectBatch = 100 // messages per MessageBatch at most
)

// Server serves one plugin instance of the plugins registered in this binary
// over pluginv1: the first Configure makes it.
type Server struct {
	pluginv1.UnimplementedPluginServer

	only []plugin.ID // nil: any registered plugin

	mu   sync.Mutex
	inst *instance
}

var _ pluginv1.PluginServer = (*Server)(nil)

type instance struct {
	id           plugin.ID
	tenant, name string
	value        any
}

// NewServer returns a Server of the registered plugins ids, or of every
// registered plugin when ids is empty. Serve runs one; tests may run one on a
// grpc.Server of their own.
func NewServer(ids ...plugin.ID) *Server { return &Server{only: ids} }

// guard runs fn, turning a panic into an error.
func guard(id plugin.ID, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v\n%s", id, p, debug.Stack())
		}
	}()
	return fn()
}

func (s *Server) current() (*instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst == nil {
		return nil, status.Error(codes.FailedPrecondition, "not configured: call Configure first")
	}
	return s.inst, nil
}

// Configure makes the instance: new, strict config, Provision, Validate.
func (s *Server) Configure(ctx context.Context, req *pluginv1.ConfigureRequest) (*pluginv1.ConfigureResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "already configured as %s %q", s.inst.id, s.inst.name)
	}
	id, err := plugin.ParseID(req.GetPluginId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	info, ok := plugin.Lookup(id)
	if ok && s.only != nil && !slices.Contains(s.only, id) {
		ok = false
	}
	if !ok {
		var known []string
		for _, i := range plugin.List() {
			if s.only == nil || slices.Contains(s.only, i.ID) {
				known = append(known, string(i.ID))
			}
		}
		return nil, status.Errorf(codes.NotFound, "%s is not served by this binary (it serves: %s)", id, strings.Join(known, ", "))
	}
	in := &instance{id: id, tenant: req.GetTenant(), name: req.GetInstance(), value: info.New()}
	cfg := req.GetConfigJson()
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	var code codes.Code
	provisioned := false
	err = guard(id, func() error {
		if err := plugin.DecodeConfig(cfg, in.value); err != nil {
			code = codes.InvalidArgument
			return err
		}
		code = codes.FailedPrecondition
		if p, ok := in.value.(plugin.Provisioner); ok {
			provisioned = true
			if err := p.Provision(ctx); err != nil {
				return fmt.Errorf("provision: %w", err)
			}
		}
		if v, ok := in.value.(plugin.Validator); ok {
			if err := v.Validate(); err != nil {
				return fmt.Errorf("validate: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		if c, ok := in.value.(plugin.CleanerUpper); ok && provisioned {
			_ = guard(id, c.Cleanup)
		}
		if code == codes.OK {
			code = codes.Internal
		}
		return nil, status.Error(code, err.Error())
	}
	s.inst = in
	return &pluginv1.ConfigureResponse{}, nil
}

// Collect runs the collector, sending what it emits in batches.
func (s *Server) Collect(_ *pluginv1.CollectRequest, stream pluginv1.Plugin_CollectServer) error {
	in, err := s.current()
	if err != nil {
		return err
	}
	c, ok := in.value.(plugin.Collector)
	if !ok {
		return status.Errorf(codes.FailedPrecondition, "%s is not a collector", in.id)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()

	queue := make(chan *pluginv1.Message, collectQueue)
	done := make(chan struct{}) // Collect returned: the sender drains and stops
	sent := make(chan error, 1)
	go func() {
		sent <- sendBatches(stream, queue, done)
		cancel() // a failed send stops the collector
	}()
	err = guard(in.id, func() error {
		return c.Collect(ctx, plugin.EmitFunc(func(m plugin.Message) error {
			select {
			case queue <- ToProto(m):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			case <-done:
				return errors.New("collect has returned")
			}
		}))
	})
	close(done)
	sendErr := <-sent
	switch {
	case stream.Context().Err() != nil:
		return nil // the host ended the stream
	case err != nil:
		return status.Error(codes.Unknown, err.Error())
	case sendErr != nil:
		return sendErr
	}
	return nil
}

// sendBatches sends what queue holds, up to collectBatch messages a batch,
// until done is closed and queue is empty.
func sendBatches(stream pluginv1.Plugin_CollectServer, queue <-chan *pluginv1.Message, done <-chan struct{}) error {
	for {
		var first *pluginv1.Message
		select {
		case first = <-queue:
		case <-done:
			select {
			case first = <-queue:
			default:
				return nil
			}
		}
		batch := &pluginv1.MessageBatch{Messages: []*pluginv1.Message{first}}
	fill:
		for len(batch.Messages) < collectBatch {
			select {
			case m := <-queue:
				batch.Messages = append(batch.Messages, m)
			default:
				break fill
			}
		}
		if err := stream.Send(batch); err != nil {
			return err
		}
	}
}

// Transform runs the transform on each message of the batch.
func (s *Server) Transform(ctx context.Context, req *pluginv1.MessageBatch) (*pluginv1.TransformResponse, error) {
	in, err := s.current()
	if err != nil {
		return nil, err
	}
	t, ok := in.value.(plugin.Transform)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not a transform", in.id)
	}
	resp := &pluginv1.TransformResponse{Results: make([]*pluginv1.TransformResult, len(req.GetMessages()))}
	for i, pm := range req.GetMessages() {
		res := &pluginv1.TransformResult{}
		err := guard(in.id, func() error {
			return t.Transform(ctx, FromProto(pm), plugin.EmitFunc(func(o plugin.Message) error {
				res.Messages = append(res.Messages, ToProto(o))
				return nil
			}))
		})
		if err != nil {
			res.Messages, res.Error = nil, err.Error()
			if res.Error == "" {
				res.Error = "transform failed"
			}
		}
		resp.Results[i] = res
	}
	return resp, nil
}

// Publish hands the batch to the broker.
func (s *Server) Publish(ctx context.Context, req *pluginv1.MessageBatch) (*pluginv1.PublishResponse, error) {
	in, err := s.current()
	if err != nil {
		return nil, err
	}
	b, ok := in.value.(plugin.Broker)
	if !ok {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is not a broker", in.id)
	}
	if err := guard(in.id, func() error { return b.Publish(ctx, FromProtoBatch(req)) }); err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return &pluginv1.PublishResponse{}, nil
}

// Close runs the plugin's Cleanup, once.
func (s *Server) Close(context.Context, *pluginv1.CloseRequest) (*pluginv1.CloseResponse, error) {
	s.mu.Lock()
	in := s.inst
	s.inst = nil
	s.mu.Unlock()
	if in == nil {
		return &pluginv1.CloseResponse{}, nil
	}
	if c, ok := in.value.(plugin.CleanerUpper); ok {
		if err := guard(in.id, c.Cleanup); err != nil {
			return nil, status.Error(codes.Unknown, "cleanup: "+err.Error())
		}
	}
	return &pluginv1.CloseResponse{}, nil
}
