package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// ProtocolVersion is the device protocol this gateway speaks
// (firmware/PROTOCOL.md).
const ProtocolVersion = 1

// Close codes of device protocol v1 (firmware/PROTOCOL.md, "Close codes").
const (
	CloseNormal          = 1000 // the relay ends the session normally
	CloseGoingAway       = 1001 // the relay is shutting down; reason carries a reconnect hint
	CloseUnsupportedData = 1003 // a binary frame: the protocol is JSON text only
	CloseInvalidPayload  = 1007 // a text frame that is not valid UTF-8
	CloseTooBig          = 1009 // a frame larger than max_frame_size
	CloseMalformed       = 4000 // not a JSON object, or no string "type"
	CloseProtocolError   = 4002 // frame before hello, unknown type, bad hello
	CloseRevoked         = 4003 // the device was revoked, deleted or its token rotated
	CloseReplaced        = 4004 // a newer connection of the same device took over
	CloseTimeout         = 4008 // no hello, or no frame within the heartbeat timeout
	CloseQueueOverflow   = 4029 // send queue overflow under the "disconnect" policy
)

// Error codes of relay→device "error" frames. The session stays open.
const (
	ErrCodeInvalidFrame   = "invalid_frame"  // a known type with a missing or ill-typed field
	ErrCodeInvalidStream  = "invalid_stream" // a data frame whose stream is not a valid name
	ErrCodeDuplicateHello = "duplicate_hello"
	ErrCodeNotOffered     = "not_offered" // a firmware_status about an update not offered
)

// Limits on fields a device sends (firmware/PROTOCOL.md, "Limits").
const (
	maxTextField     = 64  // model, firmware, each capability, ids, error codes
	maxCapabilities  = 32  // entries in hello.capabilities
	maxStreamLen     = 128 // bytes of a data frame's stream
	maxStreamToken   = 63  // bytes of one '.'-separated token of a stream
	maxErrorMessage  = 256 // bytes of an error frame's message kept for the log, and of a firmware_status reason
	maxCloseReason   = 123 // a close frame's reason (RFC 6455: 125 minus the code)
	frameTypeUnknown = "unknown"
)

// inFrame is one decoded device→relay frame. Only the fields of its type
// are set.
type inFrame struct {
	Type string // hello, heartbeat, data, ack, error or firmware_status

	// hello
	Protocol     int
	Model        string
	Firmware     string
	Capabilities []string

	// heartbeat
	Seq    uint64
	HasSeq bool

	// data
	Stream  string
	Payload json.RawMessage

	// data (optional), ack (required)
	ID string

	// error
	Code    string
	Message string
	Ref     string

	// firmware_status
	Version  string
	Status   string
	Progress int64
	Reason   string
}

// frameError is why a frame was refused. Close != 0: the session ends with
// that close code and Reason. Close == 0: the relay answers with an error
// frame {Code, Reason, Ref} and the session stays open.
type frameError struct {
	Close  int
	Code   string
	Reason string
	Ref    string
}

func (e *frameError) Error() string {
	if e.Close != 0 {
		return fmt.Sprintf("close %d: %s", e.Close, e.Reason)
	}
	return e.Code + ": " + e.Reason
}

func fatal(code int, format string, args ...any) *frameError {
	return &frameError{Close: code, Reason: truncate(fmt.Sprintf(format, args...), maxCloseReason)}
}

func recoverable(code, ref, format string, args ...any) *frameError {
	return &frameError{Code: code, Ref: ref, Reason: fmt.Sprintf(format, args...)}
}

