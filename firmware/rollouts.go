package firmware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/firmware/manifest"
	"github.com/switchyard/switchyard/graph"
)

// NewRollout is what an operator asks for; zero settings take the defaults.
type NewRollout struct {
	ID             string            `json:"id"`
	Model          string            `json:"model"`
	Version        string            `json:"version"`
	Selector       map[string]string `json:"selector,omitempty"`
	Percent        int               `json:"percent"`
	MaxFailureRate *float64          `json:"max_failure_rate,omitempty"`
	MinResults     int               `json:"min_results,omitempty"`
	ResultTimeout  string            `json:"result_timeout,omitempty"`
	Paused         bool              `json:"paused,omitempty"`
}

// CreateRollout starts a rollout of a release the tenant has and offers it
// at once to the connected devices of its first stage. It refuses
// (ErrConflict) a rollout that could cover a device another rollout
// of the model covers: a device follows one rollout at a time.
func (s *Service) CreateRollout(ctx context.Context, tenantID string, n NewRollout) (graph.Rollout, error) {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return graph.Rollout{}, err
	}
	r := graph.Rollout{
		Meta:  graph.Meta{ID: n.ID},
		Model: n.Model, Version: n.Version, Selector: n.Selector, Percent: n.Percent,
		State: graph.RolloutActive, MaxFailureRate: DefaultMaxFailureRate, MinResults: n.MinResults,
		ResultTimeout: n.ResultTimeout,
		Stages:        []graph.RolloutStage{{Percent: n.Percent, StartedAt: s.now().UTC()}},
	}
	if n.Paused {
		r.State, r.Reason = graph.RolloutPaused, "created paused"
	}
	if n.MaxFailureRate != nil {
		r.MaxFailureRate = *n.MaxFailureRate
	}
	if r.MinResults == 0 {
		r.MinResults = DefaultMinResults
	}
	if r.ResultTimeout == "" {
		r.ResultTimeout = DefaultResultTimeout.String()
	}
	if err := r.Validate(); err != nil {
		return graph.Rollout{}, err
	}
	t.writes.Lock()
	defer t.writes.Unlock()
	t.mu.Lock()
	rel := t.releaseOf(r.Model, r.Version)
	var clash *rollout
	for _, o := range t.rollouts {
		if o.overlaps(&r) {
			clash = o
		}
	}
	t.mu.Unlock()
	switch {
	case rel == nil:
		return graph.Rollout{}, graph.Invalid("version", "the tenant has no release of model %q at version %q: upload it first", r.Model, r.Version)
	case clash != nil:
		return graph.Rollout{}, fmt.Errorf("firmware: rollout %q: %w: rollout %q of model %s (selector %q) could offer to the same devices; "+
			"delete it first (its devices' histories stay), or give the two selectors a label with different values",
			r.ID, ErrConflict, clash.ID, clash.Model, selectorText(clash.Selector))
	}
	stored, err := s.o.Store.Tenant(tenantID).Rollouts().Create(ctx, r)
	if err != nil {
		return graph.Rollout{}, fmt.Errorf("firmware: create rollout %q: %w", r.ID, err)
	}
	t.mu.Lock()
	ro := &rollout{Rollout: stored}
	t.rollouts[ro.ID] = ro
	s.offerAllLocked(t, ro)
	out := cloneRollout(ro.Rollout)
	t.mu.Unlock()
	s.log.Info("firmware rollout created", "tenant", tenantID, "rollout", r.ID, "model", r.Model, "version", r.Version,
		"percent", r.Percent, "state", r.State)
	return out, nil
}

// RolloutChange is an operator's change of a rollout: raise its
// percentage (a new stage), pause it, or resume it (after a pause; after a
// halt, with a new stage at the same percentage whose counts start afresh).
type RolloutChange struct {
	Percent *int  `json:"percent,omitempty"`
	Paused  *bool `json:"paused,omitempty"`
}

// ChangeRollout applies a change and offers the release to the connected
// devices the rollout now admits.
func (s *Service) ChangeRollout(ctx context.Context, tenantID, id string, c RolloutChange) (graph.Rollout, error) {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return graph.Rollout{}, err
	}
	t.writes.Lock()
	defer t.writes.Unlock()
	t.mu.Lock()
	ro := t.rollouts[id]
	if ro == nil {
		t.mu.Unlock()
		return graph.Rollout{}, fmt.Errorf("firmware: rollout %q: %w", id, graph.ErrNotFound)
	}
	next := cloneRollout(ro.Rollout)
	err = s.change(&next, c)
	t.mu.Unlock()
	if err != nil {
		return graph.Rollout{}, err
	}
	stored, err := s.writeRollout(ctx, tenantID, next)
	if err != nil {
		return graph.Rollout{}, err
	}
	next.UpdatedAt = stored.UpdatedAt
	t.mu.Lock()
	if cur := t.rollouts[id]; cur != nil {
		// Counts that moved since the snapshot are kept; the change is
		// the stages added and the state.
		for i := range cur.Stages {
			next.Stages[i].Offered, next.Stages[i].Installed, next.Stages[i].Failed = cur.Stages[i].Offered, cur.Stages[i].Installed, cur.Stages[i].Failed
		}
		cur.Rollout = next
		t.dirtyRollouts[id] = true
		s.offerAllLocked(t, cur)
		next = cloneRollout(cur.Rollout)
	}
	t.mu.Unlock()
	s.log.Info("firmware rollout changed", "tenant", tenantID, "rollout", id, "percent", next.Percent, "state", next.State)
	return next, nil
}

