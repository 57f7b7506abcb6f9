package plugin

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration that a plugin's configuration writes as a Go
// duration string ("30s", "5m", "1h30m"), the way plugins.yaml writes the
// runtime's own durations. A bare number is refused: it has no unit.
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf(`want a duration such as "30s", "5m" or "1h30m", got %s`, clip(string(b)))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf(`want a duration such as "30s", "5m" or "1h30m", got %q`, clip(s))
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// clip shortens a value quoted in an error.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