// decodeFrame decodes one text frame a device sent. Keys are matched exactly
// (case-sensitive); unknown keys are ignored so later protocol minor
// revisions can add fields.
func decodeFrame(data []byte) (inFrame, *frameError) {
	var f inFrame
	if !utf8.Valid(data) {
		return f, fatal(CloseInvalidPayload, "frame is not valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return f, fatal(CloseMalformed, "malformed frame: not a JSON object")
	}
	raw, ok := fields["type"]
	if !ok {
		return f, fatal(CloseMalformed, "malformed frame: no \"type\"")
	}
	if err := json.Unmarshal(raw, &f.Type); err != nil || isNull(raw) {
		return f, fatal(CloseMalformed, "malformed frame: \"type\" must be a string")
	}
	switch f.Type {
	case "hello":
		return f, decodeHello(&f, fields)
	case "heartbeat":
		return f, decodeHeartbeat(&f, fields)
	case "data":
		return f, decodeData(&f, fields)
	case "ack":
		return f, decodeAck(&f, fields)
	case "error":
		decodeDeviceError(&f, fields)
		return f, nil
	case "firmware_status":
		return f, decodeFirmwareStatus(&f, fields)
	default:
		return f, fatal(CloseProtocolError, "unknown frame type %q", truncate(f.Type, 32))
	}
}

func decodeHello(f *inFrame, fields map[string]json.RawMessage) *frameError {
	raw, ok := fields["protocol"]
	if !ok {
		return fatal(CloseProtocolError, "hello: \"protocol\" is required (this relay speaks %d)", ProtocolVersion)
	}
	if err := json.Unmarshal(raw, &f.Protocol); err != nil || isNull(raw) {
		return fatal(CloseProtocolError, "hello: \"protocol\" must be an integer (this relay speaks %d)", ProtocolVersion)
	}
	if f.Protocol != ProtocolVersion {
		return fatal(CloseProtocolError, "unsupported protocol %d; this relay speaks %d", f.Protocol, ProtocolVersion)
	}
	for _, field := range []struct {
		name string
		dst  *string
	}{{"model", &f.Model}, {"firmware", &f.Firmware}} {
		if err := optionalText(fields, field.name, field.dst); err != nil {
			return fatal(CloseProtocolError, "hello: %s", err)
		}
	}
	if raw, ok := fields["capabilities"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &f.Capabilities); err != nil {
			return fatal(CloseProtocolError, "hello: \"capabilities\" must be an array of strings")
		}
		if len(f.Capabilities) > maxCapabilities {
			return fatal(CloseProtocolError, "hello: more than %d capabilities", maxCapabilities)
		}
		for i, c := range f.Capabilities {
			if err := checkText(c); err != nil {
				return fatal(CloseProtocolError, "hello: capabilities[%d] %s", i, err)
			}
		}
		if len(f.Capabilities) == 0 {
			f.Capabilities = nil
		}
	}
	return nil
}

func decodeHeartbeat(f *inFrame, fields map[string]json.RawMessage) *frameError {
	raw, ok := fields["seq"]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, &f.Seq); err != nil {
		return recoverable(ErrCodeInvalidFrame, "", "heartbeat: \"seq\" must be an integer from 0 to 18446744073709551615")
	}
	f.HasSeq = true
	return nil
}

func decodeData(f *inFrame, fields map[string]json.RawMessage) *frameError {
	// The id comes first so that the other errors can refer to it.
	if err := optionalText(fields, "id", &f.ID); err != nil {
		return recoverable(ErrCodeInvalidFrame, "", "data: %s", err)
	}
	raw, ok := fields["stream"]
	if !ok || isNull(raw) {
		return recoverable(ErrCodeInvalidFrame, f.ID, "data: \"stream\" is required")
	}
	if err := json.Unmarshal(raw, &f.Stream); err != nil {
		return recoverable(ErrCodeInvalidFrame, f.ID, "data: \"stream\" must be a string")
	}
	if err := validStream(f.Stream); err != nil {
		return recoverable(ErrCodeInvalidStream, f.ID, "data: stream %s", err)
	}
	payload, ok := fields["payload"]
	if !ok {
		return recoverable(ErrCodeInvalidFrame, f.ID, "data: \"payload\" is required (any JSON value)")
	}
	f.Payload = payload
	return nil
}

func decodeAck(f *inFrame, fields map[string]json.RawMessage) *frameError {
	if err := optionalText(fields, "id", &f.ID); err != nil {
		return recoverable(ErrCodeInvalidFrame, "", "ack: %s", err)
	}
	if f.ID == "" {
		return recoverable(ErrCodeInvalidFrame, "", "ack: \"id\" is required")
	}
	return nil
}

// firmwareStatuses are the statuses a device may report (PROTOCOL.md §8.5).
var firmwareStatuses = []string{"downloading", "downloaded", "verified", "installing", "installed", "failed"}

func decodeFirmwareStatus(f *inFrame, fields map[string]json.RawMessage) *frameError {
	if err := optionalText(fields, "version", &f.Version); err != nil {
		return recoverable(ErrCodeInvalidFrame, "", "firmware_status: %s", err)
	}
	if f.Version == "" {
		return recoverable(ErrCodeInvalidFrame, "", "firmware_status: \"version\" is required")
	}
	if err := optionalText(fields, "status", &f.Status); err != nil {
		return recoverable(ErrCodeInvalidFrame, "", "firmware_status: %s", err)
	}
	if !slices.Contains(firmwareStatuses, f.Status) {
		return recoverable(ErrCodeInvalidFrame, "", "firmware_status: \"status\" must be one of %s", strings.Join(firmwareStatuses, ", "))
	}
	if raw, ok := fields["progress"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &f.Progress); err != nil || f.Progress < 0 {
			return recoverable(ErrCodeInvalidFrame, "", "firmware_status: \"progress\" must be a non-negative integer (bytes)")
		}
	}
	if raw, ok := fields["reason"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &f.Reason); err != nil {
			return recoverable(ErrCodeInvalidFrame, "", "firmware_status: \"reason\" must be a string")
		}
		if f.Reason == "" || len(f.Reason) > maxErrorMessage {
			return recoverable(ErrCodeInvalidFrame, "", "firmware_status: \"reason\" must be 1-%d bytes", maxErrorMessage)
		}
	}
	if f.Status == "failed" && f.Reason == "" {
		return recoverable(ErrCodeInvalidFrame, "", "firmware_status: \"reason\" is required with status \"failed\"")
	}
	return nil
}

