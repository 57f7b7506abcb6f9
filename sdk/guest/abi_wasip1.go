//go:build wasip1

package guest

import (
	"unsafe"

	"github.com/switchyard/switchyard/sdk/guest/internal/abi"
)

// This file is the only one that talks to the host: the imports of the switchyard_v1 module
// and the sy_* exports, as sdk/ABI.md specifies them. A pointer is an offset into the module's
// memory (32 bits on wasm), so unsafe.Pointer and uint32 lengths lower to the ABI's i32.

//go:wasmimport switchyard_v1 log
func abiLog(level int32, msg unsafe.Pointer, msgLen uint32)

//go:wasmimport switchyard_v1 now
func abiNow() int64

//go:wasmimport switchyard_v1 config
func abiConfig(buf unsafe.Pointer, limit uint32) int32

//go:wasmimport switchyard_v1 input
func abiInput(field int32, buf unsafe.Pointer, limit uint32) int32

//go:wasmimport switchyard_v1 input_time
func abiInputTime() int64

//go:wasmimport switchyard_v1 emit
func abiEmit(subject unsafe.Pointer, subjectLen uint32, payload unsafe.Pointer, payloadLen uint32) int32

//go:wasmimport switchyard_v1 state_get
func abiStateGet(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, limit uint32) int32

//go:wasmimport switchyard_v1 state_set
func abiStateSet(key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32) int32

//go:wasmimport switchyard_v1 state_delete
func abiStateDelete(key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport switchyard_v1 fail
func abiFail(msg unsafe.Pointer, msgLen uint32)

//go:wasmimport switchyard_v1 http_fetch
func abiHTTPFetch(req unsafe.Pointer, reqLen uint32) int32

//go:wasmimport switchyard_v1 http_response
func abiHTTPResponse(buf unsafe.Pointer, limit uint32) int32

//go:wasmimport switchyard_v1 http_error
func abiHTTPError(buf unsafe.Pointer, limit uint32) int32

//go:wasmexport sy_abi_version
func syABIVersion() int32 { return abi.Version }

//go:wasmexport sy_init
func syInit() int32 { return result(runInit()) }

//go:wasmexport sy_transform
func syTransform() int32 { return result(runTransform()) }

//go:wasmexport sy_collect
func syCollect() int32 { return result(runCollect()) }

// result hands a call's error to the host's fail import and turns it into the export's
// result: 0 for success, 1 for failure.
func result(err error) int32 {
	if err == nil {
		return 0
	}
	msg := err.Error()
	abiFail(strPtr(msg), uint32(len(msg)))
	return 1
}

// Buffers reused from call to call, so that a call allocates only what it hands to the
// author: payloadBuf holds the input payload, scratch the input's subject and source and
// first tries at state values. They start big enough for usual messages, so that the first
// read rarely has to ask twice, and grow to the largest value seen. Calls never overlap
// within an instance.
var (
	payloadBuf = make([]byte, 0, 1024)
	scratch    = make([]byte, 0, 256)
	// The last input subject and source, handed out again without allocating when the next
	// message has the same ones, as is usual.
	lastSubject, lastSource string
)

func strPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func sysLog(level int32, msg string) {
	abiLog(level, strPtr(msg), uint32(len(msg)))
}

func sysNow() int64 { return abiNow() }

func sysInputTime() int64 { return abiInputTime() }

func sysConfig() []byte {
	config, _ := readHost(nil, abiConfig)
	return config
}

// sysInput reads the message in scope; false when there is none.
func sysInput() (Message, bool) {
	var n int32
	payloadBuf, n = readHost(payloadBuf, func(buf unsafe.Pointer, limit uint32) int32 {
		return abiInput(abi.FieldPayload, buf, limit)
	})
	if n < 0 {
		return Message{}, false
	}
	return Message{
		Subject: inputString(abi.FieldSubject, &lastSubject),
		Source:  inputString(abi.FieldSource, &lastSource),
		Time:    fromUnixNano(abiInputTime()),
		Payload: payloadBuf,
	}, true
}

// inputString reads a string field of the input through scratch and returns *last when the
// value is unchanged, or else a new string that it also stores in *last.
func inputString(field int32, last *string) string {
	scratch, _ = readHost(scratch, func(buf unsafe.Pointer, limit uint32) int32 {
		return abiInput(field, buf, limit)
	})
	if string(scratch) != *last {
		*last = string(scratch)
	}
	return *last
}

func sysEmit(subject string, payload []byte) int32 {
	return abiEmit(strPtr(subject), uint32(len(subject)), bytesPtr(payload), uint32(len(payload)))
}

// sysStateGet returns a new slice of exactly the value's length: a first try goes through
// scratch, a longer value is read straight into its own allocation.
func sysStateGet(key string) ([]byte, int32) {
	val, n := readHost(scratch, func(buf unsafe.Pointer, limit uint32) int32 {
		return abiStateGet(strPtr(key), uint32(len(key)), buf, limit)
	})
	if n < 0 {
		return nil, n
	}
	if int(n) <= cap(scratch) { // the value is in scratch, which the next call reuses
		val = append(make([]byte, 0, n), val...)
	}
	return val, n
}

func sysStateSet(key string, val []byte) int32 {
	return abiStateSet(strPtr(key), uint32(len(key)), bytesPtr(val), uint32(len(val)))
}

func sysStateDelete(key string) int32 {
	return abiStateDelete(strPtr(key), uint32(len(key)))
}

// sysHTTPFetch sends the request JSON and returns the response JSON, read into a buffer of the
// length http_fetch announced, or the negative status and the reason http_error gives.
func sysHTTPFetch(req []byte) ([]byte, int32, string) {
	n := abiHTTPFetch(bytesPtr(req), uint32(len(req)))
	if n < 0 {
		reason, m := readHost(scratch, abiHTTPError)
		if m < 0 {
			return nil, n, ""
		}
		return nil, n, string(reason)
	}
	resp, m := readHost(make([]byte, 0, n), abiHTTPResponse)
	if m < 0 {
		return nil, m, "the host kept no response"
	}
	return resp, n, ""
}
