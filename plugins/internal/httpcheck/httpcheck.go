// Package httpcheck holds the checks the native HTTP plugins
// (collectors.http, brokers.webhook) make of their configuration: an
// endpoint URL and request headers.
package httpcheck

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// URL checks an absolute http or https URL with a host; u is raw parsed
// (nil when it did not parse).
func URL(raw string, u *url.URL) error {
	switch {
	case raw == "":
		return errors.New("is required")
	case u == nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want an http or https URL, got scheme %q", u.Redacted(), u.Scheme)
	case u.Host == "":
		return fmt.Errorf("%q has no host", u.Redacted())
	}
	return nil
}

// Header checks a header name (an RFC 9110 token) and value (no control
// characters but tab).
func Header(name, value string) error {
	if name == "" {
		return errors.New("empty header name")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return fmt.Errorf("header name %q: character %q not allowed", name, c)
		}
	}
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("header %q: the value has a control character", name)
		}
	}
	return nil
}
