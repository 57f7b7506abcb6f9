package loadtest

import (
	"fmt"
	"log/slog"

	"github.com/lesismal/nbio/logging"
)

// RouteNbioLogs sends nbio's own log lines to l instead of stdout, which
// workers and the bare server use for their protocol. nbio's Info lines
// (listeners starting) become Debug; its warnings and errors stay as they
// are. It sets nbio's process-wide logger, so call it once from main.
func RouteNbioLogs(l *slog.Logger) { logging.SetLogger(nbioLogger{l.With("component", "nbio")}) }

type nbioLogger struct{ l *slog.Logger }

var _ logging.Logger = nbioLogger{}

func (n nbioLogger) Debug(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n nbioLogger) Info(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n nbioLogger) Warn(format string, v ...any)  { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n nbioLogger) Error(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
