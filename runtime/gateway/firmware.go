package gateway

import (
	"errors"
	"fmt"
	"os"

	"github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/switchyard/switchyard/firmware"
	"github.com/switchyard/switchyard/graph"
)

// Firmware is the update service the gateway serves to devices (package
// firmware): it hears of hellos, reports and departures, and decides which
// image a download may read. Its methods must not block on the store, and
// must be safe for concurrent use.
type Firmware interface {
	Hello(firmware.Device, firmware.Hello)
	// Status returns firmware.ErrNotOffered or a *graph.InvalidError for a
	// report it cannot use; the device is told so in an error frame.
	Status(firmware.Device, firmware.Status) error
	Gone(firmware.Device)
	// Image opens an image for a device; graph.ErrNotFound when the device
	// may not have it.
	Image(dev firmware.Device, sum string) (*os.File, graph.FirmwareRelease, error)
}

// OfferFirmware sends a device a firmware_offer frame. Like the other
// protocol frames it does not queue behind messages: it is small and rare.
// It returns ErrNotConnected when the device has no session past hello,
// and ErrTooLarge when the frame exceeds max_frame_size.
func (g *Gateway) OfferFirmware(tenant, device string, o firmware.Offer) error {
	frame := mustEncode(firmwareOfferFrame{Type: "firmware_offer", Manifest: o.Manifest, Signature: o.Signature, KeyID: o.KeyID, URL: o.URL})
	if int64(len(frame)) > int64(g.cfg.MaxFrameSize) {
		return fmt.Errorf("gateway: offer to %s/%s: %w: %d bytes, max_frame_size is %d", tenant, device, ErrTooLarge, len(frame), g.cfg.MaxFrameSize)
	}
	s := g.lookup(tenant, device)
	if s == nil {
		return fmt.Errorf("gateway: offer to %s/%s: %w", tenant, device, ErrNotConnected)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() != stateReady {
		return fmt.Errorf("gateway: offer to %s/%s: %w", tenant, device, ErrNotConnected)
	}
	return s.writeLocked("firmware_offer", websocket.TextMessage, frame)
}

// firmwareStatus hands a device's report to the update service, and
// answers a report it cannot use with an error frame.
func (g *Gateway) firmwareStatus(s *session, f inFrame) {
	if g.fw == nil {
		s.reply("error", encodeError(recoverable(ErrCodeNotOffered, "", "firmware_status: this relay offers no firmware")))
		return
	}
	err := g.fw.Status(firmware.Device{Tenant: s.id.Tenant, ID: s.id.Device},
		firmware.Status{Version: f.Version, Status: f.Status, Progress: f.Progress, Reason: f.Reason})
	var inv *graph.InvalidError
	switch {
	case err == nil:
	case errors.Is(err, firmware.ErrNotOffered):
		s.reply("error", encodeError(recoverable(ErrCodeNotOffered, "",
			"firmware_status: version %q was not offered to this device, or its result is recorded", truncate(f.Version, maxTextField))))
	case errors.As(err, &inv):
		s.reply("error", encodeError(recoverable(ErrCodeInvalidFrame, "", "firmware_status: %s", err)))
	default:
		g.log.Warn("gateway: firmware report not recorded", "tenant", s.id.Tenant, "device", s.id.Device, "err", err)
	}
	g.log.Debug("device reported on firmware", "tenant", s.id.Tenant, "device", s.id.Device,
		"version", f.Version, "status", f.Status, "progress", f.Progress, "reason", f.Reason)
}
