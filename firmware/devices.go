package firmware

import (
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/switchyard/switchyard/graph"
)

// Device is a device as the gateway knows it from its record.
type Device struct {
	Tenant, ID string
	// Model is the record's model; empty when the operator set none.
	Model  string
	Labels map[string]string
}

// Hello is what a device said in its hello.
type Hello struct {
	Model        string
	Firmware     string
	Capabilities []string
}

// Status is a device's firmware_status report (PROTOCOL.md §8.5).
type Status struct {
	Version  string
	Status   string
	Progress int64
	Reason   string
}

// Hello records that a device said hello: an update in progress ends as
// installed when the device runs the version it was offered, or failed when
// it restarted on another after installing; then the device is offered
// what a rollout has for it.
func (s *Service) Hello(dev Device, h Hello) {
	t := s.tenantOf(dev.Tenant)
	if t == nil {
		s.mu.Lock()
		if t = s.tenants[dev.Tenant]; t == nil {
			t = newTenant(dev.Tenant)
			s.tenants[dev.Tenant] = t
		}
		s.mu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.device(dev.ID)
	d.online, d.hello, d.recordModel, d.labels = true, h, dev.Model, maps.Clone(dev.Labels)
	if f := d.inflight; f != nil {
		switch {
		case sameVersion(h.Firmware, f.to):
			s.resultLocked(t, d, graph.FirmwareInstalled, "")
		case f.status == graph.FirmwareInstalling:
			s.resultLocked(t, d, graph.FirmwareFailed, fmt.Sprintf("restarted on %s after installing %s", h.Firmware, f.to))
		}
	}
	s.considerLocked(t, d)
}

// Gone records that a device's session ended.
func (s *Service) Gone(dev Device) {
	t := s.tenantOf(dev.Tenant)
	if t == nil {
		return
	}
	t.mu.Lock()
	if d := t.devices[dev.ID]; d != nil {
		d.online = false
		if d.inflight == nil && len(d.events) == 0 {
			delete(t.devices, dev.ID) // nothing to remember
		}
	}
	t.mu.Unlock()
}

// Status records a device's report on the offer it has in progress. It
// returns ErrNotOffered for a version the device was not offered (or has a
// result for already), and a *graph.InvalidError for a report that breaks
// PROTOCOL.md §8.5.
func (s *Service) Status(dev Device, st Status) error {
	switch {
	case rank(st.Status) <= 0:
		return graph.Invalid("status", "%q is not a firmware status", st.Status)
	case st.Status == graph.FirmwareFailed && st.Reason == "":
		return graph.Invalid("reason", "is required with status failed")
	case len(st.Reason) > graph.MaxFirmwareReason:
		return graph.Invalid("reason", "is longer than %d bytes", graph.MaxFirmwareReason)
	case st.Progress < 0:
		return graph.Invalid("progress", "must not be negative")
	}
	t := s.tenantOf(dev.Tenant)
	if t == nil {
		return fmt.Errorf("firmware: version %q: %w", st.Version, ErrNotOffered)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[dev.ID]
	if d == nil || d.inflight == nil || d.inflight.to != st.Version {
		return fmt.Errorf("firmware: version %q: %w", st.Version, ErrNotOffered)
	}
	f := d.inflight
	switch st.Status {
	case graph.FirmwareInstalled, graph.FirmwareFailed:
		s.resultLocked(t, d, st.Status, st.Reason)
		return nil
	}
	if st.Status == graph.FirmwareDownloading {
		f.progress = max(f.progress, st.Progress)
	}
	if rank(st.Status) > rank(f.status) {
		f.status = st.Status
		d.record(graph.FirmwareEvent{Time: s.now().UTC(), Rollout: f.rollout, Stage: f.stage, From: f.from, To: f.to, Status: st.Status})
		t.dirtyHistories[d.id] = true
	}
	return nil
}

// Image opens the image with sha256 sum for a device to download: only an
// image of a release of the device's tenant and model. Any other sum is
// graph.ErrNotFound, whether or not some other tenant or model has it.
func (s *Service) Image(dev Device, sum string) (*os.File, graph.FirmwareRelease, error) {
	notFound := fmt.Errorf("firmware: image %.64q: %w", sum, graph.ErrNotFound)
	t := s.tenantOf(dev.Tenant)
	if t == nil {
		return nil, graph.FirmwareRelease{}, notFound
	}
	t.mu.Lock()
	model := dev.Model
	if d := t.devices[dev.ID]; model == "" && d != nil {
		model = d.hello.Model
	}
	var rel *graph.FirmwareRelease
	for _, r := range t.releases {
		if r.SHA256 == sum && r.Model == model && model != "" {
			rel = r
			break
		}
	}
	var out graph.FirmwareRelease
	if rel != nil {
		out = *rel
	}
	t.mu.Unlock()
	if rel == nil {
		return nil, out, notFound
	}
	f, err := s.o.Blobs.Open(dev.Tenant, sum)
	if err != nil {
		return nil, out, fmt.Errorf("firmware: image %s: %w", sum, err)
	}
	return f, out, nil
}

// DeviceUpdate is a device's update in progress, as the admin API shows it.
type DeviceUpdate struct {
	Rollout  string `json:"rollout"`
	From     string `json:"from,omitempty"`
	To       string `json:"to"`
	Status   string `json:"status"`
	Progress int64  `json:"progress,omitempty"`
}

// History returns a device's firmware history, oldest first, and its update
// in progress (nil when none).
func (s *Service) History(tenantID, device string) ([]graph.FirmwareEvent, *DeviceUpdate) {
	t := s.tenantOf(tenantID)
	if t == nil {
		return []graph.FirmwareEvent{}, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.devices[device]
	if d == nil {
		return []graph.FirmwareEvent{}, nil
	}
	var u *DeviceUpdate
	if f := d.inflight; f != nil {
		u = &DeviceUpdate{Rollout: f.rollout, From: f.from, To: f.to, Status: f.status, Progress: f.progress}
	}
	return slices.Clone(d.events), u
}

// ForgetDevice drops a deleted device's state and history.
func (s *Service) ForgetDevice(tenantID, device string) {
	t := s.tenantOf(tenantID)
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.devices, device)
	t.dirtyHistories[device] = true // the flush deletes the record
	t.mu.Unlock()
}
