package system

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The groups of metrics, in the order a round emits them.
const (
	GroupCPU          = "cpu"
	GroupMemory       = "memory"
	GroupTemperatures = "temperatures"
	GroupDisks        = "disks"
	GroupNetwork      = "network"
)

// Groups lists every group, in the order a round emits them.
var Groups = []string{GroupCPU, GroupMemory, GroupTemperatures, GroupDisks, GroupNetwork}

// Units of the payloads.
const (
	unitPercent  = "%"
	unitBytes    = "B"
	unitRate     = "B/s"
	unitCelsius  = "°C"
	unitLoad     = "" // load averages have none: the payload has no unit
	sectorSize   = 512
	maxFileBytes = 4 << 20 // a /proc or /sys file larger than this is malformed
)

// metric is one reading: its subject is <prefix>.<group>.<name>, where name
// is one token or, for a reading of one core, mount, device or interface,
// <entity>.<what>.
type metric struct {
	group string
	name  string
	value float64
	unit  string
}

// fsStat is what statfs says about one mounted filesystem.
type fsStat struct {
	total uint64 // bytes
	free  uint64 // bytes free, reserved blocks included
	avail uint64 // bytes free for unprivileged users
}

// sampler reads the kernel's files under root and turns them into metrics.
// It keeps the counters of the previous sample, so rates and CPU usage need
// two samples: the first only primes them. It is not safe for concurrent use.
type sampler struct {
	root            string
	groups          map[string]bool
	perCore         bool
	mounts          []string // explicit mount points; nil is auto
	interfaces      []string // explicit interfaces; nil is all (but lo unless includeLoopback)
	includeLoopback bool

	now    func() time.Time
	statfs func(path string) (fsStat, error)

	prev *counters // the previous sample's counters, nil before the first
}

// counters are the cumulative values a rate is computed from.
type counters struct {
	at   time.Time
	cpu  map[string]cpuTimes // "cpu" (all) and "cpu0"…
	disk map[string]ioBytes  // whole block devices
	net  map[string]ioBytes  // interfaces
}

// ioBytes are cumulative byte counters: read/write or received/transmitted.
type ioBytes struct{ in, out uint64 }

// cpuTimes are a CPU's cumulative ticks: all of them and the idle ones
// (idle and iowait).
type cpuTimes struct{ total, idle uint64 }

// result is what one sample gave.
type result struct {
	metrics   []metric
	malformed []string // one "path: reason" per malformed file or line skipped
}

func (r *result) add(group, name string, value float64, unit string) {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return
	}
	r.metrics = append(r.metrics, metric{group: group, name: name, value: value, unit: unit})
}

func (r *result) bad(path string, err error) {
	r.malformed = append(r.malformed, path+": "+err.Error())
}

// path returns the absolute-in-root path of a kernel file ("proc/stat").
func (s *sampler) path(rel string) string { return filepath.Join(s.root, rel) }

// read returns a kernel file's content; ok is false when it is missing (or
// cannot be read at all, as in a container that hides it), which is no
// metrics and no error. A read that fails otherwise is reported to r.
func (s *sampler) read(rel string, r *result) ([]byte, bool) {
	return s.readPath(s.path(rel), r)
}

func (s *sampler) readPath(p string, r *result) ([]byte, bool) {
	f, err := os.Open(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			r.bad(p, err)
		}
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		r.bad(p, err) // a sensor that answers EIO or ENODATA, say
		return nil, false
	}
	if len(b) > maxFileBytes {
		r.bad(p, fmt.Errorf("larger than %d bytes", maxFileBytes))
		return nil, false
	}
	return b, true
}

// sample reads every enabled group once.
func (s *sampler) sample() result {
	var r result
	cur := &counters{at: s.now()}
	if s.groups[GroupCPU] {
		s.sampleCPU(cur, &r)
	}
	if s.groups[GroupMemory] {
		s.sampleMemory(&r)
	}
	if s.groups[GroupTemperatures] {
		s.sampleTemperatures(&r)
	}
	if s.groups[GroupDisks] {
		s.sampleDisks(cur, &r)
	}
	if s.groups[GroupNetwork] {
		s.sampleNetwork(cur, &r)
	}
	s.prev = cur
	return r
}

