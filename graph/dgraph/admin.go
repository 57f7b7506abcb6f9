package dgraph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/switchyard/switchyard/graph"
)

// admin calls the alpha's /admin GraphQL endpoint as the galaxy guardian:
// namespaces are created and dropped there (dgo v230 has no call for it).
type admin struct {
	url      string // http(s)://host:port/admin
	client   *http.Client
	guardian *session
}

type gqlError struct {
	Message string `json:"message"`
}

// call runs one GraphQL operation and decodes data.<field> into out. An
// expired access token is renewed once.
func (a *admin) call(ctx context.Context, query string, vars map[string]any, field string, out any) error {
	for attempt := 0; ; attempt++ {
		err := a.post(ctx, query, vars, field, out)
		if attempt == 0 && err != nil && strings.Contains(err.Error(), "expired") {
			if lerr := a.guardian.relogin(ctx); lerr != nil {
				return lerr
			}
			continue
		}
		return err
	}
}

func (a *admin) post(ctx context.Context, query string, vars map[string]any, field string, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Dgraph-AccessToken", a.guardian.accessToken())
	resp, err := a.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			return fmt.Errorf("%w: %v", graph.ErrUnavailable, err)
		}
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: reading the answer of %s: %v", graph.ErrUnavailable, a.url, err)
	}
	var envelope struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []gqlError                 `json:"errors"`
	}
	if err := json.Unmarshal(raw, &envelope); err != nil {
		return fmt.Errorf("%s answered %s with no GraphQL body: %.200q", a.url, resp.Status, raw)
	}
	if len(envelope.Errors) > 0 {
		msgs := make([]string, len(envelope.Errors))
		for i, e := range envelope.Errors {
			msgs[i] = e.Message
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	data, ok := envelope.Data[field]
	if !ok || string(data) == "null" {
		return fmt.Errorf("%s answered with no %s", a.url, field)
	}
	return json.Unmarshal(data, out)
}

// addNamespace creates a namespace whose guardian (groot) has password.
func (a *admin) addNamespace(ctx context.Context, password string) (uint64, error) {
	var out struct {
		NamespaceID uint64 `json:"namespaceId"`
	}
	err := a.call(ctx, `mutation($p: String!) { addNamespace(input: {password: $p}) { namespaceId } }`,
		map[string]any{"p": password}, "addNamespace", &out)
	if err != nil {
		return 0, fmt.Errorf("add namespace: %w", err)
	}
	if out.NamespaceID == 0 {
		return 0, errors.New("add namespace: the server returned namespace 0")
	}
	return out.NamespaceID, nil
}

// deleteNamespace drops a namespace and everything in it.
func (a *admin) deleteNamespace(ctx context.Context, ns uint64) error {
	var out struct {
		NamespaceID uint64 `json:"namespaceId"`
	}
	err := a.call(ctx, `mutation($n: Int!) { deleteNamespace(input: {namespaceId: $n}) { namespaceId } }`,
		map[string]any{"n": ns}, "deleteNamespace", &out)
	if err != nil {
		return fmt.Errorf("delete namespace %d: %w", ns, err)
	}
	return nil
}
