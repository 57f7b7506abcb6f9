// Package synthetic is the collectors.synthetic plugin: configurable fake
// sensors for demos and load tests. Each call emits one reading per sensor,
// subject <subject_prefix>.<name>, payload {"value": <number>, "unit": "…"}.
//
// Readings are deterministic for a given call time: sine and ramp sensors are
// computed from the time alone, and a random walk steps by an amount derived
// from its name and the time, from a position kept in the instance's state.
// So a test (or a second node) that replays the same times sees the same
// values.
//
// The package holds the plugin's logic and configuration over plain bytes;
// wasm/ registers it with the Go guest kit. It reaches nothing but the
// instance's state.
package synthetic

import (
	_ "embed"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/switchyard/switchyard/plugins/internal/conf"
	"github.com/switchyard/switchyard/plugins/internal/payload"
)

// Use is the plugin's kind.name in plugins.yaml.
const Use = "collectors.synthetic"

// Sample is a plugins.yaml entry using the plugin, as shown in the README.
//
//go:embed sample.yaml
var Sample string

// State is the instance's key/value state, which the host keeps.
type State interface {
	Get(key string) ([]byte, bool)
	Set(key string, val []byte) error
}

// StateKey returns the state key holding a random walk's position.
func StateKey(sensor string) string { return "walk." + sensor }

const (
	defaultPeriod   = time.Minute
	defaultDecimals = 2
	maxDecimals     = 15
	// defaultStepFraction is a random walk's step when none is set, as a
	// fraction of max-min.
	defaultStepFraction = 0.01
)

// Reading is one message a call emits.
type Reading struct {
	Subject string
	Payload []byte
}

type sensor struct {
	name, kind string
	min, max   float64
	period     time.Duration // sine, ramp
	step       float64       // random_walk
	unit       string
	decimals   int
	seed       uint64 // from the name
}

// Synthetic is one configured instance.
type Synthetic struct {
	prefix  string
	sensors []sensor
}

