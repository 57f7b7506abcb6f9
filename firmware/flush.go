package firmware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/switchyard/switchyard/graph"
)

// flushWriters is how many records a flush writes at once.
const flushWriters = 8

// write is one record to write behind: a rollout, a history, or the
// deletion of a forgotten device's history.
type write struct {
	tenant  string
	rollout *graph.Rollout
	history *graph.FirmwareHistory
	forget  string
}

// flush writes the dirty records of every tenant. A record whose write
// fails is marked dirty again, unless its tenant is gone.
func (s *Service) flush(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	tenants := slices.Collect(maps.Values(s.tenants))
	s.mu.Unlock()
	var writes []write
	for _, t := range tenants {
		t.mu.Lock()
		for id := range t.dirtyRollouts {
			if r := t.rollouts[id]; r != nil {
				rc := cloneRollout(r.Rollout)
				writes = append(writes, write{tenant: t.id, rollout: &rc})
			}
		}
		for id := range t.dirtyHistories {
			if d := t.devices[id]; d != nil {
				writes = append(writes, write{tenant: t.id, history: &graph.FirmwareHistory{Meta: graph.Meta{ID: id}, Events: slices.Clone(d.events)}})
			} else {
				writes = append(writes, write{tenant: t.id, forget: id})
			}
		}
		clear(t.dirtyRollouts)
		clear(t.dirtyHistories)
		t.mu.Unlock()
	}
	if len(writes) == 0 {
		return nil
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	sem := make(chan struct{}, flushWriters)
	for i, w := range writes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = s.writeOne(ctx, w)
		}()
	}
	wg.Wait()
	var failed []error
	for i, err := range errs {
		if err == nil {
			continue
		}
		w := writes[i]
		if errors.Is(err, graph.ErrTenantNotFound) {
			continue
		}
		failed = append(failed, err)
		if t := s.tenantOf(w.tenant); t != nil {
			t.mu.Lock()
			switch {
			case w.rollout != nil:
				t.dirtyRollouts[w.rollout.ID] = true
			case w.history != nil:
				t.dirtyHistories[w.history.ID] = true
			default:
				t.dirtyHistories[w.forget] = true
			}
			t.mu.Unlock()
		}
	}
	if len(failed) > 0 {
		s.m.flushErrors.Add(float64(len(failed)))
		s.log.Warn("firmware: write behind failed; will retry", "records", len(failed), "err", failed[0])
		return fmt.Errorf("firmware: flush: %d records not written: %w", len(failed), errors.Join(failed...))
	}
	return nil
}

func (s *Service) writeOne(ctx context.Context, w write) error {
	sc := s.o.Store.Tenant(w.tenant)
	switch {
	case w.rollout != nil:
		stored, err := sc.Rollouts().Update(ctx, *w.rollout)
		if errors.Is(err, graph.ErrNotFound) && !errors.Is(err, graph.ErrTenantNotFound) {
			return nil // deleted since: nothing to keep
		}
		if err == nil {
			s.stamp(w.tenant, stored)
		}
		return err
	case w.history != nil:
		_, err := sc.FirmwareHistories().Update(ctx, *w.history)
		if errors.Is(err, graph.ErrNotFound) && !errors.Is(err, graph.ErrTenantNotFound) {
			_, err = sc.FirmwareHistories().Create(ctx, *w.history)
		}
		return err
	default:
		err := sc.FirmwareHistories().Delete(ctx, w.forget)
		if errors.Is(err, graph.ErrNotFound) && !errors.Is(err, graph.ErrTenantNotFound) {
			return nil
		}
		return err
	}
}

// writeRollout writes an operator's change of a rollout through, in the
// order of every other write.
func (s *Service) writeRollout(ctx context.Context, tenant string, r graph.Rollout) (graph.Rollout, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	stored, err := s.o.Store.Tenant(tenant).Rollouts().Update(ctx, r)
	if err != nil {
		return stored, fmt.Errorf("firmware: rollout %q: %w", r.ID, err)
	}
	return stored, nil
}

// stamp keeps the store's update time of a rollout written.
func (s *Service) stamp(tenant string, stored graph.Rollout) {
	if t := s.tenantOf(tenant); t != nil {
		t.mu.Lock()
		if r := t.rollouts[stored.ID]; r != nil && stored.UpdatedAt.After(r.UpdatedAt) {
			r.UpdatedAt = stored.UpdatedAt
		}
		t.mu.Unlock()
	}
}
