package loadtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ParseVmRSS returns the resident set size, in bytes, from the text of a
// /proc/<pid>/status file.
func ParseVmRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("parse vmrss: unexpected value %q", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("parse vmrss: bad number %q", fields[0])
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("parse vmrss: %w", err)
	}
	return 0, errors.New("parse vmrss: no VmRSS line (process exiting or a kernel thread)")
}

// ReadRSS returns the resident set size of process pid in bytes.
func ReadRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	defer f.Close()
	rss, err := ParseVmRSS(f)
	if err != nil {
		return 0, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	return rss, nil
}

// ReadRSSSum returns the summed resident set size of the given processes.
func ReadRSSSum(pids []int) (int64, error) {
	var sum int64
	for _, pid := range pids {
		rss, err := ReadRSS(pid)
		if err != nil {
			return 0, err
		}
		sum += rss
	}
	return sum, nil
}

// Median returns the median of samples (the mean of the two middle values
// for an even count) and 0 for none.
func Median(samples []int64) int64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}
