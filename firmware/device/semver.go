package device

import (
	"fmt"
	"strings"
)

// semver is a parsed SemVer 2.0.0 version. The numbers are kept as digit
// strings (without leading zeros) so that versions of any length compare
// correctly; build metadata is dropped because it takes no part in
// precedence.
type semver struct {
	major, minor, patch string
	pre                 []string // prerelease identifiers; nil for a release
}

// parseSemver parses s strictly by SemVer 2.0.0 (no leading "v").
func parseSemver(s string) (semver, error) {
	var v semver
	core, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		if err := checkIdentifiers(build, false); err != nil {
			return v, fmt.Errorf("build metadata: %w", err)
		}
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre {
		if err := checkIdentifiers(pre, true); err != nil {
			return v, fmt.Errorf("prerelease: %w", err)
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("want MAJOR.MINOR.PATCH")
	}
	for i, p := range parts {
		if !isNumeric(p) {
			return v, fmt.Errorf("%q is not a number", p)
		}
		if len(p) > 1 && p[0] == '0' {
			return v, fmt.Errorf("%q has a leading zero", p)
		}
		switch i {
		case 0:
			v.major = p
		case 1:
			v.minor = p
		case 2:
			v.patch = p
		}
	}
	return v, nil
}

// parseRunning parses the version a device runs: SemVer with one leading
// "v" accepted, as the relay does for the firmware of hello (§8.1).
func parseRunning(s string) (semver, error) {
	return parseSemver(strings.TrimPrefix(s, "v"))
}

// checkIdentifiers checks a dot-separated list of SemVer identifiers:
// non-empty, [0-9A-Za-z-] only and, for prerelease identifiers, numeric
// ones without leading zeros.
func checkIdentifiers(s string, pre bool) error {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return fmt.Errorf("empty identifier")
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return fmt.Errorf("identifier %q may only hold 0-9, A-Z, a-z and '-'", id)
			}
		}
		if pre && isNumeric(id) && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("numeric identifier %q has a leading zero", id)
		}
	}
	return nil
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareNumeric compares digit strings without leading zeros.
func compareNumeric(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// compare orders a and b by SemVer precedence (§11 of the spec).
func (a semver) compare(b semver) int {
	if c := compareNumeric(a.major, b.major); c != 0 {
		return c
	}
	if c := compareNumeric(a.minor, b.minor); c != 0 {
		return c
	}
	if c := compareNumeric(a.patch, b.patch); c != 0 {
		return c
	}
	// A release has higher precedence than any of its prereleases.
	switch {
	case a.pre == nil && b.pre == nil:
		return 0
	case a.pre == nil:
		return 1
	case b.pre == nil:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		xn, yn := isNumeric(x), isNumeric(y)
		var c int
		switch {
		case xn && yn:
			c = compareNumeric(x, y)
		case xn:
			c = -1 // numeric identifiers sort before alphanumeric ones
		case yn:
			c = 1
		default:
			c = strings.Compare(x, y) // ASCII order
		}
		if c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}

// CompareVersions orders two SemVer 2.0.0 versions by precedence: -1 when
// a < b, 0 when they have the same precedence (build metadata is ignored),
// +1 when a > b. A leading "v" is accepted on either, as the relay accepts
// it on the firmware of hello; anything else that is not SemVer is an error.
func CompareVersions(a, b string) (int, error) {
	va, err := parseRunning(a)
	if err != nil {
		return 0, fmt.Errorf("version %q: %w", a, err)
	}
	vb, err := parseRunning(b)
	if err != nil {
		return 0, fmt.Errorf("version %q: %w", b, err)
	}
	return va.compare(vb), nil
}
