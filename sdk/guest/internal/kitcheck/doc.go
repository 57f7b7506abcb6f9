// Command kitcheck is a Go guest that calls every function of the guest kit, so that its WASM
// build shows the kit's whole import surface (the kit's build test checks each import against
// sdk/ABI.md) and a host has one module with which to exercise every import and export.
//
// Its transform acts on the input's subject:
//
//	emit.N          emit N copies of the payload (N from 0 to 9), keeping the subject
//	fail            fail the call with the error "asked to fail"
//	panic           panic (a nil map write), which the kit turns into a failed call
//	log             log the payload at Info
//	now             emit guest.Now() as RFC 3339 with nanoseconds
//	state.set       store the payload under the key "k"
//	state.get       emit the value under "k"; fail when there is none
//	state.delete    delete "k"
//	bad.subject     emit under a subject that is not UTF-8 and fail with the kit's error
//	http.fetch      GET the URL in the payload and emit "<status> <body>"; fail with the kit's error
//	(anything else) emit the payload unchanged
//
// Its collector emits the call's time (RFC 3339 with nanoseconds) under the subject of the
// configuration {"subject": "…"} (default "kitcheck.tick"). Its Init refuses {"refuse": true}.
// It must never grow behaviour that the tests of the kit do not check.
package main
