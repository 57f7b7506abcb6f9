package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Provisioner creates devices through the admin API of a relay:
// POST <API>/api/v1/tenants/<Tenant>/devices → 201 {"device":{…},"token":"…"}.
type Provisioner struct {
	// API is the admin API's base URL, e.g. http://127.0.0.1:8081.
	API string
	// Key is the operator key sent as a bearer token.
	Key string
	// Tenant owns the devices.
	Tenant string
	// Concurrency bounds the requests in flight.
	Concurrency int
	Log         *slog.Logger
}

type deviceRequest struct {
	ID     string            `json:"id"`
	Model  string            `json:"model"`
	Labels map[string]string `json:"labels"`
}

type deviceResponse struct {
	Token string `json:"token"`
}

// Provision creates one device per id and returns their tokens in the same
// order. It stops at the first error.
func (p Provisioner) Provision(ctx context.Context, ids []string) ([]string, error) {
	if p.Concurrency <= 0 {
		return nil, fmt.Errorf("provision: concurrency %d must be positive", p.Concurrency)
	}
	client := &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: p.Concurrency, MaxConnsPerHost: p.Concurrency},
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	tokens := make([]string, len(ids))
	forEach(len(ids), p.Concurrency, func(i int) bool {
		if ctx.Err() != nil {
			return false
		}
		tok, err := p.create(ctx, client, ids[i])
		if err != nil {
			cancel(err)
			return false
		}
		tokens[i] = tok
		return true
	}, func(done int64) {
		p.Log.Info("provisioning", "api", p.API, "done", done, "of", len(ids))
	})
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return tokens, nil
}

func (p Provisioner) create(ctx context.Context, client *http.Client, id string) (string, error) {
	body, err := json.Marshal(deviceRequest{ID: id, Model: "load", Labels: map[string]string{"load": "1"}})
	if err != nil {
		return "", fmt.Errorf("provision %s: %w", id, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.API+"/api/v1/tenants/"+p.Tenant+"/devices", bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("provision %s: %w", id, err)
	}
	req.Header.Set("Authorization", "Bearer "+p.Key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("provision %s: %w", id, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("provision %s: read response: %w", id, err)
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("provision %s: http %d: %s", id, resp.StatusCode, bytes.TrimSpace(raw[:min(len(raw), 512)]))
	}
	var dr deviceResponse
	if err := json.Unmarshal(raw, &dr); err != nil {
		return "", fmt.Errorf("provision %s: decode response: %w", id, err)
	}
	if dr.Token == "" {
		return "", fmt.Errorf("provision %s: response carries no token", id)
	}
	return dr.Token, nil
}

// WaitReady polls GET <api>/ready until it answers 200, ctx ends, or exited
// is closed (the relay died).
func WaitReady(ctx context.Context, api string, exited <-chan struct{}) error {
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var last error // why the last completed attempt was not ready
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/ready", nil)
		if err != nil {
			return fmt.Errorf("wait ready: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("http %d", resp.StatusCode)
		}
		if ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return fmt.Errorf("wait ready %s: %w", api, ctx.Err())
			}
			return fmt.Errorf("wait ready %s: %w (last answer: %w)", api, ctx.Err(), last)
		case <-exited:
			return errors.New("wait ready: relay exited")
		case <-t.C:
		}
	}
}
