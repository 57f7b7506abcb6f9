//go:build !wasip1

package guesttest_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/sdk/guest"
	"github.com/switchyard/switchyard/sdk/guest/guesttest"
)

// The guest under test. Its transform acts on the input's subject.
var (
	gotConfig string
	kept      *guest.Output
)

func init() {
	guest.Init(func(config []byte) error {
		gotConfig = string(config)
		if gotConfig == `{"refuse":true}` {
			return errors.New("refused")
		}
		return nil
	})
	guest.Transform(func(in guest.Message, out *guest.Output) error {
		switch in.Subject {
		case "count": // counts its calls in the instance's state
			n := 0
			if v, ok := guest.StateGet("n"); ok {
				n, _ = strconv.Atoi(string(v))
			}
			n++
			guest.Log(guest.Debug, "count "+strconv.Itoa(n))
			if err := guest.StateSet("n", []byte(strconv.Itoa(n))); err != nil {
				return err
			}
			return out.Emit("counted", []byte(strconv.Itoa(n)))
		case "keep": // keeps its Output and writes into its input
			kept = out
			in.Payload[0] = 'X'
			return out.Emit("", in.Payload)
		case "fan": // emits twice, then fails when asked to
			if err := out.Emit("a", in.Payload); err != nil {
				return err
			}
			if err := out.Emit("b", in.Payload); err != nil {
				return err
			}
			if string(in.Payload) == "fail" {
				return errors.New("failed after emitting")
			}
			return nil
		case "fetch": // fetches the request in the payload, "METHOD URL BODY"
			parts := strings.SplitN(string(in.Payload), " ", 3)
			req := guest.HTTPRequest{Method: parts[0], URL: parts[1], Header: map[string]string{"X-Test": "t1"}}
			if len(parts) == 3 {
				req.Body = []byte(parts[2])
			}
			resp, err := guest.HTTPFetch(req)
			if err != nil {
				return err
			}
			return out.Emit(strconv.Itoa(resp.Status)+"."+resp.Header["X-Reply"], resp.Body)
		}
		return fmt.Errorf("unexpected subject %q", in.Subject)
	})
	guest.Collect(func(now time.Time, out *guest.Output) error {
		if !guest.Now().Equal(now) {
			return fmt.Errorf("guest.Now() = %v during a collect at %v", guest.Now(), now)
		}
		if err := out.Emit("", nil); !errors.Is(err, guest.ErrBadArgument) {
			return fmt.Errorf("emit with no subject from a collector: %v, want ErrBadArgument", err)
		}
		return out.Emit("tick", now.AppendFormat(nil, time.RFC3339Nano))
	})
}

