package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/switchyard/switchyard/graph"
	"github.com/switchyard/switchyard/graph/dgraph"
	"github.com/switchyard/switchyard/graph/embedded"
	"github.com/switchyard/switchyard/runtime/config"
)

// openStore opens the configured graph backend.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (graph.Store, error) {
	switch c := cfg.Store; c.Backend {
	case "embedded":
		s, err := embedded.Open(c.Embedded.Path, embedded.Options{})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	case "dgraph":
		tlsConfig, err := clientTLS(c.Dgraph.TLS)
		if err != nil {
			return nil, fmt.Errorf("store.dgraph.tls: %w", err)
		}
		s, err := dgraph.Open(ctx, dgraph.Options{
			Addresses:      c.Dgraph.Addresses,
			HTTP:           c.Dgraph.HTTP,
			User:           c.Dgraph.User,
			Password:       c.Dgraph.Password,
			TLS:            tlsConfig,
			EncryptionKey:  cfg.EncryptionKey,
			Install:        c.Dgraph.Install,
			ConnectTimeout: c.Dgraph.ConnectTimeout,
			Logger:         log,
		})
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		return s, nil
	}
	return nil, fmt.Errorf("store.backend: %q is not available in this build", cfg.Store.Backend)
}

// clientTLS builds the client side of TLS from files; nil when no CA is set.
func clientTLS(c config.ClientTLS) (*tls.Config, error) {
	if c.CAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("ca_file: " + c.CAFile + " holds no PEM certificate")
	}
	out := &tls.Config{RootCAs: pool, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file/key_file: %w", err)
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}
