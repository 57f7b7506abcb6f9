package device

import "testing"

func TestCompareVersionsPrecedence(t *testing.T) {
	// The precedence examples of semver.org §11, each lower than the next.
	chains := [][]string{
		{"1.0.0", "2.0.0", "2.1.0", "2.1.1"},
		{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"},
		{"1.9.0", "1.10.0", "1.11.0"}, // numerically, not as text
		{"0.0.9", "0.1.0", "1.0.0-0", "1.0.0-0.0", "1.0.0-1", "1.0.0-A", "1.0.0-a", "1.0.0"},
		{"1.0.0-rc.9", "1.0.0-rc.10", "1.0.0-rc.10.a"},
		{"2.0.0", "18446744073709551616.0.0", "18446744073709551617.0.0"}, // beyond uint64
	}
	for _, c := range chains {
		for i := range c {
			for j := range c {
				want := 0
				switch {
				case i < j:
					want = -1
				case i > j:
					want = 1
				}
				got, err := CompareVersions(c[i], c[j])
				if err != nil || got != want {
					t.Errorf("CompareVersions(%q, %q) = %d, %v; want %d", c[i], c[j], got, err, want)
				}
			}
		}
	}
}

func TestCompareVersionsEqual(t *testing.T) {
	for _, p := range [][2]string{
		{"1.0.0", "1.0.0+20130313144700"},      // build metadata is ignored
		{"1.0.0-beta", "1.0.0-beta+exp.sha.5"}, // also with a prerelease
		{"1.0.0+a", "1.0.0+b"},
		{"v1.4.2", "1.4.2"}, // a leading v
	} {
		if got, err := CompareVersions(p[0], p[1]); err != nil || got != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, %v; want 0", p[0], p[1], got, err)
		}
	}
}

func TestParseSemver(t *testing.T) {
	valid := []string{
		"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
		"1.0.0-x-y-z.--", "1.0.0-alpha+001", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
		"1.0.0+21AF26D3----117B344092BD", "1.1.2-prerelease+meta", "2.0.0-rc.1", "1.0.0-alpha-a.b-c",
	}
	for _, s := range valid {
		if _, err := parseSemver(s); err != nil {
			t.Errorf("parseSemver(%q): %v", s, err)
		}
	}
	invalid := []string{
		"", "1", "1.2", "1.2.3.4", "01.1.1", "1.01.1", "1.1.01", "1.2.3-", "1.2.3+", "1.2.3-0123",
		"1.2.3-alpha..1", "1.2.3-alpha_beta", "1.2.3+meta..x", "+invalid", "-invalid", "alpha",
		"1.2.3.DEV", "1.2-SNAPSHOT", "v1.2.3", " 1.2.3", "1.2.3 ", "1.a.3", "-1.0.0", "1.0.0-é",
	}
	for _, s := range invalid {
		if _, err := parseSemver(s); err == nil {
			t.Errorf("parseSemver(%q) accepted it", s)
		}
	}
	if _, err := parseRunning("v1.2.3"); err != nil {
		t.Errorf("parseRunning(v1.2.3): %v", err)
	}
	if _, err := parseRunning("vv1.2.3"); err == nil {
		t.Error("parseRunning(vv1.2.3) accepted it")
	}
}
