package gateway

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lesismal/nbio/logging"
)

// nbio logs through a process-wide logger that prints to stdout by default.
// The gateway is nbio's only user in Switchyard, so it routes those lines
// into slog.Default() once, at package initialisation: nbio's Info chatter
// (engine start and stop) becomes Debug; its warnings and errors keep their
// level.
func init() { logging.SetLogger(nbioLogger{}) }

type nbioLogger struct{}

func (nbioLogger) Debug(format string, v ...any) { nbioLog(slog.LevelDebug, format, v) }
func (nbioLogger) Info(format string, v ...any)  { nbioLog(slog.LevelDebug, format, v) }
func (nbioLogger) Warn(format string, v ...any)  { nbioLog(slog.LevelWarn, format, v) }
func (nbioLogger) Error(format string, v ...any) { nbioLog(slog.LevelError, format, v) }

func nbioLog(level slog.Level, format string, v []any) {
	l := slog.Default()
	if !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nbio")
}