// elapsed is the time since the previous sample in seconds, or 0 when there
// is none (or the clock went backwards).
func (s *sampler) elapsed(cur *counters) float64 {
	if s.prev == nil {
		return 0
	}
	return cur.at.Sub(s.prev.at).Seconds()
}

// --- cpu ---

func (s *sampler) sampleCPU(cur *counters, r *result) {
	if b, ok := s.read("proc/stat", r); ok {
		times, bad := parseStat(b)
		for _, e := range bad {
			r.bad(s.path("proc/stat"), e)
		}
		cur.cpu = times
		if s.prev != nil && s.prev.cpu != nil {
			if u, ok := usage(s.prev.cpu["cpu"], times["cpu"]); ok {
				r.add(GroupCPU, "usage", u, unitPercent)
			}
			if s.perCore {
				for _, name := range sortedKeys(times) {
					if name == "cpu" {
						continue
					}
					before, seen := s.prev.cpu[name]
					if !seen {
						continue // a core that came online since
					}
					if u, ok := usage(before, times[name]); ok {
						r.add(GroupCPU, token(name, "cpu")+".usage", u, unitPercent)
					}
				}
			}
		}
	}
	if b, ok := s.read("proc/loadavg", r); ok {
		loads, err := parseLoadavg(b)
		if err != nil {
			r.bad(s.path("proc/loadavg"), err)
		} else {
			r.add(GroupCPU, "load1", loads[0], unitLoad)
			r.add(GroupCPU, "load5", loads[1], unitLoad)
			r.add(GroupCPU, "load15", loads[2], unitLoad)
		}
	}
}

// usage is the busy share of the ticks between two samples, in percent.
func usage(before, after cpuTimes) (float64, bool) {
	if after.total <= before.total || after.idle < before.idle {
		return 0, false // no tick passed, or the counters were reset
	}
	total := after.total - before.total
	idle := after.idle - before.idle
	if idle > total {
		return 0, false
	}
	return round2(float64(total-idle) / float64(total) * 100), true
}

// parseStat reads the cpu lines of /proc/stat: "cpu" for all CPUs and
// "cpuN" per core. Ticks are user nice system idle iowait irq softirq steal
// (guest and guest_nice are already in user and nice). A malformed cpu line
// is left out and reported; other lines are ignored.
func parseStat(b []byte) (map[string]cpuTimes, []error) {
	times := map[string]cpuTimes{}
	var bad []error
	for line := range lines(b) {
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		name := fields[0]
		if n := name[3:]; n != "" && !allDigits(n) {
			continue // not a cpu line
		}
		if len(fields) < 5 {
			bad = append(bad, fmt.Errorf("line %q: want at least 4 tick counts", clip(line)))
			continue
		}
		var t cpuTimes
		ok := true
		for i, f := range fields[1:min(len(fields), 9)] {
			v, err := strconv.ParseUint(f, 10, 64)
			if err != nil {
				bad = append(bad, fmt.Errorf("line %q: %q is not a tick count", clip(line), clip(f)))
				ok = false
				break
			}
			if t.total+v < t.total {
				bad = append(bad, fmt.Errorf("line %q: tick counts overflow", clip(line)))
				ok = false
				break
			}
			t.total += v
			if i == 3 || i == 4 { // idle, iowait
				t.idle += v
			}
		}
		if !ok {
			continue
		}
		if _, dup := times[name]; dup {
			bad = append(bad, fmt.Errorf("line %q: %s appears twice", clip(line), name))
			continue
		}
		times[name] = t
	}
	return times, bad
}

// parseLoadavg reads the three load averages of /proc/loadavg.
func parseLoadavg(b []byte) ([3]float64, error) {
	var loads [3]float64
	fields := strings.Fields(string(b))
	if len(fields) < 3 {
		return loads, fmt.Errorf("want 3 load averages, got %q", clip(string(b)))
	}
	for i := range loads {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return loads, fmt.Errorf("%q is not a load average", clip(fields[i]))
		}
		loads[i] = v
	}
	return loads, nil
}