func TestConfig(t *testing.T) {
	tests := []struct {
		config, want, wantErr string
	}{
		{config: "", want: "{}"},
		{config: `{"a":1}`, want: `{"a":1}`},
		{config: `{"refuse":true}`, wantErr: "refused"},
	}
	for _, tt := range tests {
		i, err := guesttest.New([]byte(tt.config))
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr || i != nil {
				t.Errorf("New(%q) = %v, %v, want error %q", tt.config, i, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(%q): %v", tt.config, err)
		}
		if gotConfig != tt.want {
			t.Errorf("New(%q): Init saw %q, want %q", tt.config, gotConfig, tt.want)
		}
	}
}

func TestStateAndLogsPerInstance(t *testing.T) {
	a, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= 3; want++ {
		out, err := a.Transform(guest.Message{Subject: "count"})
		if err != nil {
			t.Fatal(err)
		}
		if len(out) != 1 || out[0].Subject != "counted" || string(out[0].Payload) != strconv.Itoa(want) {
			t.Fatalf("call %d emitted %+v, want one counted=%d", want, out, want)
		}
	}
	if v, ok := a.State("n"); !ok || string(v) != "3" {
		t.Errorf("State(n) = %q, %v, want 3", v, ok)
	}
	if _, ok := a.State("missing"); ok {
		t.Error("State(missing) reported true")
	}
	logs := a.Logs()
	if len(logs) != 3 || logs[2] != (guesttest.Log{Level: guest.Debug, Msg: "count 3"}) {
		t.Errorf("Logs() = %+v, want three debug lines ending with count 3", logs)
	}

	b, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Transform(guest.Message{Subject: "count"})
	if err != nil || len(out) != 1 || string(out[0].Payload) != "1" {
		t.Errorf("a new instance emitted %+v, %v; want a fresh count of 1", out, err)
	}
}

func TestOutputsKeepTimeAndSubject(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	payload := []byte("abc")
	out, err := guesttest.RunTransform(nil, guest.Message{Subject: "keep", Source: "device.d1", Time: at, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	want := guest.Message{Subject: "keep", Time: at, Payload: []byte("Xbc")}
	if len(out) != 1 || out[0].Subject != want.Subject || out[0].Source != "" || !out[0].Time.Equal(at) || string(out[0].Payload) != "Xbc" {
		t.Fatalf("emitted %+v, want %+v", out, want)
	}
	if string(payload) != "abc" {
		t.Errorf("the plugin wrote into the caller's payload: %q", payload)
	}
	if err := kept.Emit("late", nil); err == nil {
		t.Error("an Output kept after its call still emits")
	}
}

func TestFailedCallEmitsNothing(t *testing.T) {
	tests := []struct {
		payload  string
		wantSubs []string
		wantErr  string
	}{
		{payload: "ok", wantSubs: []string{"a", "b"}},
		{payload: "fail", wantErr: "failed after emitting"},
	}
	for _, tt := range tests {
		out, err := guesttest.RunTransform(nil, guest.Message{Subject: "fan", Payload: []byte(tt.payload)})
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr || out != nil {
				t.Errorf("%s: got %+v, %v; want no output and error %q", tt.payload, out, err, tt.wantErr)
			}
			continue
		}
		if err != nil || len(out) != len(tt.wantSubs) {
			t.Fatalf("%s: got %+v, %v", tt.payload, out, err)
		}
		for k, m := range out {
			if m.Subject != tt.wantSubs[k] || string(m.Payload) != tt.payload {
				t.Errorf("%s: output %d = %s %q", tt.payload, k, m.Subject, m.Payload)
			}
		}
	}
}

func TestRunCollect(t *testing.T) {
	now := time.Date(2025, 6, 7, 8, 9, 10, 11, time.UTC)
	out, err := guesttest.RunCollect(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Subject != "tick" || !out[0].Time.Equal(now) || string(out[0].Payload) != now.Format(time.RFC3339Nano) {
		t.Errorf("RunCollect emitted %+v, want one tick at %v", out, now)
	}
}

// Instances used from several goroutines stay consistent: calls are serialised and each
// instance keeps its own state.
func TestConcurrentInstances(t *testing.T) {
	const instances, calls = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, instances)
	for range instances {
		wg.Go(func() {
			i, err := guesttest.New(nil)
			if err != nil {
				errs <- err
				return
			}
			for want := 1; want <= calls; want++ {
				out, err := i.Transform(guest.Message{Subject: "count"})
				if err != nil || len(out) != 1 || string(out[0].Payload) != strconv.Itoa(want) {
					errs <- fmt.Errorf("call %d: %+v, %v", want, out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHTTPFetch(t *testing.T) {
	away := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the host not listed got a request for %s", r.URL)
	}))
	t.Cleanup(away.Close)
	awayURL := strings.Replace(away.URL, "127.0.0.1", "localhost", 1)
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Reply", "yes")
		fmt.Fprintf(w, "%s %s ", r.Method, r.Header.Get("X-Test"))
		_, _ = w.Write(body)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 2048))
	})
	mux.Handle("/away", http.RedirectHandler(awayURL+"/x", http.StatusFound))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()

	i, err := guesttest.NewWithOptions(nil, guesttest.Options{HTTP: guesttest.HTTP{
		Hosts:       []string{strings.TrimPrefix(srv.URL, "http://"), strings.TrimPrefix(closed, "http://")},
		MaxResponse: 1024,
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, request string
		wantSubject   string // of the one output
		wantBody      string
		wantIs        error
		wantErr       string // contained in the error
	}{
		{name: "GET", request: "GET " + srv.URL + "/echo", wantSubject: "200.yes", wantBody: "GET t1 "},
		{name: "POST binary body", request: "POST " + srv.URL + "/echo \xff\x00", wantSubject: "200.yes", wantBody: "POST t1 \xff\x00"},
		{name: "host not listed", request: "GET " + awayURL + "/x", wantIs: guest.ErrNotAllowed,
			wantErr: `guest: http fetch: not allowed here: host "` + strings.TrimPrefix(awayURL, "http://") + `" is not in`},
		{name: "redirect not listed", request: "GET " + srv.URL + "/away", wantIs: guest.ErrNotAllowed, wantErr: "redirect: host"},
		{name: "method", request: "DELETE " + srv.URL + "/echo", wantIs: guest.ErrNotAllowed, wantErr: "method DELETE"},
		{name: "body over the limit", request: "GET " + srv.URL + "/big", wantIs: guest.ErrLimit, wantErr: "exceeds the limit of 1024"},
		{name: "connection refused", request: "GET " + closed + "/x", wantIs: guest.ErrFailed, wantErr: "refused"},
		{name: "relative url", request: "GET /x", wantIs: guest.ErrBadArgument, wantErr: "absolute"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := i.Transform(guest.Message{Subject: "fetch", Payload: []byte(tt.request)})
			if tt.wantIs != nil {
				if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %v containing %q", err, tt.wantIs, tt.wantErr)
				}
				return
			}
			if err != nil || len(out) != 1 || out[0].Subject != tt.wantSubject || string(out[0].Payload) != tt.wantBody {
				t.Fatalf("got %+v, %v; want %s %q", out, err, tt.wantSubject, tt.wantBody)
			}
		})
	}

	off, err := guesttest.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := off.Transform(guest.Message{Subject: "fetch", Payload: []byte("GET " + srv.URL + "/echo")}); !errors.Is(err, guest.ErrNotAllowed) {
		t.Errorf("without hosts: %v, want ErrNotAllowed", err)
	}
	if _, err := guesttest.NewWithOptions(nil, guesttest.Options{HTTP: guesttest.HTTP{Hosts: []string{"http://x/"}}}); err == nil {
		t.Error("a URL as a host pattern was accepted")
	}
	if _, err := guest.HTTPFetch(guest.HTTPRequest{URL: srv.URL + "/echo"}); !errors.Is(err, guest.ErrNotAllowed) {
		t.Errorf("outside a call: %v, want ErrNotAllowed", err)
	}
}
