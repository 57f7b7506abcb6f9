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

// Resident is a process's resident memory in bytes, from /proc/<pid>/status:
// Total (VmRSS) is Anon (RssAnon: heap, stacks — what the process itself
// allocated) plus File (RssFile: mapped file pages — the binary's code and a
// memory-mapped database, page cache the kernel can drop) plus shared memory.
// Anon and File are 0 on kernels older than 4.5, which lack the lines.
type Resident struct {
	Total, Anon, File int64
}

// ParseResident reads a Resident from the text of a /proc/<pid>/status file.
// VmRSS is required; RssAnon and RssFile are read when present.
func ParseResident(r io.Reader) (Resident, error) {
	var res Resident
	fields := map[string]*int64{"VmRSS:": &res.Total, "RssAnon:": &res.Anon, "RssFile:": &res.File}
	found := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), "\t")
		dst := fields[name]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return Resident{}, fmt.Errorf("parse %s unexpected value %q", name, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return Resident{}, fmt.Errorf("parse %s bad number %q", name, f[0])
		}
		*dst = kb << 10
		found = found || name == "VmRSS:"
	}
	if err := sc.Err(); err != nil {
		return Resident{}, fmt.Errorf("parse status: %w", err)
	}
	if !found {
		return Resident{}, errors.New("parse status: no VmRSS line (process exiting or a kernel thread)")
	}
	return res, nil
}

// ReadResident returns the resident memory of process pid.
func ReadResident(pid int) (Resident, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Resident{}, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	defer f.Close()
	res, err := ParseResident(f)
	if err != nil {
		return Resident{}, fmt.Errorf("read rss of pid %d: %w", pid, err)
	}
	return res, nil
}

// ReadRSS returns the resident set size (VmRSS) of process pid in bytes.
func ReadRSS(pid int) (int64, error) {
	res, err := ReadResident(pid)
	return res.Total, err
}

// ReadResidentSum returns the summed resident memory of the given processes.
func ReadResidentSum(pids []int) (Resident, error) {
	var sum Resident
	for _, pid := range pids {
		res, err := ReadResident(pid)
		if err != nil {
			return Resident{}, err
		}
		sum.Total += res.Total
		sum.Anon += res.Anon
		sum.File += res.File
	}
	return sum, nil
}

// ReadRSSSum returns the summed resident set size of the given processes.
func ReadRSSSum(pids []int) (int64, error) {
	res, err := ReadResidentSum(pids)
	return res.Total, err
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
