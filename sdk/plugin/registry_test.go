package plugin

import (
	"context"
	"strings"
	"testing"
)

type testCollector struct{}

func (*testCollector) Collect(ctx context.Context, out Emitter) error {
	<-ctx.Done()
	return nil
}

type testTransform struct{}

func (*testTransform) Transform(_ context.Context, in Message, out Emitter) error {
	return out.Emit(in)
}

type testBroker struct{}

func (*testBroker) Publish(context.Context, []Message) error { return nil }

var (
	_ Collector = (*testCollector)(nil)
	_ Transform = (*testTransform)(nil)
	_ Broker    = (*testBroker)(nil)
)

func TestRegisterLookupList(t *testing.T) {
	infos := []Info{
		{ID: "transforms.registry-test", New: func() any { return new(testTransform) }},
		{ID: "brokers.registry-test", New: func() any { return new(testBroker) }},
		{ID: "collectors.registry-test", New: func() any { return new(testCollector) }},
	}
	for _, info := range infos {
		Register(info)
	}
	for _, info := range infos {
		got, ok := Lookup(info.ID)
		if !ok || got.ID != info.ID {
			t.Fatalf("Lookup(%q) = %v, %v", info.ID, got.ID, ok)
		}
		if err := checkKind(info.ID.Kind(), got.New()); err != nil {
			t.Errorf("Lookup(%q).New(): %v", info.ID, err)
		}
	}
	if _, ok := Lookup("transforms.not-registered"); ok {
		t.Error("Lookup of an unregistered ID reported true")
	}
	var ids []string
	for _, info := range List() {
		if strings.HasSuffix(info.ID.Name(), "registry-test") {
			ids = append(ids, string(info.ID))
		}
	}
	want := "brokers.registry-test collectors.registry-test transforms.registry-test"
	if got := strings.Join(ids, " "); got != want {
		t.Errorf("List() = %s, want %s (sorted)", got, want)
	}
}

func TestRegisterPanics(t *testing.T) {
	Register(Info{ID: "transforms.dup-test", New: func() any { return new(testTransform) }})
	tests := []struct {
		name string
		info Info
		want string
	}{
		{"bad id", Info{ID: "transform.x", New: func() any { return new(testTransform) }}, `unknown kind "transform"`},
		{"nil new", Info{ID: "transforms.nil-new"}, "New is nil"},
		{"wrong kind", Info{ID: "collectors.wrong-kind", New: func() any { return new(testTransform) }}, "does not implement plugin.Collector"},
		{"not a pointer", Info{ID: "brokers.value", New: func() any { return testBroker{} }}, "does not implement plugin.Broker"},
		{"duplicate", Info{ID: "transforms.dup-test", New: func() any { return new(testTransform) }}, "already registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				msg, _ := r.(string)
				if !strings.Contains(msg, tt.want) || !strings.HasPrefix(msg, "plugin: register") {
					t.Errorf("Register panicked with %v, want a message containing %q", r, tt.want)
				}
			}()
			Register(tt.info)
		})
	}
	if _, ok := Lookup("collectors.wrong-kind"); ok {
		t.Error("a refused plugin was registered")
	}
}

func TestEmitFunc(t *testing.T) {
	var got []Message
	out := EmitFunc(func(m Message) error { got = append(got, m); return nil })
	in := Message{Tenant: "t", Subject: "a.b", Payload: []byte("x")}
	if err := new(testTransform).Transform(context.Background(), in, out); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Subject != "a.b" || string(got[0].Payload) != "x" {
		t.Errorf("emitted %+v, want the input once", got)
	}
}
