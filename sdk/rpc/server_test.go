package rpc_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/sdk/plugin"
	"github.com/switchyard/switchyard/sdk/rpc"
	"github.com/switchyard/switchyard/sdk/rpc/pluginv1"
)

type upper struct {
	Suffix string `json:"suffix"`
}

func (u *upper) Transform(_ context.Context, m plugin.Message, out plugin.Emitter) error {
	if string(m.Payload) == "fail" {
		return context.DeadlineExceeded
	}
	m.Payload = []byte(strings.ToUpper(string(m.Payload)) + u.Suffix)
	return out.Emit(m)
}

func init() {
	plugin.Register(plugin.Info{ID: "transforms.rpc-test-upper", New: func() any { return new(upper) }})
}

func TestServerConfigureAndTransform(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		id, config string
		code       codes.Code
		msg        string
	}{
		{"transforms.rpc-test-upper", `{"bogus":1}`, codes.InvalidArgument, `config: unknown field "bogus"`},
		{"transforms.missing", `{}`, codes.NotFound, "transforms.missing is not served by this binary (it serves: transforms.rpc-test-upper)"},
		{"nope", `{}`, codes.InvalidArgument, `plugin id "nope": want kind.name, such as transforms.scale`},
	}
	for _, tt := range tests {
		s := rpc.NewServer()
		_, err := s.Configure(ctx, &pluginv1.ConfigureRequest{PluginId: tt.id, ConfigJson: []byte(tt.config)})
		if st := status.Convert(err); st.Code() != tt.code || st.Message() != tt.msg {
			t.Errorf("%s %s: %v, want %v %q", tt.id, tt.config, err, tt.code, tt.msg)
		}
	}
	s := rpc.NewServer("transforms.rpc-test-upper")
	if _, err := s.Transform(ctx, &pluginv1.MessageBatch{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("transform before configure: %v", err)
	}
	if _, err := s.Configure(ctx, &pluginv1.ConfigureRequest{PluginId: "transforms.rpc-test-upper", Tenant: "acme", ConfigJson: []byte(`{"suffix":"!"}`)}); err != nil {
		t.Fatal(err)
	}
	when := time.Unix(1, 2)
	in := []plugin.Message{{Subject: "a", Time: when, Meta: map[string]string{"k": "v"}, Payload: []byte("x")}, {Payload: []byte("fail")}}
	resp, err := s.Transform(ctx, rpc.ToProtoBatch(in))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetResults()
	if len(r) != 2 || r[1].GetError() == "" || len(r[0].GetMessages()) != 1 {
		t.Fatalf("results %v", r)
	}
	got := rpc.FromProto(r[0].GetMessages()[0])
	if string(got.Payload) != "X!" || !got.Time.Equal(when) || got.Meta["k"] != "v" || got.Subject != "a" {
		t.Errorf("got %+v", got)
	}
	if _, err := s.Configure(ctx, &pluginv1.ConfigureRequest{PluginId: "transforms.rpc-test-upper"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second configure: %v", err)
	}
}