// New decodes the instance's configuration (a JSON object) strictly.
func New(config []byte) (*Synthetic, error) {
	o, err := conf.Parse(config)
	if err != nil {
		return nil, err
	}
	s := &Synthetic{prefix: "synthetic"}
	if o.String("subject_prefix", &s.prefix) {
		if err := validPrefix(s.prefix); err != nil {
			o.Errorf("subject_prefix", "%v", err)
		}
	}
	items := o.Objects("sensors")
	if len(items) == 0 {
		o.Errorf("sensors", "required: at least one sensor")
	}
	seen := map[string]bool{}
	for _, so := range items {
		sn := decodeSensor(so)
		if seen[sn.name] {
			so.Errorf("name", "%q is already a sensor", sn.name)
		}
		seen[sn.name] = true
		s.sensors = append(s.sensors, sn)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

func decodeSensor(o *conf.Object) sensor {
	sn := sensor{min: 0, max: 100, decimals: defaultDecimals}
	if !o.String("name", &sn.name) {
		o.Errorf("name", "required")
	} else if err := validToken(sn.name); err != nil {
		o.Errorf("name", "%v", err)
	}
	h := fnv.New64a()
	h.Write([]byte(sn.name))
	sn.seed = h.Sum64()
	hasKind := o.String("kind", &sn.kind)
	if !hasKind {
		o.Errorf("kind", "required: sine, ramp or random_walk")
	}
	o.Float("min", &sn.min)
	o.Float("max", &sn.max)
	if sn.min >= sn.max {
		o.Errorf("max", "must be greater than min (%v), got %v", sn.min, sn.max)
	} else if math.IsInf(sn.max-sn.min, 0) {
		o.Errorf("max", "max-min must be a finite number, got %v-(%v)", sn.max, sn.min)
	}
	hasPeriod := o.Duration("period", &sn.period)
	hasStep := o.Float("step", &sn.step)
	switch sn.kind {
	case "sine", "ramp":
		if !hasPeriod {
			sn.period = defaultPeriod
		} else if sn.period <= 0 {
			o.Errorf("period", "must be positive, got %s", sn.period)
		}
		if hasStep {
			o.Errorf("step", "only for kind random_walk, not %s", sn.kind)
		}
	case "random_walk":
		if !hasStep {
			sn.step = (sn.max - sn.min) * defaultStepFraction
		} else if sn.step <= 0 || sn.step > sn.max-sn.min {
			o.Errorf("step", "must be positive and at most max-min (%v), got %v", sn.max-sn.min, sn.step)
		}
		if hasPeriod {
			o.Errorf("period", "only for kind sine or ramp, not random_walk")
		}
	default:
		if hasKind {
			o.Errorf("kind", "want sine, ramp or random_walk, got %q", sn.kind)
		}
	}
	o.String("unit", &sn.unit)
	if o.Int("decimals", &sn.decimals) && (sn.decimals < 0 || sn.decimals > maxDecimals) {
		o.Errorf("decimals", "want 0 to %d, got %d", maxDecimals, sn.decimals)
	}
	return sn
}

// Collect returns one reading per sensor for a call at now, in the order the
// sensors are configured, moving each random walk's position in st.
//
// The explicit float64 conversions around products that are then added keep
// the compiler from fusing them into one FMA instruction where the CPU has
// one (the Go spec allows it), so values computed natively match the WASM
// module's bit for bit.
func (s *Synthetic) Collect(now time.Time, st State) ([]Reading, error) {
	out := make([]Reading, 0, len(s.sensors))
	for i := range s.sensors {
		sn := &s.sensors[i]
		var v float64
		switch sn.kind {
		case "sine":
			amp := (sn.max - sn.min) / 2
			v = sn.min + amp + float64(amp*math.Sin(2*math.Pi*phase(now, sn.period)))
		case "ramp":
			v = sn.min + float64((sn.max-sn.min)*phase(now, sn.period))
		case "random_walk":
			var err error
			if v, err = sn.walk(now, st); err != nil {
				return nil, err
			}
		}
		p, err := payload.Marshal(reading{Value: round(v, sn.decimals), Unit: sn.unit})
		if err != nil {
			return nil, fmt.Errorf("sensor %q: %w", sn.name, err)
		}
		out = append(out, Reading{Subject: s.prefix + "." + sn.name, Payload: p})
	}
	return out, nil
}

type reading struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// walk returns the random walk's next position and stores it. With no
// position stored yet, the walk starts at a point derived from its name.
func (sn *sensor) walk(now time.Time, st State) (float64, error) {
	key := StateKey(sn.name)
	b, ok := st.Get(key)
	var pos float64
	if !ok {
		pos = sn.min + float64((sn.max-sn.min)*unit(mix(sn.seed)))
	} else {
		last, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return 0, fmt.Errorf("sensor %q: state %q: not a number: %q", sn.name, key, b)
		}
		// The range may have changed since the position was stored.
		last = min(max(last, sn.min), sn.max)
		delta := float64(sn.step * (2*unit(mix(sn.seed^uint64(now.UnixNano()))) - 1))
		// A step past a bound bounces back off it (step <= max-min keeps it in
		// range), computed so that nothing overflows near the largest float64.
		switch {
		case delta > sn.max-last:
			pos = sn.max - (delta - (sn.max - last))
		case delta < sn.min-last:
			pos = sn.min + ((sn.min - last) - delta)
		default:
			pos = last + delta
		}
	}
	if err := st.Set(key, strconv.AppendFloat(nil, pos, 'g', -1, 64)); err != nil {
		return 0, fmt.Errorf("sensor %q: state %q: %w", sn.name, key, err)
	}
	return pos, nil
}

// phase is how far now is into its period, in [0, 1).
func phase(now time.Time, period time.Duration) float64 {
	p := int64(period)
	return float64((now.UnixNano()%p+p)%p) / float64(p)
}

// mix is SplitMix64's finalizer: a well-spread 64-bit hash of x.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unit maps x to [0, 1).
func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

func round(v float64, decimals int) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', decimals, 64), 64) // FormatFloat's output always parses
	return r
}

// validToken checks a subject token: not empty, no '.', no wildcard, no
// space or control character.
func validToken(tok string) error {
	switch {
	case tok == "":
		return fmt.Errorf("must not be empty")
	case tok == "*" || tok == ">":
		return fmt.Errorf("%q is a wildcard, not a subject token", tok)
	case strings.Contains(tok, "."):
		return fmt.Errorf("%q must not contain '.'", tok)
	case strings.IndexFunc(tok, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return fmt.Errorf("%q must not contain spaces or control characters", tok)
	}
	return nil
}

func validPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if err := validToken(tok); err != nil {
			return fmt.Errorf("%q: a token %v", p, err)
		}
	}
	return nil
}
