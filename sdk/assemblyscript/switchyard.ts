// switchyard.ts — the AssemblyScript binding of the Switchyard guest ABI v1 (sdk/ABI.md).
//
// Import what you use from this file in your guest's entry file; export the ABI's entry
// points (sy_abi_version, sy_init, sy_transform, sy_collect) from there yourself:
//
//   import { inputPayload, emit, fail, OK } from "../../../sdk/assemblyscript/switchyard";
//
//   export function sy_abi_version(): i32 { return 1; }
//   export function sy_transform(): i32 {
//     const payload = inputPayload();
//     if (payload == null) return fail("no input message");
//     return emit("", payload) == OK ? 0 : fail("emit refused");
//   }
//
// and compile with the flags of sdk/assemblyscript/README.md, notably `--exportStart
// _initialize` and `--use abort=<this file's path without .ts>/switchyardAbort`, the path
// relative to the folder asc runs in.
//
// The binding is thin: every function maps to one import (or to the "true length" retry of
// the ABI's Memory section), converts AssemblyScript's UTF-16 strings to and from the ABI's
// UTF-8, and returns the host's status codes as they are. The host imports are declared here
// with @external; AssemblyScript imports only those a module actually calls, so a guest that
// never fetches does not import http_fetch.

export * from "./json";
import { decodeUTF8 } from "./json";

// ---------------------------------------------------------------------------------------
// The host's imports, exactly as sdk/ABI.md gives them. Pointers and lengths are usize,
// which is i32 in wasm32.

@external("switchyard_v1", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;
@external("switchyard_v1", "now")
declare function host_now(): i64;
@external("switchyard_v1", "config")
declare function host_config(buf: usize, limit: usize): i32;
@external("switchyard_v1", "input")
declare function host_input(field: i32, buf: usize, limit: usize): i32;
@external("switchyard_v1", "input_time")
declare function host_input_time(): i64;
@external("switchyard_v1", "emit")
declare function host_emit(subject: usize, subjectLen: usize, payload: usize, payloadLen: usize): i32;
@external("switchyard_v1", "state_get")
declare function host_state_get(key: usize, keyLen: usize, buf: usize, limit: usize): i32;
@external("switchyard_v1", "state_set")
declare function host_state_set(key: usize, keyLen: usize, val: usize, valLen: usize): i32;
@external("switchyard_v1", "state_delete")
declare function host_state_delete(key: usize, keyLen: usize): i32;
@external("switchyard_v1", "fail")
declare function host_fail(ptr: usize, len: usize): void;
@external("switchyard_v1", "http_fetch")
declare function host_http_fetch(req: usize, reqLen: usize): i32;
@external("switchyard_v1", "http_response")
declare function host_http_response(buf: usize, limit: usize): i32;
@external("switchyard_v1", "http_error")
declare function host_http_error(buf: usize, limit: usize): i32;

// ---------------------------------------------------------------------------------------
// Status codes (sdk/ABI.md, "Status codes"). Reading functions return a length (>= 0) or one
// of these; the others return one of these.

/** Done. */
export const OK: i32 = 0;
/** No such value: an absent state key; no input message in scope. */
export const ABSENT: i32 = -1;
/** A pointer or length outside memory, a subject that is not UTF-8, a bad field or level. */
export const BAD_ARGUMENT: i32 = -2;
/** A limit of the host: emits or output bytes per call, state size, http_fetch sizes. */
export const LIMIT: i32 = -3;
/** Not allowed here: emit in sy_init; an http_fetch the instance's policy refuses. */
export const NOT_ALLOWED: i32 = -4;
/** http_fetch only: a network, TLS or HTTP error, or its timeout. */
export const FAILED: i32 = -5;

/** statusText names a status code for a message: "ok", "absent", "bad argument", ... */
export function statusText(status: i32): string {
  switch (status) {
    case OK: return "ok";
    case ABSENT: return "absent";
    case BAD_ARGUMENT: return "bad argument";
    case LIMIT: return "limit reached";
    case NOT_ALLOWED: return "not allowed here";
    case FAILED: return "failed";
  }
  return status >= 0 ? "ok" : "status " + status.toString();
}

/** Log levels of log(). Per-message logging belongs at Debug. */
export enum Level {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

// ---------------------------------------------------------------------------------------
// Reading values of the host: the "true length" rule.
//
// Every read passes a buffer and its size; the host returns the value's true length. A read
// first tries a scratch buffer the binding keeps, and copies what fits out of it; a longer
// value is read again into a buffer of exactly its length. The scratch buffer grows up to
// SCRATCH_MAX, so values of a recurring size cost one host call and one allocation.

const SCRATCH_MIN: i32 = 1024;
const SCRATCH_MAX: i32 = 64 * 1024;
let scratch: ArrayBuffer | null = null;

// A reader is one host function that writes a value to (buf, limit) and returns its true
// length or a status. Readers are plain functions (AssemblyScript has no closures), so the
// argument of input and state_get travels in readField and readKey; and each import is
// referenced only by its own reader, so a module imports only what it reads.
type Reader = (buf: usize, limit: usize) => i32;
let readField: i32 = 0;
let readKey: ArrayBuffer = new ArrayBuffer(0);

function readConfigInto(buf: usize, limit: usize): i32 {
  return host_config(buf, limit);
}
function readInputInto(buf: usize, limit: usize): i32 {
  return host_input(readField, buf, limit);
}
function readStateInto(buf: usize, limit: usize): i32 {
  return host_state_get(changetype<usize>(readKey), <usize>readKey.byteLength, buf, limit);
}
function readHTTPResponseInto(buf: usize, limit: usize): i32 {
  return host_http_response(buf, limit);
}
function readHTTPErrorInto(buf: usize, limit: usize): i32 {
  return host_http_error(buf, limit);
}

// The status of the last read that returned null: ABSENT or BAD_ARGUMENT.
let lastReadStatus: i32 = OK;

// read returns a copy of the value, or null with lastReadStatus set when the host answers
// with a status. A value that changes between two reads (only the state can, when another
// module instance writes it) is read again, a bounded number of times.
function read(from: Reader): ArrayBuffer | null {
  let s = scratch;
  if (s == null) {
    s = new ArrayBuffer(SCRATCH_MIN);
    scratch = s;
  }
  let n = from(changetype<usize>(s), <usize>s.byteLength);
  for (let attempt = 0; attempt < 4; attempt++) {
    if (n < 0) {
      lastReadStatus = n;
      return null;
    }
    if (n <= s.byteLength) return s.slice(0, n);
    if (n <= SCRATCH_MAX) {
      // Grow the scratch buffer to the next power of two, and read into it.
      s = new ArrayBuffer(<i32>nextPowerOf2(<u32>n));
      scratch = s;
      n = from(changetype<usize>(s), <usize>s.byteLength);
      continue;
    }
    const exact = new ArrayBuffer(n);
    const m = from(changetype<usize>(exact), <usize>n);
    if (m >= 0 && m <= n) return m == n ? exact : exact.slice(0, m);
    n = m; // changed again: go round
  }
  lastReadStatus = BAD_ARGUMENT; // the value kept changing under us
  return null;
}

function nextPowerOf2(n: u32): u32 {
  return n <= 1 ? 1 : (<u32>1) << (32 - clz<u32>(n - 1));
}

/** The UTF-8 bytes of s (a lone surrogate becomes U+FFFD, so the bytes are always valid UTF-8). */
export function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE);
}

