package host

// The test modules are written in WAT; their assembled .wasm is committed
// next to them so tests need no tools. Reassemble after editing a .wat
// (wat2wasm is in Debian's wabt package):
//
//go:generate sh testdata/assemble.sh
