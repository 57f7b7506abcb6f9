package loadtest

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

const mib = 1 << 20

// Text is a human-readable summary of r.
func (r Result) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "target      %s (%d server process(es), %d client worker(s))\n", r.Label, r.Servers, r.Workers)
	if r.Setup != "" {
		fmt.Fprintf(&b, "setup       %s\n", r.Setup)
	}
	fmt.Fprintf(&b, "connected   %d of %d, failed %d%s\n", r.Connected, r.N, r.Failed, counts(r.Failures))
	fmt.Fprintf(&b, "connect     %.1f s, %.0f conn/s; dial to welcome p50 %s, p99 %s, max %s\n", r.ConnectSeconds, r.ConnectRate,
		r.Handshake.P50.Round(10*time.Microsecond), r.Handshake.P99.Round(10*time.Microsecond), r.Handshake.Max.Round(10*time.Microsecond))
	fmt.Fprintf(&b, "hold        %s: %d open at the end, heartbeats %d sent / %d answered, disconnects %d%s\n",
		r.Hold, r.Open, r.HeartbeatsSent, r.HeartbeatsAnswered, total(r.Disconnects), counts(r.Disconnects))
	if len(r.RSSSamples) > 0 {
		fmt.Fprintf(&b, "server RSS  before %.1f MiB, after %.1f MiB (median of %d), %.2f KiB/conn",
			float64(r.RSSBefore)/mib, float64(r.RSSAfter)/mib, len(r.RSSSamples), r.RSSPerConnKiB)
		if r.AnonAfter > 0 {
			fmt.Fprintf(&b, "; anonymous %.2f KiB/conn, mapped files %.2f", r.AnonPerConnKiB, r.RSSPerConnKiB-r.AnonPerConnKiB)
		}
		b.WriteByte('\n')
	} else {
		b.WriteString("server RSS  not measured (no server pid)\n")
	}
	if r.Connected > 0 {
		fmt.Fprintf(&b, "client RSS  %.1f MiB in %d worker(s), %.2f KiB/conn\n",
			float64(r.ClientRSS)/mib, r.Workers, float64(r.ClientRSS)/1024/float64(r.Connected))
	}
	fmt.Fprintf(&b, "elapsed     %.1f s\n", r.Elapsed.Seconds())
	return b.String()
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// counts renders a reason → count map as " (reason: n, …)", sorted.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// Pair is one row of a comparison: the bare baseline and the relay at the
// same N. A missing side is nil.
type Pair struct {
	N     int
	Bare  *Result
	Relay *Result
}

// MarkdownTable renders pairs as a table for docs/BENCHMARKS.md.
func MarkdownTable(pairs []Pair) string {
	var b strings.Builder
	b.WriteString("| N | connected bare / relay | failures bare / relay | connect rate bare / relay (conn/s) | RSS/conn bare (KiB) | RSS/conn relay (KiB) | ratio | anonymous/conn bare / relay (KiB) |\n")
	b.WriteString("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range pairs {
		ratio := "—"
		if p.Bare != nil && p.Relay != nil && p.Bare.RSSPerConnKiB > 0 && len(p.Relay.RSSSamples) > 0 {
			ratio = fmt.Sprintf("%.1f×", p.Relay.RSSPerConnKiB/p.Bare.RSSPerConnKiB)
		}
		fmt.Fprintf(&b, "| %d | %s / %s | %s / %s | %s / %s | %s | %s | %s | %s / %s |\n", p.N,
			cell(p.Bare, func(r *Result) string { return fmt.Sprint(r.Connected) }),
			cell(p.Relay, func(r *Result) string { return fmt.Sprint(r.Connected) }),
			cell(p.Bare, func(r *Result) string { return fmt.Sprint(r.Failed) }),
			cell(p.Relay, func(r *Result) string { return fmt.Sprint(r.Failed) }),
			cell(p.Bare, func(r *Result) string { return fmt.Sprintf("%.0f", r.ConnectRate) }),
			cell(p.Relay, func(r *Result) string { return fmt.Sprintf("%.0f", r.ConnectRate) }),
			cell(p.Bare, rssCell), cell(p.Relay, rssCell), ratio, cell(p.Bare, anonCell), cell(p.Relay, anonCell))
	}
	return b.String()
}

func rssCell(r *Result) string {
	if len(r.RSSSamples) == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r.RSSPerConnKiB)
}

func anonCell(r *Result) string {
	if r.AnonAfter == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f", r.AnonPerConnKiB)
}

func cell(r *Result, f func(*Result) string) string {
	if r == nil {
		return "—"
	}
	return f(r)
}

// Machine describes where figures were measured.
type Machine struct {
	CPUs      int
	CPUModel  string
	Kernel    string
	GoVersion string
	MemTotal  string
	OpenFiles uint64
}

// DescribeMachine reads the machine's description from the runtime and
// /proc; what cannot be read is left empty.
func DescribeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	m.OpenFiles = openFileLimit()
	return m
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// String is one line for a report: nproc, CPU, memory, kernel, Go, open-file limit.
func (m Machine) String() string {
	return fmt.Sprintf("nproc %d (%s), memory %s, kernel %s, %s, open-file limit %d per process",
		m.CPUs, orUnknown(m.CPUModel), orUnknown(m.MemTotal), orUnknown(m.Kernel), m.GoVersion, m.OpenFiles)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