/** The string of UTF-8 bytes b. Decoding is lenient; parseJSON checks UTF-8 strictly. */
export function fromUTF8(b: ArrayBuffer): string {
  return decodeUTF8(changetype<usize>(b), b.byteLength);
}

// ---------------------------------------------------------------------------------------
// Configuration and input.

/**
 * The plugin instance's configuration: a JSON object as UTF-8 bytes ("{}" without settings).
 * Read it in sy_init and decode it strictly with parseJSON: refuse unknown keys and wrong
 * types with fail(), naming the key.
 */
export function config(): ArrayBuffer {
  const b = read(readConfigInto);
  return b != null ? b : utf8("{}");
}

/** The configuration as text. */
export function configText(): string {
  return fromUTF8(config());
}

/** The input message's payload (possibly empty), or null when there is no input (sy_init, sy_collect). */
export function inputPayload(): ArrayBuffer | null {
  readField = 0;
  return read(readInputInto);
}

/** The input message's subject, or "" when there is no input. */
export function inputSubject(): string {
  readField = 1;
  const b = read(readInputInto);
  return b != null ? fromUTF8(b) : "";
}

/** Where the input message was made (a plugin instance id, or device.<id>), or "" when there is no input. */
export function inputSource(): string {
  readField = 2;
  const b = read(readInputInto);
  return b != null ? fromUTF8(b) : "";
}

/**
 * The input message's time in Unix nanoseconds in sy_transform; the call's time in sy_collect
 * (the time outputs take); 0 in sy_init, and 0 when the message has no time.
 */
export function inputTime(): i64 {
  return host_input_time();
}

/** The host's clock, in Unix nanoseconds. */
export function now(): i64 {
  return host_now();
}

// ---------------------------------------------------------------------------------------
// Output.

