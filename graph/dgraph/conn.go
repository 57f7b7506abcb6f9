package dgraph

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/dgo/v230"
	"github.com/dgraph-io/dgo/v230/protos/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/switchyard/switchyard/graph"
)

// session is a dgo client logged into one namespace. dgo renews an expired
// access token with the refresh token by itself; when the refresh token has
// expired too (or the server forgot it), session logs in again with the
// password and retries the call once.
type session struct {
	dg        *dgo.Dgraph
	user      string
	password  string
	namespace uint64
}

func newSession(ctx context.Context, clients []api.DgraphClient, user, password string, namespace uint64) (*session, error) {
	s := &session{dg: dgo.NewDgraphClient(clients...), user: user, password: password, namespace: namespace}
	if err := s.dg.LoginIntoNamespace(ctx, user, password, namespace); err != nil {
		return nil, err
	}
	return s, nil
}

// maxAttempts bounds the retries of a transaction aborted by a concurrent
// write to the same keys.
const maxAttempts = 12

// do runs req as one transaction committed at once: read-only when it has no
// mutations. It retries aborted transactions and logs in again when the
// tokens have expired.
func (s *session) do(ctx context.Context, req *api.Request) (*api.Response, error) {
	relogged := false
	for attempt := 1; ; attempt++ {
		var txn *dgo.Txn
		if len(req.Mutations) == 0 {
			txn = s.dg.NewReadOnlyTxn()
		} else {
			txn = s.dg.NewTxn()
			req.CommitNow = true
		}
		resp, err := txn.Do(ctx, req)
		switch {
		case err == nil:
			return resp, nil
		case errors.Is(err, dgo.ErrAborted) && attempt < maxAttempts:
			if err := pause(ctx, attempt); err != nil {
				return nil, err
			}
			continue
		case !relogged && unauthenticated(err):
			relogged = true
			if lerr := s.dg.LoginIntoNamespace(ctx, s.user, s.password, s.namespace); lerr != nil {
				return nil, lerr
			}
			continue
		}
		return nil, err
	}
}

// alter changes the schema of the session's namespace.
func (s *session) alter(ctx context.Context, op *api.Operation) error {
	err := s.dg.Alter(ctx, op)
	if unauthenticated(err) {
		if err = s.dg.LoginIntoNamespace(ctx, s.user, s.password, s.namespace); err == nil {
			err = s.dg.Alter(ctx, op)
		}
	}
	return err
}

// accessToken returns a current access token of the session, for the
// /admin endpoint.
func (s *session) accessToken() string { return s.dg.GetJwt().AccessJwt }

// relogin renews the session's tokens: with the refresh token, else the
// password.
func (s *session) relogin(ctx context.Context) error {
	if err := s.dg.Relogin(ctx); err == nil {
		return nil
	}
	return s.dg.LoginIntoNamespace(ctx, s.user, s.password, s.namespace)
}

func pause(ctx context.Context, attempt int) error {
	d := time.Duration(attempt) * 2 * time.Millisecond
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func unauthenticated(err error) bool {
	if err == nil {
		return false
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unauthenticated {
		return true
	}
	// dgo renews an expired access token with the refresh token inside the
	// call and returns that login's error when it fails: in plain text for
	// a missing refresh token, and as Dgraph's answer to every failed login
	// (code Unknown, "invalid username or password") when the refresh token
	// has expired too. Logging in with the password is the way out of both.
	msg := err.Error()
	return strings.Contains(msg, "refresh jwt") || strings.Contains(msg, "invalid username or password")
}

// unavailable reports whether err means the cluster cannot be reached (as
// opposed to a refused or malformed request).
func unavailable(ctx context.Context, err error) bool {
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable:
			return true
		case codes.DeadlineExceeded, codes.Canceled:
			return ctx.Err() == nil
		}
	}
	return false
}

// wrap gives an error from the cluster its context and, when the cluster
// cannot be reached, graph.ErrUnavailable.
func wrap(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(ctx, err) {
		return fmt.Errorf("dgraph: %s: %w: %v", what, graph.ErrUnavailable, err)
	}
	return fmt.Errorf("dgraph: %s: %w", what, err)
}
