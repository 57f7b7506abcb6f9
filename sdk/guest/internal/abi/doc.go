// Package abi holds the numbers of the Switchyard guest ABI v1 (see sdk/ABI.md) that both
// sides of the Go guest kit share: the version, the status codes, and the input fields. It is
// constants only and must never grow code: the ABI itself is spoken by the wasip1 files of
// package guest, and simulated by package native.
package abi
