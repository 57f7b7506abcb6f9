// Package firmware is the relay's over-the-air update service: it keeps
// firmware releases (image bytes content-addressed per tenant, metadata and
// a signed manifest in the graph), runs staged rollouts of a release to a
// tenant's devices, follows each device through an update from the reports
// it sends, and keeps every device's firmware history.
//
// The gateway tells the service who said hello (Hello), what a device
// reported (Status) and who left (Gone), asks it which image a download may
// read (Image), and carries the offers the service makes (Offerer). The admin
// API uploads releases and steers rollouts. Firmware never imports the
// runtime: it sees the gateway and the byte store only through the
// interfaces it declares here.
//
// The graph store is the source of truth, never the hot path: Load reads
// releases, rollouts and histories once; a hello, a report or a download is
// answered from memory, and changes are written behind, in batches
// (FlushInterval), and on Close. Releases and rollouts an operator writes
// are written through before the call returns.
//
// The wire format a device sees is firmware/PROTOCOL.md §8; the manifest and
// version rules are package firmware/manifest; the reference device is
// firmware/device. README.md says how rollouts choose devices and when
// they halt.
package firmware
