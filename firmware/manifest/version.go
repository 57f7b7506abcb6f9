package manifest

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Version is a semantic version (SemVer 2.0.0).
type Version struct {
	Major, Minor, Patch uint64
	// Pre holds the pre-release identifiers ("rc", "1" of 2.0.0-rc.1).
	Pre []string
	// Build is the build metadata, which precedence ignores.
	Build string
}

// ParseVersion parses a semantic version strictly: MAJOR.MINOR.PATCH with
// optional -pre-release and +build parts, no leading zeros in numbers, no
// leading "v", numbers of at most 64 bits and at most 64 bytes in all. Its
// errors begin with "version", so that a caller can say which version it
// was about with a prefix ("running version …"), and quote s whole only
// when it is at most 64 bytes long.
func ParseVersion(s string) (Version, error) {
	var v Version
	if s == "" {
		return v, fmt.Errorf("version is empty")
	}
	if len(s) > 64 {
		return v, fmt.Errorf("version %.20q… is longer than 64 bytes", s)
	}
	rest, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		if err := identifiers(build, false); err != nil {
			return v, fmt.Errorf("version %q: build metadata: %w", s, err)
		}
		v.Build = build
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		if err := identifiers(pre, true); err != nil {
			return v, fmt.Errorf("version %q: pre-release: %w", s, err)
		}
		v.Pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q must be MAJOR.MINOR.PATCH (e.g. 1.4.2)", s)
	}
	nums := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, err := number(p)
		if err != nil {
			return v, fmt.Errorf("version %q: %w", s, err)
		}
		*nums[i] = n
	}
	return v, nil
}

// ParseDeviceVersion parses the version a device reports, which may have a
// leading "v" (v1.4.2).
func ParseDeviceVersion(s string) (Version, error) {
	if len(s) > 1 && (s[0] == 'v' || s[0] == 'V') && s[1] >= '0' && s[1] <= '9' {
		s = s[1:]
	}
	return ParseVersion(s)
}

func number(p string) (uint64, error) {
	if p == "" || strings.Trim(p, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", p)
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", p)
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", p)
	}
	return n, nil
}

// identifiers checks dot-separated identifiers of [0-9A-Za-z-]; numeric
// pre-release identifiers may not have leading zeros.
func identifiers(s string, pre bool) error {
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return fmt.Errorf("empty identifier in %q", s)
		}
		for _, c := range []byte(id) {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				return fmt.Errorf("identifier %q may only hold 0-9, A-Z, a-z and '-'", id)
			}
		}
		if pre && numeric(id) && len(id) > 1 && id[0] == '0' {
			return fmt.Errorf("numeric identifier %q has a leading zero", id)
		}
	}
	return nil
}

func numeric(id string) bool { return strings.Trim(id, "0123456789") == "" }

// Compare orders versions by SemVer precedence: -1, 0 or +1. Build metadata
// does not count, so 1.0.0+a and 1.0.0+b compare equal.
func (v Version) Compare(w Version) int {
	if c := cmp.Or(cmp.Compare(v.Major, w.Major), cmp.Compare(v.Minor, w.Minor), cmp.Compare(v.Patch, w.Patch)); c != 0 {
		return c
	}
	switch {
	case len(v.Pre) == 0 && len(w.Pre) == 0:
		return 0
	case len(v.Pre) == 0: // a release is above its pre-releases
		return 1
	case len(w.Pre) == 0:
		return -1
	}
	for i := 0; i < len(v.Pre) && i < len(w.Pre); i++ {
		a, b := v.Pre[i], w.Pre[i]
		an, bn := numeric(a), numeric(b)
		var c int
		switch {
		case an && bn:
			c = cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
		case an: // numeric identifiers are below alphanumeric ones
			c = -1
		case bn:
			c = 1
		default:
			c = strings.Compare(a, b)
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(v.Pre), len(w.Pre))
}

// String is the version as SemVer writes it.
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Pre) > 0 {
		s += "-" + strings.Join(v.Pre, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}
