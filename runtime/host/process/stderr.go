package process

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

// logWriter turns the lines a plugin writes to stderr (or stdout) into slog
// records with the instance's attributes. A JSON line with a level and a
// message (slog's JSON handler, hclog's JSON format) keeps its level,
// message and attributes; any other line is logged as it is, at Info (Error
// for a panic).
type logWriter struct {
	log    *slog.Logger
	stream string

	mu      sync.Mutex
	buf     []byte
	inPanic bool
}

// maxLine bounds a line kept in the buffer; longer ones are logged in parts.
const maxLine = 64 << 10

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) >= maxLine {
				w.line(w.buf)
				w.buf = w.buf[:0]
			}
			return len(p), nil
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

func (w *logWriter) line(b []byte) {
	line := strings.TrimRight(string(b), "\r")
	if strings.TrimSpace(line) == "" {
		return
	}
	if strings.HasPrefix(line, "{") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			if level, msg, ok := levelAndMessage(rec); ok {
				attrs := []any{"stream", w.stream}
				for k, v := range rec {
					switch k {
					case "@level", "level", "@message", "msg", "@timestamp", "time", "@module", "@caller":
					default:
						attrs = append(attrs, k, v)
					}
				}
				w.log.Log(context.Background(), level, msg, attrs...)
				return
			}
		}
	}
	level := slog.LevelInfo
	if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
		w.inPanic = true
	}
	if w.inPanic {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, line, "stream", w.stream)
}

func levelAndMessage(rec map[string]any) (slog.Level, string, bool) {
	lv, _ := rec["@level"].(string)
	if lv == "" {
		lv, _ = rec["level"].(string)
	}
	msg, ok := rec["@message"].(string)
	if !ok {
		msg, ok = rec["msg"].(string)
	}
	if lv == "" || !ok {
		return 0, "", false
	}
	var level slog.Level
	switch strings.ToLower(lv) {
	case "trace", "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn", "warning":
		level = slog.LevelWarn
	case "error", "fatal":
		level = slog.LevelError
	default:
		if level.UnmarshalText([]byte(lv)) != nil {
			level = slog.LevelInfo
		}
	}
	return level, msg, true
}
