package homeassistant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/sdk/plugin"
)

// state is a Home Assistant state object, as /api/states lists them and as
// state_changed events carry them in old_state and new_state.
type state struct {
	EntityID    string          `json:"entity_id"`
	State       string          `json:"state"`
	Attributes  json.RawMessage `json:"attributes"`
	LastChanged string          `json:"last_changed"`
	LastUpdated string          `json:"last_updated"`
}

// Payload is the JSON body of every message the collector emits.
type Payload struct {
	EntityID string `json:"entity_id"`
	// State is the state exactly as Home Assistant gives it ("21.5", "on",
	// "unavailable").
	State string `json:"state"`
	// Value is State as a number, when it is one (absent otherwise).
	Value *float64 `json:"value,omitempty"`
	// Unit is attributes.unit_of_measurement, when it is a non-empty string.
	Unit        string          `json:"unit,omitempty"`
	Attributes  json.RawMessage `json:"attributes"`
	LastChanged string          `json:"last_changed"`
	LastUpdated string          `json:"last_updated"`
}

// frame is one message of the WebSocket API, as far as the collector reads it.
type frame struct {
	ID      int64           `json:"id"`
	Type    string          `json:"type"`
	Message string          `json:"message"` // auth_invalid
	Version string          `json:"ha_version"`
	Success bool            `json:"success"` // result
	Error   *resultError    `json:"error"`   // result, when success is false
	Event   json.RawMessage `json:"event"`   // event
}

type resultError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// event is the event object of a type "event" frame.
type event struct {
	EventType string `json:"event_type"`
	Data      struct {
		EntityID string          `json:"entity_id"`
		NewState json.RawMessage `json:"new_state"`
	} `json:"data"`
}

// Why a state was not emitted.
var (
	errFiltered = errors.New("filtered out")
	errRemoved  = errors.New("entity removed (new_state null)")
)

// filter selects entities by entity_id glob and domain.
type filter struct {
	entities []string // path.Match globs; empty: all
	domains  []string // empty: all
}

// match reports whether the entity passes the filter: its domain is listed
// (or no domains are) and its entity_id matches a glob (or none are given).
func (f filter) match(entityID, domain string) bool {
	if len(f.domains) > 0 {
		ok := false
		for _, d := range f.domains {
			if d == domain {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.entities) == 0 {
		return true
	}
	for _, g := range f.entities {
		if ok, _ := path.Match(g, entityID); ok {
			return true
		}
	}
	return false
}

// mapper turns state objects into messages.
type mapper struct {
	prefix string
	filter filter
	now    func() time.Time // the message time when last_updated does not parse
}

// splitEntityID splits "sensor.kitchen_temp" into its domain and object id;
// both must be Home Assistant tokens (a-z, 0-9, _).
func splitEntityID(id string) (domain, object string, err error) {
	domain, object, ok := strings.Cut(id, ".")
	if !ok || !validToken(domain) || !validToken(object) {
		return "", "", fmt.Errorf("entity_id %q: want domain.object_id (a-z, 0-9, _)", truncate(id, 80))
	}
	return domain, object, nil
}

// fromState maps one state object to a message. It returns errFiltered for
// an entity the filter rejects and another error for a state object that is
// not one (invalid JSON, a missing or malformed entity_id, attributes that
// are not an object).
func (m mapper) fromState(raw []byte) (plugin.Message, error) {
	var st state
	if err := json.Unmarshal(raw, &st); err != nil {
		return plugin.Message{}, fmt.Errorf("state object: %w", err)
	}
	domain, object, err := splitEntityID(st.EntityID)
	if err != nil {
		return plugin.Message{}, err
	}
	if !m.filter.match(st.EntityID, domain) {
		return plugin.Message{}, errFiltered
	}
	p := Payload{EntityID: st.EntityID, State: st.State, LastChanged: st.LastChanged, LastUpdated: st.LastUpdated}
	attrs := bytes.TrimSpace(st.Attributes)
	switch {
	case len(attrs) == 0 || string(attrs) == "null":
		p.Attributes = json.RawMessage("{}")
	case attrs[0] == '{':
		p.Attributes = attrs
		var a struct {
			Unit any `json:"unit_of_measurement"`
		}
		if err := json.Unmarshal(attrs, &a); err == nil {
			if u, ok := a.Unit.(string); ok {
				p.Unit = u
			}
		}
	default:
		return plugin.Message{}, fmt.Errorf("entity %s: attributes: want an object", st.EntityID)
	}
	if v, ok := number(st.State); ok {
		p.Value = &v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return plugin.Message{}, fmt.Errorf("entity %s: %w", st.EntityID, err)
	}
	at, err := time.Parse(time.RFC3339Nano, st.LastUpdated)
	if err != nil {
		at = m.now()
	}
	return plugin.Message{
		Subject: m.prefix + "." + domain + "." + object,
		Time:    at,
		Payload: bytes.TrimSuffix(buf.Bytes(), []byte("\n")),
	}, nil
}

// fromEvent maps the event object of a state_changed event. An event of
// another type is errFiltered; a removed entity (new_state null) is
// errRemoved.
func (m mapper) fromEvent(raw []byte) (plugin.Message, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return plugin.Message{}, fmt.Errorf("event: %w", err)
	}
	if ev.EventType != "state_changed" {
		return plugin.Message{}, errFiltered
	}
	ns := bytes.TrimSpace(ev.Data.NewState)
	if len(ns) == 0 || string(ns) == "null" {
		return plugin.Message{}, errRemoved
	}
	return m.fromState(ns)
}

// number returns a state as a number when it is written as a JSON number
// ("21.5", "-3", "1e3") that float64 holds; "on", "unavailable", "NaN",
// "Infinity", " 21", "0x10" and "1e999" are not numbers.
func number(s string) (float64, bool) {
	if !isJSONNumber(s) {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// isJSONNumber reports whether s is a number as JSON's grammar writes one.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}
