package loadtest

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat (USER_HZ, 100 on
// every Linux architecture the tool runs on).
const userHZ = 100

// ParseProcCPU returns the CPU time (user + system) from the text of a
// /proc/<pid>/stat file.
func ParseProcCPU(stat []byte) (time.Duration, error) {
	// The command name, field 2, is in parentheses and may hold spaces and
	// parentheses itself: the fields that follow start after the last ')'.
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("parse stat: no command name in %q", truncateBytes(stat, 64))
	}
	fields := bytes.Fields(stat[end+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		return 0, fmt.Errorf("parse stat: %d fields after the command name, want at least 13", len(fields))
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(string(f), 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("parse stat: bad cpu time %q", f)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// ReadCPU returns the CPU time process pid has used so far.
func ReadCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	d, err := ParseProcCPU(b)
	if err != nil {
		return 0, fmt.Errorf("read cpu of pid %d: %w", pid, err)
	}
	return d, nil
}

// ReadCPUSum returns the CPU time the given processes have used so far.
func ReadCPUSum(pids []int) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range pids {
		d, err := ReadCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

func truncateBytes(b []byte, n int) []byte { return b[:min(len(b), n)] }

// ParseMachineCPU returns the CPU time all processes of the machine spent
// in user and system mode (user + nice + system; interrupts, steal and idle
// excluded) from the text of /proc/stat.
func ParseMachineCPU(stat []byte) (time.Duration, error) {
	for line := range bytes.Lines(stat) {
		rest, ok := bytes.CutPrefix(line, []byte("cpu "))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) < 3 {
			return 0, fmt.Errorf("parse /proc/stat: %d cpu fields, want at least 3", len(fields))
		}
		var ticks int64
		for _, f := range fields[:3] {
			n, err := strconv.ParseInt(string(f), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("parse /proc/stat: bad cpu time %q", f)
			}
			ticks += n
		}
		return time.Duration(ticks) * time.Second / userHZ, nil
	}
	return 0, fmt.Errorf("parse /proc/stat: no cpu line")
}

// ReadMachineCPU returns the user and system CPU time of the whole machine
// so far.
func ReadMachineCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read machine cpu: %w", err)
	}
	return ParseMachineCPU(b)
}