// decodeDeviceError keeps what it can of an error frame: the relay never
// answers an error with an error.
func decodeDeviceError(f *inFrame, fields map[string]json.RawMessage) {
	for _, field := range []struct {
		name  string
		dst   *string
		limit int
	}{{"code", &f.Code, maxTextField}, {"message", &f.Message, maxErrorMessage}, {"ref", &f.Ref, maxTextField}} {
		var s string
		if raw, ok := fields[field.name]; ok && json.Unmarshal(raw, &s) == nil {
			*field.dst = truncate(s, field.limit)
		}
	}
}

// optionalText decodes fields[name] into dst when present and not null: a
// string of 1–64 bytes without control characters.
func optionalText(fields map[string]json.RawMessage, name string, dst *string) error {
	raw, ok := fields[name]
	if !ok || isNull(raw) {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("%q must be a string", name)
	}
	if err := checkText(*dst); err != nil {
		return fmt.Errorf("%q %s", name, err)
	}
	return nil
}

func checkText(s string) error {
	if s == "" || len(s) > maxTextField {
		return fmt.Errorf("must be 1-%d bytes", maxTextField)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Errorf("must not contain control characters")
		}
	}
	return nil
}

// validStream checks a data frame's stream: one or more tokens separated by
// '.', each 1–63 bytes of a-z, 0-9, '-' and '_'; at most 128 bytes in all.
// The subject of the data is then "device.<device>.<stream>".
func validStream(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > maxStreamLen {
		return fmt.Errorf("is longer than %d bytes", maxStreamLen)
	}
	tok := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if tok == 0 {
				return fmt.Errorf("%q has an empty token", s)
			}
			tok = 0
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			tok++
			if tok > maxStreamToken {
				return fmt.Errorf("%q has a token longer than %d bytes", s, maxStreamToken)
			}
		default:
			return fmt.Errorf("%q may only hold a-z, 0-9, '-', '_' and '.' between tokens", s)
		}
	}
	if tok == 0 {
		return fmt.Errorf("%q has an empty token", s)
	}
	return nil
}

// DataSubject is the subject under which a device's data frame enters the
// junction router: "device.<device>.<stream>".
func DataSubject(device, stream string) string {
	return "device." + device + "." + stream
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Relay→device frames. Times are RFC 3339 in UTC.

type welcomeFrame struct {
	Type                string `json:"type"`
	Protocol            int    `json:"protocol"`
	Session             string `json:"session"`
	Device              string `json:"device"`
	HeartbeatIntervalMS int64  `json:"heartbeat_interval_ms"`
	HeartbeatTimeoutMS  int64  `json:"heartbeat_timeout_ms"`
	MaxFrameSize        int64  `json:"max_frame_size"`
	Time                string `json:"time"`
}

type heartbeatFrame struct {
	Type string  `json:"type"`
	Seq  *uint64 `json:"seq,omitempty"`
	Time string  `json:"time"`
}

type messageFrame struct {
	Type    string          `json:"type"`
	ID      string          `json:"id"`
	Subject string          `json:"subject"`
	Time    string          `json:"time"`
	Payload json.RawMessage `json:"payload"`
	Ack     bool            `json:"ack,omitempty"`
}

type ackFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type firmwareOfferFrame struct {
	Type      string `json:"type"`
	Manifest  string `json:"manifest"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
	URL       string `json:"url"`
}

type errorFrame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// mustEncode marshals a relay frame built from values the gateway already
// validated; it cannot fail for these struct types.
func mustEncode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("gateway: encode relay frame: " + err.Error())
	}
	return b
}

func encodeHeartbeat(f inFrame, now time.Time) []byte {
	hb := heartbeatFrame{Type: "heartbeat", Time: formatTime(now)}
	if f.HasSeq {
		hb.Seq = &f.Seq
	}
	return mustEncode(hb)
}

func encodeAck(id string) []byte { return mustEncode(ackFrame{Type: "ack", ID: id}) }

func encodeError(e *frameError) []byte {
	return mustEncode(errorFrame{Type: "error", Code: e.Code, Message: e.Reason, Ref: e.Ref})
}

// closeCodeLabel is the closes_total label of a close code: the codes of the
// protocol table, 1005 for a device's close frame without a code, 1006 for
// a connection that ended without a close frame, and "other" for any other
// code a device sent.
func closeCodeLabel(code int) string {
	switch code {
	case CloseNormal, CloseGoingAway, 1002, CloseUnsupportedData, 1005, 1006, CloseInvalidPayload, 1008,
		CloseTooBig, 1011, CloseMalformed, CloseProtocolError, CloseRevoked, CloseReplaced,
		CloseTimeout, CloseQueueOverflow:
		return strconv.Itoa(code)
	}
	return "other"
}
