package guest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// HTTPRequest is a request for HTTPFetch.
type HTTPRequest struct {
	// Method is GET (when empty), POST or PUT; the host refuses others with ErrNotAllowed.
	Method string
	// URL is an absolute http:// or https:// URL whose host the operator listed for the
	// plugin instance.
	URL string
	// Header holds request headers, one value each. Host is refused: the URL names the host.
	Header map[string]string
	// Body is the request body, if any.
	Body []byte
}

// HTTPResponse is what HTTPFetch received.
type HTTPResponse struct {
	// Status is the HTTP status code; a 404 or a 500 is a response, not an error.
	Status int
	// Header holds the response headers, names in canonical form ("Content-Type"), several
	// values of one name joined with ", ".
	Header map[string]string
	// Body is the whole response body.
	Body []byte
}

// The request and response JSON of the http_fetch import (sdk/ABI.md).
type httpRequestJSON struct {
	Method     string            `json:"method,omitempty"`
	URL        string            `json:"url"`
	Headers    map[string]string `json:"headers,omitempty"`
	Body       *string           `json:"body,omitempty"`
	BodyBase64 *string           `json:"body_base64,omitempty"`
}

type httpResponseJSON struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       *string           `json:"body"`
	BodyBase64 *string           `json:"body_base64"`
}

// HTTPFetch makes an HTTP request through the host and waits for the whole response. The host
// lets a plugin instance reach only the hosts its operator listed, follows at most 3
// redirects (each to a listed host), and bounds the fetch in time (its own timeout and the
// call's deadline, which the fetch counts against) and in size. An error wraps the reason the
// host gave and one of:
//   - ErrNotAllowed: the instance may not fetch at all, or not this URL's host or scheme, or
//     this method, or a redirect led to such a URL;
//   - ErrLimit: the request or the response body is larger than the instance allows;
//   - ErrFailed: a network, TLS or HTTP error, or a timeout;
//   - ErrBadArgument: the request is malformed (such as a relative URL or a bad header).
//
// Call it from Init, a transform or a collector; it blocks the call, so prefer collectors.
func HTTPFetch(req HTTPRequest) (HTTPResponse, error) {
	r := httpRequestJSON{Method: req.Method, URL: req.URL, Headers: req.Header}
	if len(req.Body) > 0 {
		if utf8.Valid(req.Body) {
			s := string(req.Body)
			r.Body = &s
		} else {
			s := base64.StdEncoding.EncodeToString(req.Body)
			r.BodyBase64 = &s
		}
	}
	raw, err := json.Marshal(&r)
	if err != nil {
		return HTTPResponse{}, fmt.Errorf("guest: http fetch: %w", err)
	}
	out, status, reason := sysHTTPFetch(raw)
	if status < 0 {
		err := statusError("http fetch", status)
		if reason != "" {
			err = fmt.Errorf("%w: %s", err, reason)
		}
		return HTTPResponse{}, err
	}
	var resp httpResponseJSON
	if err := json.Unmarshal(out, &resp); err != nil {
		return HTTPResponse{}, fmt.Errorf("guest: http fetch: response from the host: %w", err)
	}
	res := HTTPResponse{Status: resp.Status, Header: resp.Headers}
	switch {
	case resp.BodyBase64 != nil:
		if res.Body, err = base64.StdEncoding.DecodeString(*resp.BodyBase64); err != nil {
			return HTTPResponse{}, fmt.Errorf("guest: http fetch: response from the host: body_base64: %w", err)
		}
	case resp.Body != nil:
		res.Body = []byte(*resp.Body)
	}
	return res, nil
}