// --- memory ---

func (s *sampler) sampleMemory(r *result) {
	b, ok := s.read("proc/meminfo", r)
	if !ok {
		return
	}
	info, err := parseMeminfo(b)
	if err != nil {
		r.bad(s.path("proc/meminfo"), err)
		return
	}
	total, hasTotal := info["MemTotal"]
	avail, hasAvail := info["MemAvailable"]
	if !hasAvail { // kernels before 3.14
		free, f := info["MemFree"]
		buffers := info["Buffers"]
		cached := info["Cached"]
		avail, hasAvail = free+buffers+cached, f
	}
	if !hasTotal || !hasAvail {
		r.bad(s.path("proc/meminfo"), errors.New("no MemTotal or MemAvailable"))
		return
	}
	avail = min(avail, total)
	r.add(GroupMemory, "total", float64(total), unitBytes)
	r.add(GroupMemory, "available", float64(avail), unitBytes)
	r.add(GroupMemory, "used", float64(total-avail), unitBytes)
	if total > 0 {
		r.add(GroupMemory, "used_percent", round2(float64(total-avail)/float64(total)*100), unitPercent)
	}
	swapTotal, hasSwap := info["SwapTotal"]
	swapFree, hasFree := info["SwapFree"]
	if hasSwap && hasFree {
		r.add(GroupMemory, "swap_total", float64(swapTotal), unitBytes)
		r.add(GroupMemory, "swap_used", float64(swapTotal-min(swapFree, swapTotal)), unitBytes)
	}
}

// parseMeminfo reads "Key:   123 kB" lines into bytes. Lines it cannot read
// are an error: the file's format is the kernel's, not a user's.
func parseMeminfo(b []byte) (map[string]uint64, error) {
	info := map[string]uint64{}
	for line := range lines(b) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, rest, ok := strings.Cut(line, ":")
		fields := strings.Fields(rest)
		if !ok || len(fields) == 0 || len(fields) > 2 {
			return nil, fmt.Errorf("line %q: want \"Key: value [kB]\"", clip(line))
		}
		v, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %q is not a number", clip(line), clip(fields[0]))
		}
		if len(fields) == 2 {
			if fields[1] != "kB" {
				return nil, fmt.Errorf("line %q: unknown unit %q", clip(line), clip(fields[1]))
			}
			if v > math.MaxUint64/1024 {
				return nil, fmt.Errorf("line %q: too large", clip(line))
			}
			v *= 1024
		}
		info[strings.TrimSpace(key)] = v
	}
	return info, nil
}

// --- temperatures ---

func (s *sampler) sampleTemperatures(r *result) {
	names := newNamer()
	zones := entries(s.path("sys/class/thermal"), "thermal_zone", "")
	for _, dir := range zones {
		if _, err := os.Stat(filepath.Join(dir, "temp")); err != nil {
			continue // a zone without a temperature (or hidden)
		}
		// named before the value is read, so that one unreadable sensor does
		// not rename the others
		name := filepath.Base(dir)
		if t, ok := s.readPath(filepath.Join(dir, "type"), r); ok && strings.TrimSpace(string(t)) != "" {
			name = string(t)
		}
		name = names.unique(token(name, "zone"))
		b, ok := s.readPath(filepath.Join(dir, "temp"), r)
		if !ok {
			continue
		}
		c, err := parseMilli(b)
		if err != nil {
			r.bad(filepath.Join(dir, "temp"), err)
			continue
		}
		r.add(GroupTemperatures, name, c, unitCelsius)
	}
	chips := entries(s.path("sys/class/hwmon"), "hwmon", "")
	for _, dir := range chips {
		chip := filepath.Base(dir)
		if n, ok := s.readPath(filepath.Join(dir, "name"), r); ok && strings.TrimSpace(string(n)) != "" {
			chip = string(n)
		}
		inputs := entries(dir, "temp", "_input")
		for _, in := range inputs {
			sensor := strings.TrimSuffix(filepath.Base(in), "_input") // temp1
			if l, ok := s.readPath(filepath.Join(dir, sensor+"_label"), r); ok && strings.TrimSpace(string(l)) != "" {
				sensor = string(l)
			}
			name := names.unique(token(chip, "hwmon") + "_" + token(sensor, "temp"))
			b, ok := s.readPath(in, r)
			if !ok {
				continue
			}
			c, err := parseMilli(b)
			if err != nil {
				r.bad(in, err)
				continue
			}
			r.add(GroupTemperatures, name, c, unitCelsius)
		}
	}
}

