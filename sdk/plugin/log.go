package plugin

import (
	"context"
	"log/slog"
)

type loggerKey struct{}

// WithLogger returns ctx carrying log: the runtime gives each instance's calls (Provision,
// Collect, Transform, Publish) a context with a logger that already has the instance's
// tenant, plugin and instance attributes.
func WithLogger(ctx context.Context, log *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, log)
}

// Logger returns the logger of ctx (see WithLogger), or slog.Default() when it has none — in
// a process plugin, slog.Default() is what the host reads back from the child's stderr and
// files under the instance's attributes.
func Logger(ctx context.Context) *slog.Logger {
	if log, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && log != nil {
		return log
	}
	return slog.Default()
}
