package loadtest

import (
	"os"
	"strings"
	"testing"
)

// statusSample is the head of a real /proc/<pid>/status on Linux 6.x.
const statusSample = `Name:	switchyard-load
Umask:	0022
State:	S (sleeping)
Tgid:	4242
Pid:	4242
VmPeak:	 1261844 kB
VmSize:	 1261844 kB
VmLck:	       0 kB
VmHWM:	   41212 kB
VmRSS:	   39832 kB
RssAnon:	   31024 kB
RssFile:	    8808 kB
Threads:	7
`

func TestParseResident(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      Resident
		wantError bool
	}{
		{name: "real status", in: statusSample, want: Resident{Total: 39832 << 10, Anon: 31024 << 10, File: 8808 << 10}},
		{name: "zero", in: "VmRSS:\t       0 kB\n", want: Resident{}},
		{name: "old kernel: no RssAnon", in: "VmRSS:\t 12 kB\n", want: Resident{Total: 12 << 10}},
		{name: "no line (kernel thread)", in: "Name:\tkthreadd\nState:\tS\n", wantError: true},
		{name: "only RssAnon", in: "RssAnon:\t 12 kB\n", wantError: true},
		{name: "wrong unit", in: "VmRSS:\t 12 MB\n", wantError: true},
		{name: "not a number", in: "VmRSS:\t 1x2 kB\n", wantError: true},
		{name: "bad RssFile", in: "VmRSS:\t 12 kB\nRssFile:\t -1 kB\n", wantError: true},
		{name: "empty", in: "", wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResident(strings.NewReader(tt.in))
			if (err != nil) != tt.wantError {
				t.Fatalf("ParseResident error = %v, want error %v", err, tt.wantError)
			}
			if got != tt.want {
				t.Fatalf("ParseResident = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReadRSSOwnProcess(t *testing.T) {
	rss, err := ReadRSS(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss < 1<<20 {
		t.Fatalf("own RSS %d bytes, want at least 1 MiB for a Go test binary", rss)
	}
	if _, err := ReadRSS(-1); err == nil {
		t.Fatal("ReadRSS(-1) succeeded")
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []int64
		want int64
	}{
		{nil, 0},
		{[]int64{7}, 7},
		{[]int64{9, 1, 5}, 5},
		{[]int64{4, 1, 3, 2}, 2},
		{[]int64{100, 100, 1, 200, 100}, 100},
	}
	for _, tt := range tests {
		in := append([]int64(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %d, want %d", tt.in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Median reordered its input: %v", tt.in)
			}
		}
	}
}