// entries lists the paths of dir's entries named prefix…suffix, numbers in
// order (hwmon2 before hwmon10); none when dir is missing.
func entries(dir, prefix, suffix string) []string {
	list, _ := os.ReadDir(dir)
	var paths []string
	for _, e := range list {
		if n := e.Name(); strings.HasPrefix(n, prefix) && strings.HasSuffix(n, suffix) && len(n) > len(prefix)+len(suffix) {
			paths = append(paths, filepath.Join(dir, n))
		}
	}
	slices.SortFunc(paths, naturalCompare)
	return paths
}

// parseMilli reads a temperature in millidegrees Celsius into degrees.
func parseMilli(b []byte) (float64, error) {
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a temperature in millidegrees", clip(s))
	}
	return float64(v) / 1000, nil
}

// --- disks ---

func (s *sampler) sampleDisks(cur *counters, r *result) {
	s.sampleMounts(r)
	b, ok := s.read("proc/diskstats", r)
	if !ok {
		return
	}
	devs, bad := parseDiskstats(b)
	for _, e := range bad {
		r.bad(s.path("proc/diskstats"), e)
	}
	cur.disk = devs
	s.rates(GroupDisks, cur, s.prevOf(func(c *counters) map[string]ioBytes { return c.disk }), devs, "read_bytes_per_second", "write_bytes_per_second", r)
}

func (s *sampler) prevOf(get func(*counters) map[string]ioBytes) map[string]ioBytes {
	if s.prev == nil {
		return nil
	}
	return get(s.prev)
}

// rates adds the per-second rate of each counter that was in the previous
// sample and did not go backwards.
func (s *sampler) rates(group string, cur *counters, before, now map[string]ioBytes, in, out string, r *result) {
	secs := s.elapsed(cur)
	if before == nil || secs <= 0 {
		return
	}
	names := newNamer()
	for _, name := range sortedKeys(now) {
		tok := names.unique(token(name, "dev"))
		was, ok := before[name]
		if !ok {
			continue // new since the last sample
		}
		is := now[name]
		if is.in >= was.in {
			r.add(group, tok+"."+in, round2(float64(is.in-was.in)/secs), unitRate)
		}
		if is.out >= was.out {
			r.add(group, tok+"."+out, round2(float64(is.out-was.out)/secs), unitRate)
		}
	}
}

// virtualFS are the filesystem types that hold no disk space of their own;
// auto mode leaves them out.
var virtualFS = map[string]bool{
	"autofs": true, "aufs": true, "binder": true, "binfmt_misc": true, "bpf": true, "cgroup": true,
	"cgroup2": true, "configfs": true, "cpuset": true, "debugfs": true, "devfs": true, "devpts": true,
	"devtmpfs": true, "efivarfs": true, "fuse.gvfsd-fuse": true, "fuse.lxcfs": true, "fuse.portal": true,
	"fusectl": true, "hugetlbfs": true, "mqueue": true, "nfsd": true, "nsfs": true, "overlay": true,
	"pipefs": true, "proc": true, "pstore": true, "ramfs": true, "rootfs": true, "rpc_pipefs": true,
	"securityfs": true, "selinuxfs": true, "sockfs": true, "squashfs": true, "sysfs": true,
	"tmpfs": true, "tracefs": true,
}

// mount is one line of /proc/mounts.
type mount struct{ source, point, fstype string }

