package abi

// Version is the major version of the ABI the kit speaks; sy_abi_version returns it.
const Version int32 = 1

// Status codes of the host imports. A non-negative result of a reading import is a length.
const (
	OK          int32 = 0
	Absent      int32 = -1
	BadArgument int32 = -2
	Limit       int32 = -3
	NotAllowed  int32 = -4
	Failed      int32 = -5 // http_fetch only: a network error or a timeout
)

// Fields of the input message, the first argument of the input import.
const (
	FieldPayload int32 = 0
	FieldSubject int32 = 1
	FieldSource  int32 = 2
)
