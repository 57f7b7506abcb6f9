package synthetic

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/plugins/internal/plugintest"
)

// t0 is on a whole hour, so it starts every period these tests use.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type value struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

func collect(t *testing.T, s *Synthetic, now time.Time, st State) []Reading {
	t.Helper()
	rs, err := s.Collect(now, st)
	if err != nil {
		t.Fatalf("Collect(%s): %v", now, err)
	}
	return rs
}

func decode(t *testing.T, r Reading) value {
	t.Helper()
	var v value
	if err := json.Unmarshal(r.Payload, &v); err != nil {
		t.Fatalf("%s: %v", r.Payload, err)
	}
	return v
}

func TestSineAndRamp(t *testing.T) {
	s, err := New([]byte(`{"subject_prefix":"lab.a","sensors":[
		{"name":"wave","kind":"sine","min":0,"max":10,"period":"1m","unit":"V"},
		{"name":"saw","kind":"ramp","min":-50,"max":50,"period":"4s","decimals":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at        time.Duration
		wave, saw float64
	}{
		{0, 5, -50},
		{time.Second, 5.52, -25},                        // 5+5·sin(2π/60); a quarter into 4s
		{15 * time.Second, 10, 25},                      // a quarter of the minute: the top; 3s into 4s
		{30 * time.Second, 5, 0},                        // half
		{45 * time.Second, 0, -25},                      // three quarters: the bottom
		{time.Minute + 3999*time.Millisecond, 7.03, 50}, // the period starts again; 49.975 to one decimal
		{-15 * time.Second, 0, -25},                     // before t0 too
	}
	for _, tt := range tests {
		rs := collect(t, s, t0.Add(tt.at), plugintest.State{})
		if len(rs) != 2 || rs[0].Subject != "lab.a.wave" || rs[1].Subject != "lab.a.saw" {
			t.Fatalf("readings %+v, want lab.a.wave then lab.a.saw", rs)
		}
		wave, saw := decode(t, rs[0]), decode(t, rs[1])
		if wave.Value != tt.wave || wave.Unit != "V" {
			t.Errorf("at +%s: wave = %+v, want %v V", tt.at, wave, tt.wave)
		}
		if saw.Value != tt.saw || strings.Contains(string(rs[1].Payload), "unit") {
			t.Errorf("at +%s: saw = %s, want %v and no unit", tt.at, rs[1].Payload, tt.saw)
		}
	}
}

func TestRandomWalk(t *testing.T) {
	const config = `{"sensors":[{"name":"p","kind":"random_walk","min":980,"max":1040,"step":0.5,"decimals":15},
		{"name":"q","kind":"random_walk","min":980,"max":1040,"step":0.5,"decimals":15}]}`
	s, err := New([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	st := plugintest.State{}
	first := collect(t, s, t0, st)
	p0, q0 := decode(t, first[0]).Value, decode(t, first[1]).Value
	if p0 < 980 || p0 > 1040 || p0 == q0 {
		t.Fatalf("starts p=%v q=%v: want each in [980, 1040], apart (seeded by name)", p0, q0)
	}
	if got := string(st[StateKey("p")]); got != strconv.FormatFloat(p0, 'g', -1, 64) {
		t.Fatalf("state %q = %q, want the position %v", StateKey("p"), got, p0)
	}

	// Another instance with the same state and times sees the same values.
	replay := plugintest.State{StateKey("p"): st[StateKey("p")], StateKey("q"): st[StateKey("q")]}
	prev, moved := p0, 0
	for i := 1; i <= 200; i++ {
		now := t0.Add(time.Duration(i) * time.Second)
		v := decode(t, collect(t, s, now, st)[0]).Value
		if again := decode(t, collect(t, s, now, replay)[0]).Value; again != v {
			t.Fatalf("call %d: %v, replayed %v", i, v, again)
		}
		if math.Abs(v-prev) > 0.5+1e-9 || v < 980 || v > 1040 {
			t.Fatalf("call %d: %v after %v: want a step of at most 0.5 within [980, 1040]", i, v, prev)
		}
		if v != prev {
			moved++
		}
		prev = v
	}
	if moved < 190 {
		t.Errorf("moved in %d of 200 calls, want nearly all", moved)
	}
}

func TestRandomWalkStaysInRange(t *testing.T) {
	s, err := New([]byte(`{"sensors":[{"name":"w","kind":"random_walk","min":0,"max":1,"step":1,"decimals":15}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// A position from before the range shrank is brought back into it.
	st := plugintest.State{StateKey("w"): []byte("7.5")}
	for i := range 500 {
		v := decode(t, collect(t, s, t0.Add(time.Duration(i)*time.Millisecond), st)[0]).Value
		if v < 0 || v > 1 {
			t.Fatalf("call %d: %v outside [0, 1]", i, v)
		}
	}
}

// failingState refuses every write, as a host at its state limit does.
type failingState struct{ plugintest.State }

func (failingState) Set(string, []byte) error { return errors.New("limit reached") }

func TestCollectErrors(t *testing.T) {
	s, err := New([]byte(`{"sensors":[{"name":"w","kind":"random_walk"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		st  State
		err string
	}{
		{plugintest.State{StateKey("w"): []byte("x")}, `sensor "w": state "walk.w": not a number: "x"`},
		{failingState{plugintest.State{}}, `sensor "w": state "walk.w": limit reached`},
	}
	for _, tt := range tests {
		if rs, err := s.Collect(t0, tt.st); err == nil || err.Error() != tt.err {
			t.Errorf("Collect = %v, %v; want error %q", rs, err, tt.err)
		}
	}
}

func TestDefaults(t *testing.T) {
	s, err := New([]byte(`{"sensors":[{"name":"a","kind":"ramp"},{"name":"b","kind":"random_walk"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rs := collect(t, s, t0.Add(15*time.Second), plugintest.State{})
	if rs[0].Subject != "synthetic.a" || string(rs[0].Payload) != `{"value":25}` {
		t.Errorf("ramp reading %s %s, want synthetic.a {\"value\":25} (0..100 over 1m)", rs[0].Subject, rs[0].Payload)
	}
	if s.sensors[1].step != 1 || s.sensors[0].period != time.Minute || s.sensors[0].decimals != 2 {
		t.Errorf("defaults: step %v period %v decimals %d, want 1 (1%% of 0..100), 1m, 2",
			s.sensors[1].step, s.sensors[0].period, s.sensors[0].decimals)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ config, err string }{
		{`{}`, "sensors: required: at least one sensor"},
		{`{"sensors":[]}`, "sensors: required: at least one sensor"},
		{`{"sensors":{"name":"a"}}`, "sensors: want a list, got object"},
		{`{"sensors":[{"kind":"sine"}]}`, "sensors[0].name: required"},
		{`{"sensors":[{"name":"a.b","kind":"sine"}]}`, `sensors[0].name: "a.b" must not contain '.'`},
		{`{"sensors":[{"name":"*","kind":"sine"}]}`, `sensors[0].name: "*" is a wildcard`},
		{`{"sensors":[{"name":"a b","kind":"sine"}]}`, `sensors[0].name: "a b" must not contain spaces`},
		{`{"sensors":[{"name":"a","kind":"sine"},{"name":"a","kind":"ramp"}]}`, `sensors[1].name: "a" is already a sensor`},
		{`{"sensors":[{"name":"a"}]}`, "sensors[0].kind: required: sine, ramp or random_walk"},
		{`{"sensors":[{"name":"a","kind":""}]}`, `sensors[0].kind: want sine, ramp or random_walk, got ""`},
		{`{"sensors":[{"name":"a","kind":"square"}]}`, `sensors[0].kind: want sine, ramp or random_walk, got "square"`},
		{`{"sensors":[{"name":"a","kind":"sine","min":5,"max":5}]}`, "sensors[0].max: must be greater than min (5), got 5"},
		{`{"sensors":[{"name":"a","kind":"sine","min":-1.7e308,"max":1.7e308}]}`, "sensors[0].max: max-min must be a finite number, got 1.7e+308-(-1.7e+308)"},
		{`{"sensors":[{"name":"a","kind":"sine","period":"0s"}]}`, "sensors[0].period: must be positive, got 0s"},
		{`{"sensors":[{"name":"a","kind":"sine","period":60}]}`, `sensors[0].period: want a duration such as "30s"`},
		{`{"sensors":[{"name":"a","kind":"sine","step":1}]}`, "sensors[0].step: only for kind random_walk, not sine"},
		{`{"sensors":[{"name":"a","kind":"random_walk","period":"1s"}]}`, "sensors[0].period: only for kind sine or ramp"},
		{`{"sensors":[{"name":"a","kind":"random_walk","step":0}]}`, "sensors[0].step: must be positive and at most max-min (100), got 0"},
		{`{"sensors":[{"name":"a","kind":"random_walk","step":101}]}`, "sensors[0].step: must be positive and at most max-min (100), got 101"},
		{`{"sensors":[{"name":"a","kind":"ramp","decimals":16}]}`, "sensors[0].decimals: want 0 to 15, got 16"},
		{`{"sensors":[{"name":"a","kind":"ramp","unit":5}]}`, "sensors[0].unit: want a string, got number 5"},
		{`{"sensors":[{"name":"a","kind":"ramp","mn":5}]}`, "sensors[0].mn: unknown key (known keys: decimals, kind, max, min, name, period, step, unit)"},
		{`{"subject_prefix":"a..b","sensors":[{"name":"a","kind":"ramp"}]}`, `subject_prefix: "a..b": a token must not be empty`},
		{`{"subject_prefix":"demo.>","sensors":[{"name":"a","kind":"ramp"}]}`, `subject_prefix: "demo.>": a token ">" is a wildcard`},
		{`{"interval":"1s","sensors":[{"name":"a","kind":"ramp"}]}`, "interval: unknown key (known keys: sensors, subject_prefix)"},
		{`{"prefix":"x","sensors":[{"name":"a","kind":"ramp"}]}`, "prefix: unknown key (known keys: sensors, subject_prefix)"},
	}
	for _, tt := range tests {
		if _, err := New([]byte(tt.config)); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("New(%s) error = %v, want it to contain %q", tt.config, err, tt.err)
		}
	}
}

func TestGolden(t *testing.T) {
	for _, c := range plugintest.Cases(t, Use) {
		t.Run(c.Name, func(t *testing.T) {
			s, err := New(c.Config)
			if err != nil {
				t.Fatalf("config: %v", err)
			}
			st := plugintest.State{}
			var got []plugintest.Message
			for _, now := range c.Ticks(t) {
				for _, r := range collect(t, s, now, st) {
					got = append(got, plugintest.Message{Subject: r.Subject, Payload: r.Payload})
				}
			}
			c.Expect(t, got)
		})
	}
}

func TestSample(t *testing.T) {
	plugintest.Sample(t, Sample, Use, func(config []byte) error {
		_, err := New(config)
		return err
	})
}

func FuzzSynthetic(f *testing.F) {
	f.Add(`{"sensors":[{"name":"a","kind":"sine","min":-1,"max":1,"period":"3s"},{"name":"b","kind":"random_walk","step":3}]}`, int64(0))
	f.Add(`{"subject_prefix":"x.y","sensors":[{"name":"r","kind":"ramp","min":1e300,"max":1.7e308,"decimals":0}]}`, int64(-1))
	f.Add(`{"sensors":[{"name":"s","kind":"sine","min":-8e307,"max":8e307},{"name":"w","kind":"random_walk","min":-8e307,"max":8e307}]}`, int64(7))
	f.Add(`{"sensors":[{"name":"w","kind":"random_walk","min":1e308,"max":1.7e308,"step":7e307}]}`, int64(3))
	f.Add(`{"sensors":[{"name":"s","kind":"sine","min":1.6e308,"max":1.7e308,"period":"4ns"}]}`, int64(1))
	f.Fuzz(func(t *testing.T, config string, ns int64) {
		s, err := New([]byte(config))
		if err != nil {
			return
		}
		st := plugintest.State{}
		for range 2 {
			rs, err := s.Collect(time.Unix(0, ns), st)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				var v value
				if err := json.Unmarshal(r.Payload, &v); err != nil {
					t.Fatalf("%s: %v", r.Payload, err)
				}
				// Rounding may overshoot a bound that is not on the decimals' grid by half a unit.
				sn := s.sensors[i]
				half := math.Pow10(-sn.decimals) / 2
				slack := half + 1e-12*max(math.Abs(sn.min), math.Abs(sn.max))
				if v.Value < sn.min-slack || v.Value > sn.max+slack {
					t.Fatalf("sensor %q: %v outside [%v, %v] rounded to %d decimals", sn.name, v.Value, sn.min, sn.max, sn.decimals)
				}
			}
		}
	})
}