/**
 * emit queues one output message of the current call and returns the host's status: OK,
 * BAD_ARGUMENT (a subject that is not valid UTF-8; "" in a collector), LIMIT (this call may
 * emit no more: stop emitting), NOT_ALLOWED (in sy_init). subject "" keeps the input's
 * subject. The host copies both; outputs are delivered only when the call returns 0.
 */
export function emit(subject: string, payload: ArrayBuffer): i32 {
  const s = utf8(subject);
  return host_emit(changetype<usize>(s), <usize>s.byteLength, changetype<usize>(payload), <usize>payload.byteLength);
}

/** emitText is emit with a text payload (encoded as UTF-8). */
export function emitText(subject: string, payload: string): i32 {
  return emit(subject, utf8(payload));
}

// ---------------------------------------------------------------------------------------
// State: a key/value store of bytes belonging to the plugin instance, shared by its module
// instances (no transactions: each call is atomic on its own) and bounded by the host.

/** The value stored under key, or null when there is none. */
export function stateGet(key: string): ArrayBuffer | null {
  readKey = utf8(key);
  return read(readStateInto);
}

/** stateGetText is stateGet for a text value. */
export function stateGetText(key: string): string | null {
  const b = stateGet(key);
  return b != null ? fromUTF8(b) : null;
}

/** Stores a copy of value under key. Returns OK, or LIMIT when the state would exceed its size limit (nothing stored). */
export function stateSet(key: string, value: ArrayBuffer): i32 {
  const k = utf8(key);
  return host_state_set(changetype<usize>(k), <usize>k.byteLength, changetype<usize>(value), <usize>value.byteLength);
}

/** stateSetText is stateSet for a text value. */
export function stateSetText(key: string, value: string): i32 {
  return stateSet(key, utf8(value));
}

/** Removes key; OK also when it was absent. */
export function stateDelete(key: string): i32 {
  const k = utf8(key);
  return host_state_delete(changetype<usize>(k), <usize>k.byteLength);
}

// ---------------------------------------------------------------------------------------
// Log and errors.

/** Writes a line to the host's log, attributed to the plugin instance. */
export function log(level: Level, msg: string): void {
  const b = utf8(msg);
  host_log(<i32>level, changetype<usize>(b), <usize>b.byteLength);
}

/**
 * fail gives the error message of the current call and returns 1, so that an entry point
 * reports and fails in one statement: `return fail("payload: not JSON: " + r.error)`. Keep
 * the message short and lower-case, context first.
 */
export function fail(msg: string): i32 {
  const b = utf8(msg);
  host_fail(changetype<usize>(b), <usize>b.byteLength);
  return 1;
}

/**
 * switchyardAbort replaces AssemblyScript's abort, which would import env.abort (refused by
 * the host): compile with `--use abort=<path of this file, without .ts>/switchyardAbort`.
 * AssemblyScript calls abort for a `throw`, a failed assert, an index out of range or a null
 * where none may be. It writes the message to the host's log at level Error, gives it with
 * fail() too, then traps: the call fails and the host discards the module instance and
 * replaces it with a fresh one (sdk/ABI.md, Errors). Report expected problems with fail()
 * and a non-zero result instead: they keep the module instance.
 */
export function switchyardAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let msg = "abort: " + (message != null ? message : "(no message)");
  if (fileName != null) msg += " (" + fileName + ":" + line.toString() + ":" + column.toString() + ")";
  log(Level.Error, msg);
  fail(msg);
  unreachable();
}

// ---------------------------------------------------------------------------------------
// HTTP, for collectors (sdk/ABI.md, http_fetch). A module that calls these imports them, and
// loads only on a host that has them.

/**
 * httpFetch makes the request described by requestJSON ({"method","url","headers","body"})
 * and returns the length of the response JSON (read it with httpResponse), or a status:
 * BAD_ARGUMENT, LIMIT, NOT_ALLOWED or FAILED; httpError() then says why.
 */
export function httpFetch(requestJSON: string): i32 {
  const b = utf8(requestJSON);
  return host_http_fetch(changetype<usize>(b), <usize>b.byteLength);
}

/** The response JSON ({"status","headers","body"|"body_base64"}) of the call's last successful httpFetch, or null. */
export function httpResponse(): ArrayBuffer | null {
  return read(readHTTPResponseInto);
}

/** Why the call's last httpFetch failed, or "" when it did not. */
export function httpError(): string {
  const b = read(readHTTPErrorInto);
  return b != null ? fromUTF8(b) : "";
}

/** The status of the last read that returned null (ABSENT or BAD_ARGUMENT). */
export function lastStatus(): i32 {
  return lastReadStatus;
}
