package graph

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"
)

// The records of over-the-air firmware updates. Package firmware gives them
// their meaning (versions, manifests, rollout stages); the checks here are
// the ones that need no parsing beyond patterns, so that no backend stores a
// record another part of the relay could not read back.

var (
	// modelPattern: a device model as firmware releases name it.
	modelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// versionPattern: the characters of a semantic version (firmware
	// parses it); at most 64 bytes.
	versionPattern = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,64}$`)
)

// Limits of firmware records.
const (
	// MaxReleaseNotes is the size of a release's notes, in bytes.
	MaxReleaseNotes = 16 << 10
	// MaxFirmwareEvents is how many events a device's firmware history
	// keeps; older ones are dropped first.
	MaxFirmwareEvents = 100
	// MaxFirmwareReason is the size of a failure's reason, in bytes.
	MaxFirmwareReason = 256
)

// ValidModel checks a device model named by a firmware release or rollout:
// 1–64 characters of letters, digits, '.', '_' and '-', starting with a
// letter or digit (case counts). Models appear in download paths and
// manifests, hence the narrow set.
func ValidModel(field, model string) error {
	if model == "" {
		return Invalid(field, "is required")
	}
	if !modelPattern.MatchString(model) {
		return Invalid(field, "%q must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', starting with a letter or digit", model)
	}
	return nil
}

func validVersionChars(field, v string, required bool) error {
	if v == "" {
		if required {
			return Invalid(field, "is required")
		}
		return nil
	}
	if !versionPattern.MatchString(v) {
		return Invalid(field, "%q must be a semantic version (1-64 characters of 0-9, A-Z, a-z, '.', '+', '-')", v)
	}
	return nil
}

// FirmwareRelease is one firmware image of a device model at a version.
// The image's bytes are kept apart, addressed by SHA256; the record holds
// what a device needs to decide, and the signed manifest it verifies.
type FirmwareRelease struct {
	Meta
	Model   string `json:"model"`
	Version string `json:"version"`
	// MinVersion, when set, is the oldest version a device may update
	// from; older devices need an intermediate release first.
	MinVersion string `json:"min_version,omitempty"`
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256"` // lower-case hex
	Notes      string `json:"notes,omitempty"`
	// Manifest is the signed manifest, byte for byte as devices receive it;
	// Signature is its Ed25519 signature (base64) by the key KeyID names.
	Manifest  string `json:"manifest"`
	Signature string `json:"signature"`
	KeyID     string `json:"key_id"`
}

// Validate checks the release's fields and reports every problem found.
func (r *FirmwareRelease) Validate() error {
	errs := []error{
		ValidID("id", r.ID), ValidModel("model", r.Model),
		validVersionChars("version", r.Version, true), validVersionChars("min_version", r.MinVersion, false),
	}
	if r.Size <= 0 {
		errs = append(errs, Invalid("size", "must be positive, not %d", r.Size))
	}
	if !sha256Pattern.MatchString(r.SHA256) {
		errs = append(errs, Invalid("sha256", "%q must be 64 lower-case hex digits", r.SHA256))
	}
	if len(r.Notes) > MaxReleaseNotes {
		errs = append(errs, Invalid("notes", "is %d bytes, more than %d", len(r.Notes), MaxReleaseNotes))
	}
	if r.Manifest == "" {
		errs = append(errs, Invalid("manifest", "is required"))
	}
	if r.Signature == "" {
		errs = append(errs, Invalid("signature", "is required"))
	}
	if r.KeyID == "" {
		errs = append(errs, Invalid("key_id", "is required"))
	}
	return errors.Join(errs...)
}

// Rollout states.
const (
	RolloutActive = "active" // offering the release to the devices of its stage
	RolloutPaused = "paused" // an operator paused it: no new offers
	RolloutHalted = "halted" // its stage failed too often: no new offers
)

// Rollout offers a release to a tenant's devices of its model (and, with a
// selector, of those labels), stage by stage: each stage admits Percent of
// them, and an operator raises it, canary to 100.
type Rollout struct {
	Meta
	Model   string `json:"model"`
	Version string `json:"version"`
	// Selector limits the rollout to devices whose labels contain all of
	// it; empty: every device of the model.
	Selector map[string]string `json:"selector,omitempty"`
	// Percent is the share of the eligible devices the current stage
	// admits, 1–100.
	Percent int    `json:"percent"`
	State   string `json:"state"`
	// Reason says why the rollout is halted (or was paused).
	Reason string `json:"reason,omitempty"`
	// MaxFailureRate halts the rollout when the share of failures among a
	// stage's results passes it (0–1) ...
	MaxFailureRate float64 `json:"max_failure_rate"`
	// ... once the stage has at least MinResults results.
	MinResults int `json:"min_results"`
	// ResultTimeout is how long an offered device has to report a result
	// (a Go duration) before it counts as failed.
	ResultTimeout string `json:"result_timeout"`
	// Stages is every stage so far, the current one last.
	Stages []RolloutStage `json:"stages"`
}