func (s *sampler) sampleMounts(r *result) {
	var points []string
	if s.mounts != nil {
		points = s.mounts
	} else {
		b, ok := s.read("proc/mounts", r)
		if !ok {
			return
		}
		mounts, bad := parseMounts(b)
		for _, e := range bad {
			r.bad(s.path("proc/mounts"), e)
		}
		seen := map[string]bool{}
		for _, m := range mounts {
			// one filesystem mounted (or bind-mounted) twice is reported once
			if virtualFS[m.fstype] || seen[m.source] || seen["point:"+m.point] {
				continue
			}
			seen[m.source], seen["point:"+m.point] = true, true
			points = append(points, m.point)
		}
	}
	names := newNamer()
	for _, p := range points {
		tok := names.unique(mountToken(p)) // named first: one failing mount renames no other
		st, err := s.statfs(filepath.Join(s.root, p))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
				r.bad(p, fmt.Errorf("statfs: %w", err))
			}
			continue
		}
		if st.total == 0 {
			continue // nothing to fill
		}
		used := st.total - min(st.free, st.total)
		r.add(GroupDisks, tok+".total_bytes", float64(st.total), unitBytes)
		r.add(GroupDisks, tok+".used_bytes", float64(used), unitBytes)
		// as df shows it: of the space an unprivileged user may fill
		if room := used + st.avail; room > 0 {
			r.add(GroupDisks, tok+".used_percent", round2(float64(used)/float64(room)*100), unitPercent)
		}
	}
}

// mountToken names a mount point: "/" is root, "/mnt/data" is mnt_data.
func mountToken(p string) string {
	return token(strings.Trim(p, "/"), "root")
}

// parseMounts reads /proc/mounts (the fstab format, octal escapes for space,
// tab, newline and backslash).
func parseMounts(b []byte) ([]mount, []error) {
	var mounts []mount
	var bad []error
	for line := range lines(b) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			bad = append(bad, fmt.Errorf("line %q: want source, mount point and type", clip(line)))
			continue
		}
		point := unescapeMount(f[1])
		if !strings.HasPrefix(point, "/") {
			bad = append(bad, fmt.Errorf("line %q: mount point is not absolute", clip(line)))
			continue
		}
		mounts = append(mounts, mount{source: unescapeMount(f[0]), point: point, fstype: f[2]})
	}
	return mounts, bad
}

// unescapeMount undoes the kernel's \ooo escapes.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) && isOctal(s[i+1:i+4]) {
			v, _ := strconv.ParseUint(s[i+1:i+4], 8, 8)
			b.WriteByte(byte(v))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 || s[0] > '3' {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}

// skipDevices are block devices that are not disks: loop files, RAM disks
// and compressed RAM (zram).
var skipDevices = []string{"loop", "ram", "zram"}

// parseDiskstats reads the cumulative bytes read and written of every whole
// block device in /proc/diskstats, leaving out partitions (named the way the
// kernel names them: sda1 of sda, nvme0n1p1 of nvme0n1) and loop, ram and
// zram devices.
func parseDiskstats(b []byte) (map[string]ioBytes, []error) {
	all := map[string]ioBytes{}
	var bad []error
	for line := range lines(b) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) == 7 {
			continue // a partition in the format of kernels before 2.6.25
		}
		if len(f) < 14 {
			bad = append(bad, fmt.Errorf("line %q: want at least 14 fields", clip(line)))
			continue
		}
		name := f[2]
		read, err1 := strconv.ParseUint(f[5], 10, 64)
		written, err2 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil || read > math.MaxUint64/sectorSize || written > math.MaxUint64/sectorSize {
			bad = append(bad, fmt.Errorf("line %q: sector counts are not numbers", clip(line)))
			continue
		}
		all[name] = ioBytes{in: read * sectorSize, out: written * sectorSize}
	}
	devs := map[string]ioBytes{}
	for name, v := range all {
		if slices.ContainsFunc(skipDevices, func(p string) bool { return strings.HasPrefix(name, p) }) || isPartition(name, all) {
			continue
		}
		devs[name] = v
	}
	return devs, bad
}

