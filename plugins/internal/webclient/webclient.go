// Package webclient is what the native HTTP plugins (collectors.http,
// brokers.webhook) share as HTTP clients: the checks of an endpoint URL and
// request headers in their configuration, a transport of their own, and the
// wording of a request's error.
package webclient

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// UnwrapURLError drops the *url.Error wrapper, which repeats the method and
// the URL (unredacted) that the caller's own message already names.
func UnwrapURLError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		if uerr.Timeout() {
			return fmt.Errorf("timed out: %w", uerr.Err)
		}
		return uerr.Err
	}
	return err
}

// NewTransport is a transport of the instance's own, so that closing its
// idle connections touches no other instance's.
func NewTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return http.DefaultTransport
}

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