// RolloutStage counts what happened to the devices first offered the
// release during one stage.
type RolloutStage struct {
	Percent   int       `json:"percent"`
	StartedAt time.Time `json:"started_at"`
	Offered   int       `json:"offered"`
	Installed int       `json:"installed"`
	Failed    int       `json:"failed"`
}

// Validate checks the rollout's fields and reports every problem found.
func (r *Rollout) Validate() error {
	errs := []error{
		ValidID("id", r.ID), ValidModel("model", r.Model), validVersionChars("version", r.Version, true),
		validLabels("selector", r.Selector),
	}
	if r.Percent < 1 || r.Percent > 100 {
		errs = append(errs, Invalid("percent", "must be 1 to 100, not %d", r.Percent))
	}
	switch r.State {
	case RolloutActive, RolloutPaused, RolloutHalted:
	default:
		errs = append(errs, Invalid("state", "%q must be %s, %s or %s", r.State, RolloutActive, RolloutPaused, RolloutHalted))
	}
	if r.MaxFailureRate < 0 || r.MaxFailureRate > 1 || math.IsNaN(r.MaxFailureRate) {
		errs = append(errs, Invalid("max_failure_rate", "must be 0 to 1"))
	}
	if r.MinResults < 1 {
		errs = append(errs, Invalid("min_results", "must be at least 1, not %d", r.MinResults))
	}
	if d, err := time.ParseDuration(r.ResultTimeout); err != nil || d <= 0 {
		errs = append(errs, Invalid("result_timeout", "%q must be a positive Go duration, e.g. \"30m\"", r.ResultTimeout))
	}
	if len(r.Stages) == 0 {
		errs = append(errs, Invalid("stages", "a rollout has at least one stage"))
	}
	for i, s := range r.Stages {
		if s.Percent < 1 || s.Percent > 100 || s.Offered < 0 || s.Installed < 0 || s.Failed < 0 {
			errs = append(errs, Invalid(fmt.Sprintf("stages[%d]", i), "percent must be 1 to 100 and counts not negative"))
		}
	}
	return errors.Join(errs...)
}

// Firmware statuses a device goes through for one offer, in order; failed
// may come at any point.
const (
	FirmwareOffered     = "offered"
	FirmwareDownloading = "downloading"
	FirmwareDownloaded  = "downloaded"
	FirmwareVerified    = "verified"
	FirmwareInstalling  = "installing"
	FirmwareInstalled   = "installed"
	FirmwareFailed      = "failed"
)

// FirmwareStatuses lists every status, in the order a device goes through
// them.
var FirmwareStatuses = []string{
	FirmwareOffered, FirmwareDownloading, FirmwareDownloaded, FirmwareVerified,
	FirmwareInstalling, FirmwareInstalled, FirmwareFailed,
}

// FirmwareEvent is one step of a device's firmware history.
type FirmwareEvent struct {
	Time    time.Time `json:"time"`
	Rollout string    `json:"rollout,omitempty"`
	// Stage is the index of the rollout's stage the device was offered in.
	Stage  int    `json:"stage,omitempty"`
	From   string `json:"from,omitempty"` // the version the device ran
	To     string `json:"to"`             // the version offered
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"` // with failed
}

// FirmwareHistory is what happened to one device's firmware, oldest event
// first. Its ID is the device's.
type FirmwareHistory struct {
	Meta
	Events []FirmwareEvent `json:"events"`
}

// Validate checks the history's fields and reports every problem found.
func (h *FirmwareHistory) Validate() error {
	errs := []error{ValidID("id", h.ID)}
	if len(h.Events) > MaxFirmwareEvents {
		errs = append(errs, Invalid("events", "has %d events, more than %d", len(h.Events), MaxFirmwareEvents))
	}
	for i, e := range h.Events {
		field := fmt.Sprintf("events[%d]", i)
		if e.Time.IsZero() {
			errs = append(errs, Invalid(field+".time", "is required"))
		}
		if e.Rollout != "" {
			errs = append(errs, ValidID(field+".rollout", e.Rollout))
		}
		errs = append(errs, validVersionChars(field+".to", e.To, true))
		if e.From != "" && len(e.From) > 64 {
			errs = append(errs, Invalid(field+".from", "is longer than 64 bytes"))
		}
		if !validStatus(e.Status) {
			errs = append(errs, Invalid(field+".status", "%q is not a firmware status", e.Status))
		}
		if e.Stage < 0 {
			errs = append(errs, Invalid(field+".stage", "must not be negative"))
		}
		if len(e.Reason) > MaxFirmwareReason {
			errs = append(errs, Invalid(field+".reason", "is longer than %d bytes", MaxFirmwareReason))
		}
	}
	return errors.Join(errs...)
}

func validStatus(s string) bool { return slices.Contains(FirmwareStatuses, s) }
