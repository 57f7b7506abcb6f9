package firmware

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"
	"time"

	"github.com/switchyard/switchyard/firmware/manifest"
	"github.com/switchyard/switchyard/graph"
)

// tenant is what the service knows of one tenant. Its lock is taken for
// every decision; offers are handed to the gateway under it (the gateway
// only queues a frame), store writes happen outside it.
type tenant struct {
	id string
	// writes orders an operator's changes of the tenant's releases and
	// rollouts, held across their store writes; mu guards the state and is
	// held only briefly, never across a store write.
	writes sync.Mutex
	mu     sync.Mutex
	// releases by id; rollouts by id; devices by id: those that said hello
	// since start, and those with a history.
	releases map[string]*graph.FirmwareRelease
	rollouts map[string]*rollout
	devices  map[string]*device
	// dirty records, written by the next flush.
	dirtyRollouts  map[string]bool
	dirtyHistories map[string]bool
}

func newTenant(id string) *tenant {
	return &tenant{
		id: id, releases: map[string]*graph.FirmwareRelease{}, rollouts: map[string]*rollout{},
		devices: map[string]*device{}, dirtyRollouts: map[string]bool{}, dirtyHistories: map[string]bool{},
	}
}

func (t *tenant) addRelease(r graph.FirmwareRelease) { t.releases[r.ID] = &r }

// releaseOf returns the release of model at version (by string), or nil.
func (t *tenant) releaseOf(model, version string) *graph.FirmwareRelease {
	return t.releases[ReleaseID(model, version)]
}

// device returns the state of a device, creating it.
func (t *tenant) device(id string) *device {
	d := t.devices[id]
	if d == nil {
		d = &device{id: id, results: map[string]string{}}
		t.devices[id] = d
	}
	return d
}

// rollout is a rollout's record and what is derived from it.
type rollout struct {
	graph.Rollout
}

func (r *rollout) timeout() time.Duration {
	d, _ := time.ParseDuration(r.ResultTimeout) // validated on create and load
	return d
}

// includes reports whether a device falls within the rollout's current
// percentage (see bucket).
func (r *rollout) includes(device string) bool { return bucket(r.ID, device) < r.Percent*100 }

// bucket places a device in 0–9999 for a rollout: the first 8 bytes of
// SHA-256(rollout id "/" device id), big-endian, modulo 10000. A stage of p
// percent admits the devices whose bucket is below 100·p, so raising the
// percentage keeps every device admitted before, each rollout picks its own
// canaries, and the choice needs no state and no coordination.
func bucket(rollout, device string) int {
	sum := sha256.Sum256([]byte(rollout + "/" + device))
	return int(binary.BigEndian.Uint64(sum[:8]) % 10000)
}

// covers reports whether the rollout's model and selector take the device.
func (r *rollout) covers(model string, labels map[string]string) bool {
	if model != r.Model {
		return false
	}
	for k, v := range r.Selector {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	return true
}

// overlaps reports whether some device could be covered by both rollouts:
// same model, and no label that the two selectors require with different
// values.
func (r *rollout) overlaps(o *graph.Rollout) bool {
	if r.Model != o.Model {
		return false
	}
	for k, v := range r.Selector {
		if ov, ok := o.Selector[k]; ok && ov != v {
			return false
		}
	}
	return true
}

// device is one device's update state.
type device struct {
	id string
	// online: the device has a session that said hello; hello is what it
	// said; recordModel and labels are its record's, as the gateway knew
	// them at hello.
	online      bool
	hello       Hello
	recordModel string
	labels      map[string]string
	// events is the device's history, oldest first.
	events []graph.FirmwareEvent
	// results: resultKey → installed or failed.
	results map[string]string
	// inflight is the offer the device has no result for yet.
	inflight *inflight
}

// resultKey names a device's result in a rollout: its id and version, so a
// rollout deleted and created again under the same id for another release
// starts afresh.
func resultKey(rollout, version string) string { return rollout + "\x00" + version }

// inflight is an offer in progress.
type inflight struct {
	rollout  string
	stage    int
	from, to string
	status   string // the furthest status reported
	since    time.Time
	progress int64
}

// model is the model the device is updated as: its record's when the
// operator set one, else the one it said hello with.
func (d *device) model() string {
	if d.recordModel != "" {
		return d.recordModel
	}
	return d.hello.Model
}

// load rebuilds a device's state from its stored history.
func (d *device) load(events []graph.FirmwareEvent) {
	d.events = events
	for _, e := range events {
		switch e.Status {
		case graph.FirmwareInstalled, graph.FirmwareFailed:
			if e.Rollout != "" {
				d.results[resultKey(e.Rollout, e.To)] = e.Status
			}
			if d.inflight != nil && d.inflight.rollout == e.Rollout {
				d.inflight = nil
			}
		case graph.FirmwareOffered:
			if e.Rollout != "" {
				d.inflight = &inflight{rollout: e.Rollout, stage: e.Stage, from: e.From, to: e.To, status: e.Status, since: e.Time}
			}
		default:
			if d.inflight != nil && d.inflight.rollout == e.Rollout {
				d.inflight.status = e.Status
			}
		}
	}
}

// record appends an event, keeping the last graph.MaxFirmwareEvents.
func (d *device) record(e graph.FirmwareEvent) {
	d.events = append(d.events, e)
	if n := len(d.events) - graph.MaxFirmwareEvents; n > 0 {
		d.events = append([]graph.FirmwareEvent(nil), d.events[n:]...)
	}
}

// rank orders the statuses of an offer in progress.
func rank(status string) int { return slices.Index(graph.FirmwareStatuses, status) }

// sameVersion compares versions by SemVer precedence, or as text when one
// does not parse.
func sameVersion(a, b string) bool {
	va, errA := manifest.ParseDeviceVersion(a)
	vb, errB := manifest.ParseDeviceVersion(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return va.Compare(vb) == 0
}
