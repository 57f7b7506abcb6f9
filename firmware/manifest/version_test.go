package manifest

import (
	"strings"
	"testing"
)

func TestVersionPrecedence(t *testing.T) {
	// Each is lower than the next; the first is the example of SemVer 2.0.0 §11.
	chains := [][]string{
		{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
			"1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "2.1.0", "2.1.1", "10.0.0"},
		{"1.9.0", "1.10.0", "1.11.0"}, // numerically, not as text
		{"0.0.9", "0.1.0", "1.0.0-0", "1.0.0-0.0", "1.0.0-1", "1.0.0-A", "1.0.0-a", "1.0.0"},
		{"1.0.0-rc.9", "1.0.0-rc.10", "1.0.0-rc.10.a"},
		{"2.0.0", "18446744073709551614.0.0", "18446744073709551615.0.0"}, // up to the largest uint64
	}
	for _, c := range chains {
		for i := range c {
			a, err := ParseVersion(c[i])
			if err != nil {
				t.Fatal(err)
			}
			for j := range c {
				b, err := ParseVersion(c[j])
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				switch {
				case i < j:
					want = -1
				case i > j:
					want = 1
				}
				if got := a.Compare(b); got != want {
					t.Errorf("%s vs %s = %d, want %d", c[i], c[j], got, want)
				}
			}
		}
	}
}

func TestVersionEqualPrecedence(t *testing.T) {
	for _, p := range [][2]string{
		{"1.0.0", "1.0.0+20130313144700"},      // build metadata does not count
		{"1.0.0-beta", "1.0.0-beta+exp.sha.5"}, // also with a pre-release
		{"1.0.0+build.1", "1.0.0+build.2"},
		{"v1.4.2", "1.4.2"}, // a device's leading v
	} {
		a, errA := ParseDeviceVersion(p[0])
		b, errB := ParseDeviceVersion(p[1])
		if errA != nil || errB != nil || a.Compare(b) != 0 || b.Compare(a) != 0 {
			t.Errorf("%s vs %s: %d (%v, %v), want 0", p[0], p[1], a.Compare(b), errA, errB)
		}
	}
}

func TestParseVersion(t *testing.T) {
	// Valid versions print back as they are written.
	for _, s := range []string{
		"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
		"1.0.0-x-y-z.--", "1.0.0-alpha+001", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
		"1.0.0+21AF26D3----117B344092BD", "1.1.2-prerelease+meta", "2.0.0-rc.1", "1.0.0-alpha-a.b-c",
		"18446744073709551615.0.0",
	} {
		v, err := ParseVersion(s)
		if err != nil || v.String() != s {
			t.Errorf("ParseVersion(%q) = %s, %v", s, v, err)
		}
	}
}

func TestParseVersionRefuses(t *testing.T) {
	for _, v := range []string{
		"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.1.01", "1.2.3-", "1.2.3-01", "1.2.3-a..b",
		"1.2.3-alpha_beta", "1.2.3+", "1.2.3+meta..x", "+invalid", "-invalid", "alpha", "1.2.3.DEV",
		"1.2-SNAPSHOT", "1.a.3", "-1.0.0", "1.2.3-é", "v1.2.3", " 1.2.3", "1.2.3 ",
		"18446744073709551616.0.0", "99999999999999999999.0.0", // beyond uint64
		strings.Repeat("1", 65),
	} {
		_, err := ParseVersion(v)
		if err == nil {
			t.Errorf("ParseVersion(%q) accepted it", v)
		} else if !strings.HasPrefix(err.Error(), "version ") { // Verify and Admits rely on it
			t.Errorf("ParseVersion(%q): %q does not begin with \"version \"", v, err)
		}
	}
	for _, v := range []string{"v1.2.3", "V1.2.3", "1.2.3"} {
		if _, err := ParseDeviceVersion(v); err != nil {
			t.Errorf("ParseDeviceVersion(%q): %v", v, err)
		}
	}
	for _, v := range []string{"vv1.2.3", "v", "v.1.2.3", "version1.2.3"} {
		if _, err := ParseDeviceVersion(v); err == nil {
			t.Errorf("ParseDeviceVersion(%q) accepted it", v)
		}
	}
}

// FuzzParseVersion: a parsed version prints back as given, and compares
// equal to itself.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "1.0.0-alpha.1+build.5", "0.0.0", "1.2.3-0a", "1.2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			return
		}
		if v.String() != s {
			t.Fatalf("%q prints as %q", s, v.String())
		}
		if v.Compare(v) != 0 {
			t.Fatalf("%q does not equal itself", s)
		}
	})
}