// change applies c to r, or says why it cannot.
func (s *Service) change(r *graph.Rollout, c RolloutChange) error {
	if c.Percent == nil && c.Paused == nil {
		return graph.Invalid("percent", "a change names percent, paused, or both")
	}
	now := s.now().UTC()
	if c.Paused != nil {
		switch {
		case *c.Paused && r.State == graph.RolloutActive:
			r.State, r.Reason = graph.RolloutPaused, "paused by the operator"
		case !*c.Paused && r.State == graph.RolloutPaused:
			r.State, r.Reason = graph.RolloutActive, ""
		case !*c.Paused && r.State == graph.RolloutHalted:
			r.State, r.Reason = graph.RolloutActive, ""
			r.Stages = append(r.Stages, graph.RolloutStage{Percent: r.Percent, StartedAt: now})
		}
	}
	if c.Percent != nil {
		p := *c.Percent
		switch {
		case p < 1 || p > 100:
			return graph.Invalid("percent", "must be 1 to 100, not %d", p)
		case p < r.Percent:
			return graph.Invalid("percent", "may only be raised (it is %d): pause the rollout to stop offers", r.Percent)
		case p > r.Percent && r.State == graph.RolloutHalted:
			return fmt.Errorf("firmware: rollout %q: %w: it is halted (%s); resume it before raising it", r.ID, ErrConflict, r.Reason)
		case p > r.Percent:
			r.Percent = p
			r.Stages = append(r.Stages, graph.RolloutStage{Percent: p, StartedAt: now})
		}
	}
	return nil
}

// DeleteRollout ends a rollout: no more offers; devices already updating
// finish on their own, and their histories stay.
func (s *Service) DeleteRollout(ctx context.Context, tenantID, id string) error {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return err
	}
	t.writes.Lock()
	defer t.writes.Unlock()
	t.mu.Lock()
	_, ok := t.rollouts[id]
	t.mu.Unlock()
	if !ok {
		return fmt.Errorf("firmware: rollout %q: %w", id, graph.ErrNotFound)
	}
	if err := s.o.Store.Tenant(tenantID).Rollouts().Delete(ctx, id); err != nil && !errors.Is(err, graph.ErrNotFound) {
		return fmt.Errorf("firmware: delete rollout %q: %w", id, err)
	}
	t.mu.Lock()
	delete(t.rollouts, id)
	delete(t.dirtyRollouts, id)
	for _, d := range t.devices {
		if d.inflight != nil && d.inflight.rollout == id {
			d.inflight = nil
		}
	}
	t.mu.Unlock()
	s.log.Info("firmware rollout deleted", "tenant", tenantID, "rollout", id)
	return nil
}

// Rollouts lists a tenant's rollouts by id.
func (s *Service) Rollouts(ctx context.Context, tenantID string) ([]graph.Rollout, error) {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	out := make([]graph.Rollout, 0, len(t.rollouts))
	for _, id := range slices.Sorted(maps.Keys(t.rollouts)) {
		out = append(out, cloneRollout(t.rollouts[id].Rollout))
	}
	t.mu.Unlock()
	return out, nil
}