// isPartition reports whether name is a partition of another device in
// devs, by the kernel's naming: disk+N, or disk+"p"+N when disk ends in a
// digit.
func isPartition(name string, devs map[string]ioBytes) bool {
	end := len(name)
	for end > 0 && name[end-1] >= '0' && name[end-1] <= '9' {
		end--
	}
	if end == len(name) || end == 0 {
		return false
	}
	disk := name[:end]
	if _, ok := devs[disk]; ok && !endsInDigit(disk) {
		return true
	}
	if strings.HasSuffix(disk, "p") {
		disk = disk[:len(disk)-1]
		if _, ok := devs[disk]; ok && endsInDigit(disk) {
			return true
		}
	}
	return false
}

func endsInDigit(s string) bool { return s != "" && s[len(s)-1] >= '0' && s[len(s)-1] <= '9' }

// --- network ---

func (s *sampler) sampleNetwork(cur *counters, r *result) {
	b, ok := s.read("proc/net/dev", r)
	if !ok {
		return
	}
	ifs, bad := parseNetDev(b)
	for _, e := range bad {
		r.bad(s.path("proc/net/dev"), e)
	}
	for name := range ifs {
		if s.interfaces != nil {
			if !slices.Contains(s.interfaces, name) {
				delete(ifs, name)
			}
		} else if name == "lo" && !s.includeLoopback {
			delete(ifs, name)
		}
	}
	cur.net = ifs
	s.rates(GroupNetwork, cur, s.prevOf(func(c *counters) map[string]ioBytes { return c.net }), ifs, "rx_bytes_per_second", "tx_bytes_per_second", r)
}

// parseNetDev reads the received and transmitted bytes of every interface
// in /proc/net/dev (two header lines, then "name: 8 receive and 8 transmit
// counters").
func parseNetDev(b []byte) (map[string]ioBytes, []error) {
	ifs := map[string]ioBytes{}
	var bad []error
	for line := range lines(b) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue // a header line
		}
		name = strings.TrimSpace(name)
		f := strings.Fields(rest)
		if name == "" || strings.ContainsAny(name, "|/ \t") || len(f) < 16 {
			if strings.Contains(name, "|") {
				continue // a header line
			}
			bad = append(bad, fmt.Errorf("line %q: want an interface and 16 counters", clip(line)))
			continue
		}
		rx, err1 := strconv.ParseUint(f[0], 10, 64)
		tx, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 != nil || err2 != nil {
			bad = append(bad, fmt.Errorf("line %q: byte counts are not numbers", clip(line)))
			continue
		}
		ifs[name] = ioBytes{in: rx, out: tx}
	}
	return ifs, bad
}

// --- helpers ---

// lines yields b's lines without their line ends.
func lines(b []byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, maxFileBytes+1)
		for sc.Scan() {
			if !yield(sc.Text()) {
				return
			}
		}
	}
}

// token maps a kernel name to a subject token: lower case, [a-z0-9_-], any
// other character (and runs of them) as one '_', none at either end;
// fallback when nothing is left.
func token(s, fallback string) string {
	var b strings.Builder
	under := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' {
			if c == '_' {
				if under {
					continue
				}
				under = true
			} else {
				under = false
			}
			b.WriteByte(c)
			continue
		}
		if !under {
			b.WriteByte('_')
			under = true
		}
	}
	t := strings.Trim(b.String(), "_")
	if t == "" {
		return fallback
	}
	return t
}

// namer hands out unique tokens within a group: a second "acpitz" is
// "acpitz_2".
type namer map[string]bool

func newNamer() namer { return namer{} }

func (n namer) unique(tok string) string {
	name := tok
	for i := 2; n[name]; i++ {
		name = tok + "_" + strconv.Itoa(i)
	}
	n[name] = true
	return name
}

// naturalCompare orders paths with numbers by value: hwmon2 before hwmon10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitsPrefix(a), digitsPrefix(b)
		if da != "" && db != "" {
			na, _ := strconv.ParseUint(da, 10, 64)
			nb, _ := strconv.ParseUint(db, 10, 64)
			if na != nb {
				if na < nb {
					return -1
				}
				return 1
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitsPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, naturalCompare)
	return keys
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }

// clip shortens text quoted in a report.
func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
