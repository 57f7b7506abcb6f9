package dgraph

import (
	"context"
	"fmt"
)

// TenantNamespace returns the Dgraph namespace of a tenant and the password
// of that namespace's guardian, as the store reads and unseals them: tests
// log into the namespace with a client of their own to check what it holds.
func (s *Store) TenantNamespace(ctx context.Context, id string) (uint64, string, error) {
	key := s.key("tenant", id)
	found, err := s.query(ctx, s.galaxy, find("tenant.namespace tenant.secret"), key)
	if err != nil {
		return 0, "", err
	}
	if len(found) == 0 {
		return 0, "", fmt.Errorf("tenant %q: no galaxy record", id)
	}
	password, err := s.sealer.open(found[0].Secret, key)
	if err != nil {
		return 0, "", fmt.Errorf("tenant %q: credentials %v", id, err)
	}
	return found[0].Namespace, string(password), nil
}

// CurrentAdminUser asks the alpha's /admin endpoint, with the guardian's
// token, who it is: a call that needs a valid token.
func (s *Store) CurrentAdminUser(ctx context.Context) (string, error) {
	var out struct {
		Name string `json:"name"`
	}
	err := s.admin.call(ctx, `query { getCurrentUser { name } }`, nil, "getCurrentUser", &out)
	return out.Name, err
}
