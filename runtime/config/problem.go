package config

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
)

var _ error = Problems(nil)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Source says where the offending value came from: the file's path,
	// "env SWITCHYARD_…" for an environment variable, "flags" for an
	// override, or "" when the problem is not tied to one source (for
	// example Validate on a Config built in code).
	Source string
	// Path is the key path, e.g. "gateway.heartbeat_timeout" or
	// "plugins[2].use"; "" for the file as a whole.
	Path string
	// Line is the line in the file where the key (or the nearest section
	// holding it) is written; 0 when unknown or not from the file.
	Line int
	// Message says what is wrong.
	Message string
}

// String formats the problem as "plugins.yaml:12: plugins[2].use: message",
// leaving out the parts that are unknown.
func (p Problem) String() string {
	var b strings.Builder
	if p.Source != "" {
		b.WriteString(p.Source)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found in one load or validation. A non-empty
// Problems is the error Load and Config.Validate return.
type Problems []Problem

// Error lists one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems for reading: the file's in line order (those
// without a line last), then the environment's by variable, then the flags',
// then the rest in the order they were found.
func sortProblems(ps Problems, file string) {
	rank := func(p Problem) int {
		switch {
		case file != "" && p.Source == file:
			return 0
		case strings.HasPrefix(p.Source, envSourcePrefix):
			return 1
		case p.Source == flagSource:
			return 2
		default:
			return 3
		}
	}
	line := func(p Problem) int {
		if p.Line == 0 {
			return math.MaxInt
		}
		return p.Line
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(
			cmp.Compare(rank(a), rank(b)),
			cmp.Compare(line(a), line(b)),
			strings.Compare(a.Source, b.Source),
		)
	})
}