// Rollout returns one rollout; graph.ErrNotFound when there is none.
func (s *Service) Rollout(ctx context.Context, tenantID, id string) (graph.Rollout, error) {
	t, err := s.tenantFor(ctx, tenantID)
	if err != nil {
		return graph.Rollout{}, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.rollouts[id]; r != nil {
		return cloneRollout(r.Rollout), nil
	}
	return graph.Rollout{}, fmt.Errorf("firmware: rollout %q: %w", id, graph.ErrNotFound)
}

func cloneRollout(r graph.Rollout) graph.Rollout {
	r.Selector = maps.Clone(r.Selector)
	r.Stages = slices.Clone(r.Stages)
	return r
}

// offerAllLocked offers a rollout's release to every connected device it
// now admits.
func (s *Service) offerAllLocked(t *tenant, r *rollout) {
	if r.State != graph.RolloutActive {
		return
	}
	for _, d := range t.devices {
		if d.online && d.inflight == nil {
			s.considerLocked(t, d)
		}
	}
}

// considerLocked offers a connected device the release of the rollout that
// admits it, if any (PROTOCOL.md §8.1), or repeats the offer it has in
// progress.
func (s *Service) considerLocked(t *tenant, d *device) {
	if !d.online || !slices.Contains(d.hello.Capabilities, "ota") {
		return
	}
	if f := d.inflight; f != nil {
		r := t.rollouts[f.rollout]
		if r == nil || r.State != graph.RolloutActive {
			return
		}
		s.sendOfferLocked(t, d, r, false)
		return
	}
	running, err := manifest.ParseDeviceVersion(d.hello.Firmware)
	if err != nil {
		return
	}
	model := d.model()
	if d.recordModel != "" && d.hello.Model != "" && d.hello.Model != d.recordModel {
		s.log.Debug("firmware: device says another model than its record; not offered", "tenant", t.id, "device", d.id,
			"record_model", d.recordModel, "hello_model", d.hello.Model)
		return
	}
	for _, r := range t.rollouts {
		if r.State != graph.RolloutActive || !r.covers(model, d.labels) || !r.includes(d.id) || d.results[resultKey(r.ID, r.Version)] != "" {
			continue
		}
		rel := t.releaseOf(r.Model, r.Version)
		if rel == nil {
			continue
		}
		next, err := manifest.ParseVersion(rel.Version)
		if err != nil || next.Compare(running) <= 0 {
			continue
		}
		if rel.MinVersion != "" {
			if minimum, err := manifest.ParseVersion(rel.MinVersion); err != nil || running.Compare(minimum) < 0 {
				continue
			}
		}
		stage := len(r.Stages) - 1
		d.inflight = &inflight{rollout: r.ID, stage: stage, from: d.hello.Firmware, to: rel.Version, status: graph.FirmwareOffered, since: s.now().UTC()}
		d.record(graph.FirmwareEvent{Time: d.inflight.since, Rollout: r.ID, Stage: stage, From: d.hello.Firmware, To: rel.Version, Status: graph.FirmwareOffered})
		r.Stages[stage].Offered++
		t.dirtyRollouts[r.ID] = true
		t.dirtyHistories[d.id] = true
		s.sendOfferLocked(t, d, r, true)
		return
	}
}

func (s *Service) sendOfferLocked(t *tenant, d *device, r *rollout, first bool) {
	rel := t.releaseOf(r.Model, r.Version)
	if rel == nil {
		return
	}
	o := Offer{Offer: manifest.Offer{Manifest: rel.Manifest, Signature: rel.Signature, KeyID: rel.KeyID}, URL: DownloadPath + rel.SHA256}
	if err := s.offer(t.id, d.id, o); err != nil {
		s.log.Debug("firmware: offer not delivered", "tenant", t.id, "device", d.id, "rollout", r.ID, "err", err)
		return
	}
	s.m.offers.WithLabelValues(t.id).Inc()
	if first {
		s.log.Debug("firmware offered", "tenant", t.id, "device", d.id, "rollout", r.ID, "version", rel.Version)
	}
}

// resultLocked records a device's result for its offer in progress, counts
// it in the stage it was offered in, and halts the rollout when that stage
// now fails too often.
func (s *Service) resultLocked(t *tenant, d *device, status, reason string) {
	f := d.inflight
	d.inflight = nil
	now := s.now().UTC()
	d.record(graph.FirmwareEvent{Time: now, Rollout: f.rollout, Stage: f.stage, From: f.from, To: f.to, Status: status, Reason: reason})
	d.results[resultKey(f.rollout, f.to)] = status
	t.dirtyHistories[d.id] = true
	s.m.results.WithLabelValues(t.id, status).Inc()
	r := t.rollouts[f.rollout]
	if r == nil || f.stage >= len(r.Stages) {
		return
	}
	st := &r.Stages[f.stage]
	if status == graph.FirmwareInstalled {
		st.Installed++
	} else {
		st.Failed++
	}
	t.dirtyRollouts[r.ID] = true
	results := st.Installed + st.Failed
	rate := float64(st.Failed) / float64(results)
	if r.State == graph.RolloutActive && results >= r.MinResults && rate > r.MaxFailureRate {
		r.State = graph.RolloutHalted
		r.Reason = fmt.Sprintf("stage %d (%d%%): %d of %d devices failed (%.0f%%, above %.0f%%)",
			f.stage+1, st.Percent, st.Failed, results, rate*100, r.MaxFailureRate*100)
		s.m.halts.WithLabelValues(t.id).Inc()
		s.log.Warn("firmware rollout halted", "tenant", t.id, "rollout", r.ID, "reason", r.Reason)
	}
}

// expire fails the offers of active rollouts whose devices reported no
// result within the rollout's result timeout.
func (s *Service) expire() {
	now := s.now()
	s.mu.Lock()
	tenants := slices.Collect(maps.Values(s.tenants))
	s.mu.Unlock()
	for _, t := range tenants {
		t.mu.Lock()
		for _, d := range t.devices {
			f := d.inflight
			if f == nil {
				continue
			}
			r := t.rollouts[f.rollout]
			if r == nil || r.State != graph.RolloutActive || now.Sub(f.since) < r.timeout() {
				continue
			}
			s.resultLocked(t, d, graph.FirmwareFailed, fmt.Sprintf("no result in time (%s after the offer, last status %s)", r.ResultTimeout, f.status))
		}
		t.mu.Unlock()
	}
}

// selectorText shows a selector for messages.
func selectorText(sel map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		parts = append(parts, k+"="+sel[k])
	}
	return strings.Join(parts, ",")
}
