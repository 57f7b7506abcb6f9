//go:build wasip1

// Command wasm is collectors.jsonpath built as a WASM guest: the guest kit
// calls package jsonpath's logic with the host's http_fetch and the
// instance's state (see ../README.md).
package main

import (
	"strings"
	"time"

	jsonpath "github.com/switchyard/switchyard/examples/go-jsonpath"
	"github.com/switchyard/switchyard/sdk/guest"
)

// c is the instance's configured collector, set once by Init.
var c *jsonpath.Collector

// state is the instance's state as the host keeps it.
type state struct{}

func (state) Get(key string) ([]byte, bool)    { return guest.StateGet(key) }
func (state) Set(key string, val []byte) error { return guest.StateSet(key, val) }

var _ jsonpath.State = state{}

// fetch GETs url through the host's http_fetch.
func fetch(url string, header map[string]string) (jsonpath.Response, error) {
	resp, err := guest.HTTPFetch(guest.HTTPRequest{URL: url, Header: header})
	if err != nil {
		return jsonpath.Response{}, err
	}
	return jsonpath.Response{Status: resp.Status, Body: resp.Body}, nil
}

func init() {
	guest.Init(func(config []byte) error {
		var err error
		c, err = jsonpath.New(config)
		return err
	})
	guest.Collect(func(_ time.Time, out *guest.Output) error {
		res, err := c.Collect(fetch, state{})
		if err != nil {
			return err
		}
		if len(res.Absent) > 0 {
			guest.Log(guest.Debug, "absent from the body: "+strings.Join(res.Absent, ", "))
		}
		for _, r := range res.Readings {
			if err := out.Emit(r.Subject, r.Payload); err != nil {
				return err
			}
		}
		if err := c.Remember(state{}, res.Readings); err != nil {
			guest.Log(guest.Warn, err.Error())
		}
		return nil
	})
}

func main() {}
