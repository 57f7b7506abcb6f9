//! Switchyard guest binding for Rust: the guest ABI v1 (`sdk/ABI.md`) as safe Rust.
//!
//! One file, no crates. Include it in a guest crate as a module named `switchyard` at the crate
//! root (the export macro refers to it by that path):
//!
//! ```ignore
//! #[path = "../../sdk/rust/switchyard.rs"]
//! mod switchyard;
//! ```
//!
//! It gives:
//!
//! - [`Guest`] and [`export!`]: write a transform (or collector) as a type with `init` and
//!   `transform` (or `collect`); the macro writes the `sy_*` exports.
//! - Safe wrappers over every `switchyard_v1` import: [`config`], [`input`], [`emit`],
//!   [`state_get`], [`state_set`], [`state_delete`], [`log`], [`fail`], [`now`],
//!   [`input_time`], [`http_fetch`]. Readers follow the ABI's "true length" rule for you, into a
//!   `Vec` or into a buffer of yours (`*_into`).
//! - [`json`]: a small strict JSON reader and writer, enough for configurations and payloads.
//!
//! It uses only `core` and `alloc`, so it works in a `std` crate and in a `no_std` crate that has
//! a global allocator. It is for single-threaded WebAssembly (`wasm32-unknown-unknown` or
//! `wasm32-wasi`, without the `atomics` feature): the host runs one call at a time per module
//! instance, which is what makes the module's globals safe to use without locks.
//!
//! The host functions are imported lazily: a module imports only those it calls.

#![allow(dead_code)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{Cell, UnsafeCell};
use core::fmt;

#[cfg(target_feature = "atomics")]
compile_error!("switchyard.rs is for single-threaded WebAssembly: build without the atomics feature");

/// The major version of the ABI this binding speaks; `sy_abi_version` returns it.
pub const ABI_VERSION: i32 = 1;

// ---------------------------------------------------------------------------------------------
// Raw imports
// ---------------------------------------------------------------------------------------------

/// The raw `switchyard_v1` imports, exactly as `sdk/ABI.md` gives them in WAT. A pointer and a
/// `usize` are both an `i32` on wasm32. Prefer the safe functions of this module.
pub mod sys {
    #[link(wasm_import_module = "switchyard_v1")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn now() -> i64;
        pub fn config(buf: *mut u8, limit: usize) -> i32;
        pub fn input(field: i32, buf: *mut u8, limit: usize) -> i32;
        pub fn input_time() -> i64;
        pub fn emit(subject: *const u8, subject_len: usize, payload: *const u8, payload_len: usize) -> i32;
        pub fn state_get(key: *const u8, key_len: usize, buf: *mut u8, limit: usize) -> i32;
        pub fn state_set(key: *const u8, key_len: usize, val: *const u8, val_len: usize) -> i32;
        pub fn state_delete(key: *const u8, key_len: usize) -> i32;
        pub fn fail(ptr: *const u8, len: usize);
        pub fn http_fetch(req: *const u8, req_len: usize) -> i32;
        pub fn http_response(buf: *mut u8, limit: usize) -> i32;
        pub fn http_error(buf: *mut u8, limit: usize) -> i32;
    }
}

// ---------------------------------------------------------------------------------------------
// Status codes and errors
// ---------------------------------------------------------------------------------------------

/// A negative result of an import (`sdk/ABI.md`, "Status codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// -1: no such value (an absent state key; no input message in scope).
    Absent,
    /// -2: a pointer or length outside memory, a subject that is not UTF-8, a bad field or level.
    BadArgument,
    /// -3: a limit of the instance: emits or output bytes per call, state size, fetch size.
    Limit,
    /// -4: not allowed here: `emit` in `sy_init`, an `http_fetch` the policy refuses.
    NotAllowed,
    /// -5: `http_fetch` failed (network, TLS, HTTP, timeout).
    Failed,
    /// A code this binding does not know (a newer host).
    Other(i32),
}

impl Status {
    /// The status of a negative import result.
    pub fn from_code(code: i32) -> Status {
        match code {
            -1 => Status::Absent,
            -2 => Status::BadArgument,
            -3 => Status::Limit,
            -4 => Status::NotAllowed,
            -5 => Status::Failed,
            c => Status::Other(c),
        }
    }

    /// The ABI's code of the status.
    pub fn code(self) -> i32 {
        match self {
            Status::Absent => -1,
            Status::BadArgument => -2,
            Status::Limit => -3,
            Status::NotAllowed => -4,
            Status::Failed => -5,
            Status::Other(c) => c,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Status::Absent => "absent",
            Status::BadArgument => "bad argument",
            Status::Limit => "limit reached",
            Status::NotAllowed => "not allowed here",
            Status::Failed => "failed",
            Status::Other(_) => "unknown status",
        };
        write!(f, "{} ({})", what, self.code())
    }
}

/// The error of a guest function: a message for the operator, given to the host with [`fail`]
/// when an export returns it. Keep it short and lower-case, context first
/// (`config: unknown field "factr"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }

    /// The error with `context: ` put in front of its message.
    pub fn context(self, context: &str) -> Error {
        let mut m = String::with_capacity(context.len() + 2 + self.0.len());
        m.push_str(context);
        m.push_str(": ");
        m.push_str(&self.0);
        Error(m)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error(String::from(s))
    }
}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error(s)
    }
}

impl From<Status> for Error {
    fn from(s: Status) -> Error {
        Error(alloc::format!("host: {}", s))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading values: the "true length" rule
// ---------------------------------------------------------------------------------------------

/// Runs a reading import into `out`, growing it when the value does not fit: the import writes at
/// most `limit` bytes and returns the value's true length, so a result above the capacity means
/// "call again with a buffer that large". The value does not change within a call, so the second
/// call always fits; a third is never made.
fn read_vec(out: &mut Vec<u8>, mut read: impl FnMut(*mut u8, usize) -> i32) -> Result<(), Status> {
    out.clear();
    for _ in 0..2 {
        let limit = out.capacity().min(i32::MAX as usize);
        let n = read(out.as_mut_ptr(), limit);
        if n < 0 {
            return Err(Status::from_code(n));
        }
        let n = n as usize;
        if n <= limit {
            // SAFETY: the host wrote the whole value, n bytes, at the start of the buffer, and
            // n is within its capacity.
            unsafe { out.set_len(n) };
            return Ok(());
        }
        out.reserve_exact(n);
    }
    Err(Status::BadArgument) // the value grew between two reads: the host broke the ABI
}

/// Runs a reading import into a caller's buffer: `Ok(true length)`. When it is larger than
/// `buf.len()`, the value did not fit and what `buf` holds is unspecified.
fn read_buf(buf: &mut [u8], read: impl FnOnce(*mut u8, usize) -> i32) -> Result<usize, Status> {
    let limit = buf.len().min(i32::MAX as usize);
    let n = read(buf.as_mut_ptr(), limit);
    if n < 0 {
        Err(Status::from_code(n))
    } else {
        Ok(n as usize)
    }
}

fn utf8(bytes: Vec<u8>) -> Result<String, Status> {
    String::from_utf8(bytes).map_err(|_| Status::BadArgument)
}

// ---------------------------------------------------------------------------------------------
// Configuration and input
// ---------------------------------------------------------------------------------------------

/// The plugin instance's configuration: a JSON object (`{}` when it has none). Read it in
/// `sy_init`; [`export!`] does, and hands it to [`Guest::init`] parsed.
pub fn config() -> Result<Vec<u8>, Status> {
    let mut out = Vec::with_capacity(256);
    read_vec(&mut out, |buf, limit| unsafe { sys::config(buf, limit) })?;
    Ok(out)
}

/// Reads the configuration into `buf`: `Ok(true length)`; larger than `buf.len()` means it did
/// not fit (call again with a buffer at least that large).
pub fn config_into(buf: &mut [u8]) -> Result<usize, Status> {
    read_buf(buf, |b, limit| unsafe { sys::config(b, limit) })
}

/// A field of the input message, for [`input`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The message body: bytes, often JSON, possibly empty.
    Payload = 0,
    /// The dotted subject it was routed on (UTF-8).
    Subject = 1,
    /// Where it was made: a plugin instance id, or `device.<id>` (UTF-8).
    Source = 2,
}

/// A field of the input message. `Err(Status::Absent)` outside `sy_transform`.
pub fn input(field: Field) -> Result<Vec<u8>, Status> {
    let mut out = Vec::with_capacity(if field == Field::Payload { 1024 } else { 128 });
    input_vec(field, &mut out)?;
    Ok(out)
}

/// Reads a field of the input message into `out`, replacing its contents and reusing its
/// capacity: keep one `Vec` across calls and most reads cost no allocation.
pub fn input_vec(field: Field, out: &mut Vec<u8>) -> Result<(), Status> {
    read_vec(out, |buf, limit| unsafe { sys::input(field as i32, buf, limit) })
}

/// Reads a field of the input message into `buf`: `Ok(true length)`; larger than `buf.len()`
/// means it did not fit.
pub fn input_into(field: Field, buf: &mut [u8]) -> Result<usize, Status> {
    read_buf(buf, |b, limit| unsafe { sys::input(field as i32, b, limit) })
}

/// The input message's time in Unix nanoseconds (in `sy_collect`: the call's time; 0 in
/// `sy_init`).
pub fn input_time() -> i64 {
    unsafe { sys::input_time() }
}

/// The host's clock, in Unix nanoseconds.
pub fn now() -> i64 {
    unsafe { sys::now() }
}

/// The input message of a transform call, read by [`export!`] before [`Guest::transform`].
pub struct Input {
    subject: String,
    payload: Vec<u8>,
}

impl Input {
    /// Reads the subject and payload of the message in scope.
    pub fn read() -> Result<Input, Status> {
        let subject = utf8(input(Field::Subject)?)?;
        let payload = input(Field::Payload)?;
        Ok(Input { subject, payload })
    }

    /// The dotted subject the message was routed on (`device.s1.telemetry`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The body, possibly empty.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Where the message was made (read from the host when asked).
    pub fn source(&self) -> Result<String, Status> {
        utf8(input(Field::Source)?)
    }

    /// The message's time, in Unix nanoseconds (0 when it has none).
    pub fn time(&self) -> i64 {
        input_time()
    }
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// Queues one output message on `subject` (an empty subject: the input's). Outputs are delivered
/// when the call returns success, in order. `Err(Status::Limit)`: the call may emit no more; stop
/// emitting (the call may still succeed with what was queued). `Err(Status::NotAllowed)` in
/// `sy_init`; `Err(Status::BadArgument)` for an empty subject in `sy_collect`.
pub fn emit(subject: &str, payload: &[u8]) -> Result<(), Status> {
    let r = unsafe { sys::emit(subject.as_ptr(), subject.len(), payload.as_ptr(), payload.len()) };
    if r < 0 {
        Err(Status::from_code(r))
    } else {
        Ok(())
    }
}

/// Queues one output message on the input's subject.
pub fn emit_same(payload: &[u8]) -> Result<(), Status> {
    emit("", payload)
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/// The value stored under `key`, or `Ok(None)` when the key is absent. The state belongs to the
/// plugin instance: every module instance of its pool sees it, and it outlives a module instance
/// the host replaces. Each call is atomic on its own; there are no transactions.
pub fn state_get(key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Status> {
    let mut out = Vec::with_capacity(256);
    Ok(if state_get_vec(key, &mut out)? { Some(out) } else { None })
}

/// Reads the value under `key` into `out` (replacing its contents): `Ok(false)` when the key is
/// absent.
pub fn state_get_vec(key: impl AsRef<[u8]>, out: &mut Vec<u8>) -> Result<bool, Status> {
    let key = key.as_ref();
    match read_vec(out, |buf, limit| unsafe { sys::state_get(key.as_ptr(), key.len(), buf, limit) }) {
        Ok(()) => Ok(true),
        Err(Status::Absent) => Ok(false),
        Err(s) => Err(s),
    }
}

/// Reads the value under `key` into `buf`: `Ok(Some(true length))`, larger than `buf.len()` when
/// it did not fit; `Ok(None)` when the key is absent.
pub fn state_get_into(key: impl AsRef<[u8]>, buf: &mut [u8]) -> Result<Option<usize>, Status> {
    let key = key.as_ref();
    match read_buf(buf, |b, limit| unsafe { sys::state_get(key.as_ptr(), key.len(), b, limit) }) {
        Ok(n) => Ok(Some(n)),
        Err(Status::Absent) => Ok(None),
        Err(s) => Err(s),
    }
}

/// Stores a copy of `value` under `key`. `Err(Status::Limit)`: the instance's state would exceed
/// its size (nothing was stored).
pub fn state_set(key: impl AsRef<[u8]>, value: &[u8]) -> Result<(), Status> {
    let key = key.as_ref();
    let r = unsafe { sys::state_set(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
    if r < 0 {
        Err(Status::from_code(r))
    } else {
        Ok(())
    }
}

/// Removes `key` (fine when it is absent).
pub fn state_delete(key: impl AsRef<[u8]>) -> Result<(), Status> {
    let key = key.as_ref();
    let r = unsafe { sys::state_delete(key.as_ptr(), key.len()) };
    if r < 0 {
        Err(Status::from_code(r))
    } else {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Logging and failing
// ---------------------------------------------------------------------------------------------

/// A level of the host's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Per-message detail; operators usually turn it off.
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Writes a line to the host's log, attributed to the plugin instance. The host limits the rate.
pub fn log(level: Level, message: &str) {
    unsafe { sys::log(level as i32, message.as_ptr(), message.len()) }
}

/// [`log`] at level Debug.
pub fn debug(message: &str) {
    log(Level::Debug, message)
}

/// [`log`] at level Info.
pub fn info(message: &str) {
    log(Level::Info, message)
}

/// [`log`] at level Warn.
pub fn warn(message: &str) {
    log(Level::Warn, message)
}

/// Gives the error message of the current call. [`export!`] calls it for you with the message of
/// the [`Error`] your function returned; call it yourself only in hand-written exports, right
/// before returning non-zero.
pub fn fail(message: &str) {
    unsafe { sys::fail(message.as_ptr(), message.len()) }
}

/// Reports a panic to the host: writes it to the host's log at error level, and gives it with
/// [`fail`] (a trap ends the call right after; the host discards the module instance, and the log
/// line is what tells the operator why). In a `std` crate, install it once (in [`Guest::init`]):
///
/// ```ignore
/// std::panic::set_hook(std::boxed::Box::new(|p| switchyard::report_panic(p)));
/// ```
///
/// In a `no_std` crate, use [`on_panic`] as the panic handler.
pub fn report_panic(panic: &dyn fmt::Display) {
    let mut message = String::from("panic: ");
    if fmt::write(&mut message, format_args!("{}", panic)).is_err() {
        message.push_str("(unprintable)");
    }
    log(Level::Error, &message);
    fail(&message);
}

/// A `no_std` panic handler: reports the panic with [`fail`] and traps, after which the host
/// discards the module instance and starts a fresh one.
///
/// ```ignore
/// #[panic_handler]
/// fn panic(p: &core::panic::PanicInfo) -> ! { switchyard::on_panic(p) }
/// ```
#[cfg(target_arch = "wasm32")]
pub fn on_panic(panic: &core::panic::PanicInfo) -> ! {
    report_panic(panic);
    core::arch::wasm32::unreachable()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// Why an [`http_fetch`] failed: the status and the host's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    pub status: Status,
    pub reason: String,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http_fetch: {}: {}", self.status, self.reason)
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Error {
        Error(alloc::format!("{}", e))
    }
}

/// Makes the HTTP request described by the JSON `request` (`{"method":"GET","url":"…",
/// "headers":{…},"body":"…"}`) and returns the response JSON (`{"status":200,"headers":{…},
/// "body":"…"}`), see `sdk/ABI.md`. Only hosts the operator listed for the instance are
/// reachable; prefer collectors, since a fetch holds up the call.
pub fn http_fetch(request: &[u8]) -> Result<Vec<u8>, HttpError> {
    let n = unsafe { sys::http_fetch(request.as_ptr(), request.len()) };
    if n < 0 {
        let mut reason = Vec::with_capacity(128);
        let _ = read_vec(&mut reason, |buf, limit| unsafe { sys::http_error(buf, limit) });
        return Err(HttpError { status: Status::from_code(n), reason: String::from_utf8_lossy(&reason).into_owned() });
    }
    let mut out = Vec::with_capacity(n as usize);
    read_vec(&mut out, |buf, limit| unsafe { sys::http_response(buf, limit) })
        .map_err(|status| HttpError { status, reason: String::from("reading the response") })?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// The guest and its exports
// ---------------------------------------------------------------------------------------------

/// A guest: a value built from the configuration once per module instance, then called for each
/// message (a transform) or on a timer (a collector). Implement `transform`, `collect` or both,
/// and name them in [`export!`].
///
/// The value lives in the module instance: fields set in `init` hold the configuration, and
/// fields changed later are lost when the host replaces the module instance (after a trap) and
/// are not shared with the other module instances of the pool. Keep what must last in the
/// [state](state_set).
pub trait Guest: Sized + 'static {
    /// Builds the guest from its configuration, a JSON object (`sy_init`). An error refuses the
    /// configuration, with the error's message. Decode strictly: refuse unknown keys and wrong
    /// types, naming them.
    fn init(config: &json::Value) -> Result<Self, Error>;

    /// Handles one message (`sy_transform`): read it from `input`, [`emit`] zero, one or many
    /// messages, return `Ok`. An error fails the call and discards what it emitted.
    fn transform(&mut self, input: &Input) -> Result<(), Error> {
        let _ = input;
        Err(Error::new("this module is not a transform"))
    }

    /// Produces messages on the host's timer (`sy_collect`); `time` is the call's time in Unix
    /// nanoseconds, which the outputs are stamped with. Every [`emit`] must name a subject.
    fn collect(&mut self, time: i64) -> Result<(), Error> {
        let _ = time;
        Err(Error::new("this module is not a collector"))
    }
}

/// Holds the guest value of a module instance between calls. Only [`export!`] uses it.
#[doc(hidden)]
pub struct Slot<T> {
    value: UnsafeCell<Option<T>>,
    busy: Cell<bool>,
}

// SAFETY: single-threaded WebAssembly (checked above: no atomics, so no threads); the host calls
// one export at a time per module instance, and `busy` refuses re-entry.
unsafe impl<T> Sync for Slot<T> {}

impl<T> Slot<T> {
    pub const fn new() -> Slot<T> {
        Slot { value: UnsafeCell::new(None), busy: Cell::new(false) }
    }

    /// Runs f on the slot's value, unless another call is already inside (None then).
    fn with<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> Option<R> {
        if self.busy.replace(true) {
            return None;
        }
        // SAFETY: `busy` guarantees this is the only reference to the value.
        let r = f(unsafe { &mut *self.value.get() });
        self.busy.set(false);
        Some(r)
    }
}

/// Ends an export with an error: gives its message to the host, returns 1.
fn refuse(e: Error) -> i32 {
    fail(e.message());
    1
}

fn outcome(r: Option<Result<(), Error>>) -> i32 {
    match r {
        Some(Ok(())) => 0,
        Some(Err(e)) => refuse(e),
        None => refuse(Error::new("switchyard: an export was called from inside another")),
    }
}

#[doc(hidden)]
pub fn __init<G: Guest>(slot: &Slot<G>) -> i32 {
    let raw = match config() {
        Ok(raw) => raw,
        Err(s) => return refuse(Error::from(s).context("config")),
    };
    let config = match json::parse(&raw) {
        Ok(v) => v,
        Err(e) => return refuse(Error::new(alloc::format!("config: not JSON: {}", e))),
    };
    outcome(slot.with(|g| {
        *g = Some(G::init(&config)?);
        Ok(())
    }))
}

#[doc(hidden)]
pub fn __transform<G: Guest>(slot: &Slot<G>) -> i32 {
    let input = match Input::read() {
        Ok(input) => input,
        Err(s) => return refuse(Error::from(s).context("reading the input message")),
    };
    outcome(slot.with(|g| match g {
        Some(g) => g.transform(&input),
        None => Err(Error::new("switchyard: sy_init did not succeed")),
    }))
}

#[doc(hidden)]
pub fn __collect<G: Guest>(slot: &Slot<G>) -> i32 {
    let time = input_time();
    outcome(slot.with(|g| match g {
        Some(g) => g.collect(time),
        None => Err(Error::new("switchyard: sy_init did not succeed")),
    }))
}

/// Writes the exports of a guest type: `sy_abi_version`, `sy_init` (which parses the
/// configuration and calls [`Guest::init`]), and `sy_transform` and/or `sy_collect`, as listed.
/// Use it once, at the crate root:
///
/// ```ignore
/// switchyard::export!(Average, transform);
/// switchyard::export!(Weather, collect);
/// switchyard::export!(Both, transform, collect);
/// ```
///
/// It expects this file as the module `switchyard` of the crate root.
macro_rules! __switchyard_export {
    ($guest:ty $(, $kind:ident)+ $(,)?) => {
        static __SWITCHYARD_GUEST: $crate::switchyard::Slot<$guest> = $crate::switchyard::Slot::new();

        /// ABI export: the major version of the ABI the module speaks.
        #[no_mangle]
        pub extern "C" fn sy_abi_version() -> i32 {
            $crate::switchyard::ABI_VERSION
        }

        /// ABI export: reads the configuration and builds the guest.
        #[no_mangle]
        pub extern "C" fn sy_init() -> i32 {
            $crate::switchyard::__init(&__SWITCHYARD_GUEST)
        }

        $( $crate::switchyard::__export_entry!($kind); )+
    };
}

#[doc(hidden)]
macro_rules! __switchyard_export_entry {
    (transform) => {
        /// ABI export: handles the input message in scope.
        #[no_mangle]
        pub extern "C" fn sy_transform() -> i32 {
            $crate::switchyard::__transform(&__SWITCHYARD_GUEST)
        }
    };
    (collect) => {
        /// ABI export: collects, on the host's timer.
        #[no_mangle]
        pub extern "C" fn sy_collect() -> i32 {
            $crate::switchyard::__collect(&__SWITCHYARD_GUEST)
        }
    };
    ($other:ident) => {
        compile_error!(concat!("switchyard::export!: unknown entry point `", stringify!($other), "`: want transform or collect"));
    };
}

pub(crate) use __switchyard_export as export;
#[doc(hidden)]
pub(crate) use __switchyard_export_entry as __export_entry;

// ---------------------------------------------------------------------------------------------
// JSON
// ---------------------------------------------------------------------------------------------

/// A small strict JSON reader and writer (RFC 8259): enough for configurations and payloads.
///
/// - [`parse`] reads a whole document into a [`Value`]. Input must be UTF-8; nesting is bounded
///   by [`MAX_DEPTH`]; `\uXXXX` escapes become UTF-8 (a lone surrogate becomes U+FFFD, as Go's
///   encoding/json does); numbers are `f64`, and one that does not fit (`1e400`) is refused, so a
///   parsed number is always finite. An object keeps its members in order, duplicates included;
///   [`Value::get`] finds the last one.
/// - [`Value::to_json`] writes compact JSON, and refuses a non-finite number. [`write_number`]
///   writes the shortest text that reads back as the same `f64` (`21.5`, `0.1`, `1e+21`), and
///   [`round`] rounds a number to decimals deterministically.
pub mod json {
    use super::alloc;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt;

    /// The deepest nesting of arrays and objects [`parse`] reads, and [`Value::to_json`] writes.
    pub const MAX_DEPTH: usize = 64;

    /// A JSON value.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Value {
        Null,
        Bool(bool),
        /// Always finite when parsed. Integers above 2^53 lose precision.
        Number(f64),
        String(String),
        Array(Vec<Value>),
        /// The members in document order, duplicates included.
        Object(Vec<(String, Value)>),
    }

    impl Value {
        /// An object of the given members, in order.
        pub fn object<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Value {
            Value::Object(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
        }

        /// The member `key` of an object (the last one when it repeats); None for an absent key
        /// or a value that is not an object.
        pub fn get(&self, key: &str) -> Option<&Value> {
            match self {
                Value::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
                _ => None,
            }
        }

        pub fn as_object(&self) -> Option<&[(String, Value)]> {
            match self {
                Value::Object(m) => Some(m),
                _ => None,
            }
        }

        pub fn as_array(&self) -> Option<&[Value]> {
            match self {
                Value::Array(a) => Some(a),
                _ => None,
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::String(s) => Some(s),
                _ => None,
            }
        }

        pub fn as_f64(&self) -> Option<f64> {
            match self {
                Value::Number(n) => Some(*n),
                _ => None,
            }
        }

        /// The number as an integer, when it is one exactly and within ±2^53.
        pub fn as_i64(&self) -> Option<i64> {
            const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
            match *self {
                Value::Number(n) if n >= -EXACT && n <= EXACT && (n as i64) as f64 == n => Some(n as i64),
                _ => None,
            }
        }

        pub fn as_bool(&self) -> Option<bool> {
            match self {
                Value::Bool(b) => Some(*b),
                _ => None,
            }
        }

        pub fn is_null(&self) -> bool {
            matches!(self, Value::Null)
        }

        /// The JSON type's name, for messages: null, boolean, number, string, array, object.
        pub fn kind(&self) -> &'static str {
            match self {
                Value::Null => "null",
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::String(_) => "string",
                Value::Array(_) => "array",
                Value::Object(_) => "object",
            }
        }

        /// The value as compact JSON.
        pub fn to_json(&self) -> Result<String, WriteError> {
            let mut out = String::new();
            self.write_to(&mut out)?;
            Ok(out)
        }

        /// Appends the value as compact JSON to `out`. On error, `out` holds part of it.
        pub fn write_to(&self, out: &mut String) -> Result<(), WriteError> {
            self.write_depth(out, 0)
        }

        fn write_depth(&self, out: &mut String, depth: usize) -> Result<(), WriteError> {
            match self {
                Value::Null => out.push_str("null"),
                Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
                Value::Number(n) => write_number(out, *n)?,
                Value::String(s) => write_string(out, s),
                Value::Array(items) => {
                    if depth >= MAX_DEPTH {
                        return Err(WriteError::TooDeep);
                    }
                    out.push('[');
                    for (i, v) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        v.write_depth(out, depth + 1)?;
                    }
                    out.push(']');
                }
                Value::Object(members) => {
                    if depth >= MAX_DEPTH {
                        return Err(WriteError::TooDeep);
                    }
                    out.push('{');
                    for (i, (k, v)) in members.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write_string(out, k);
                        out.push(':');
                        v.write_depth(out, depth + 1)?;
                    }
                    out.push('}');
                }
            }
            Ok(())
        }
    }

    impl From<bool> for Value {
        fn from(b: bool) -> Value {
            Value::Bool(b)
        }
    }
    impl From<f64> for Value {
        fn from(n: f64) -> Value {
            Value::Number(n)
        }
    }
    impl From<i32> for Value {
        fn from(n: i32) -> Value {
            Value::Number(n as f64)
        }
    }
    impl From<u32> for Value {
        fn from(n: u32) -> Value {
            Value::Number(n as f64)
        }
    }
    impl From<i64> for Value {
        fn from(n: i64) -> Value {
            Value::Number(n as f64)
        }
    }
    impl From<usize> for Value {
        fn from(n: usize) -> Value {
            Value::Number(n as f64)
        }
    }
    impl From<&str> for Value {
        fn from(s: &str) -> Value {
            Value::String(String::from(s))
        }
    }
    impl From<String> for Value {
        fn from(s: String) -> Value {
            Value::String(s)
        }
    }
    impl From<Vec<Value>> for Value {
        fn from(a: Vec<Value>) -> Value {
            Value::Array(a)
        }
    }

    /// Why a value could not be written as JSON.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum WriteError {
        /// A NaN or an infinity: JSON has no such number.
        NotFinite,
        /// Nesting deeper than [`MAX_DEPTH`].
        TooDeep,
    }

    impl fmt::Display for WriteError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                WriteError::NotFinite => f.write_str("a number is not finite (NaN or infinite)"),
                WriteError::TooDeep => write!(f, "nesting deeper than {} levels", MAX_DEPTH),
            }
        }
    }

    impl From<WriteError> for super::Error {
        fn from(e: WriteError) -> super::Error {
            super::Error::new(alloc::format!("json: {}", e))
        }
    }

    // -----------------------------------------------------------------------------------------
    // Reading
    // -----------------------------------------------------------------------------------------

    /// Why a document is not JSON, and where: `unexpected character 'x' at byte 3`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ParseError {
        /// Byte offset in the document.
        pub offset: usize,
        pub reason: &'static str,
        /// The character found there, when the reason is about one.
        pub found: Option<char>,
    }

    impl fmt::Display for ParseError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.reason)?;
            if let Some(c) = self.found {
                write!(f, " '{}'", c.escape_debug())?;
            }
            write!(f, " at byte {}", self.offset)
        }
    }

    impl From<ParseError> for super::Error {
        fn from(e: ParseError) -> super::Error {
            super::Error::new(alloc::format!("not JSON: {}", e))
        }
    }

    /// Reads a whole JSON document: one value, with only whitespace around it.
    pub fn parse(text: &[u8]) -> Result<Value, ParseError> {
        let src = core::str::from_utf8(text)
            .map_err(|e| ParseError { offset: e.valid_up_to(), reason: "invalid UTF-8", found: None })?;
        let mut p = Parser { src, b: text, pos: 0 };
        p.space();
        let v = p.value(0)?;
        p.space();
        if p.pos < p.b.len() {
            return Err(p.unexpected("unexpected data after the value"));
        }
        Ok(v)
    }

    struct Parser<'a> {
        src: &'a str,
        b: &'a [u8],
        pos: usize,
    }

    impl<'a> Parser<'a> {
        fn error(&self, reason: &'static str) -> ParseError {
            ParseError { offset: self.pos, reason, found: None }
        }

        /// An error about the character at pos (or the end of input).
        fn unexpected(&self, reason: &'static str) -> ParseError {
            match self.src[self.pos..].chars().next() {
                Some(c) => ParseError { offset: self.pos, reason, found: Some(c) },
                None => self.error("unexpected end of input"),
            }
        }

        fn peek(&self) -> Option<u8> {
            self.b.get(self.pos).copied()
        }

        fn space(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
                self.pos += 1;
            }
        }

        fn expect(&mut self, c: u8, reason: &'static str) -> Result<(), ParseError> {
            if self.peek() != Some(c) {
                return Err(self.unexpected(reason));
            }
            self.pos += 1;
            Ok(())
        }

        fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
            match self.peek() {
                None => Err(self.error("unexpected end of input")),
                Some(b'{') => self.object(depth + 1),
                Some(b'[') => self.array(depth + 1),
                Some(b'"') => Ok(Value::String(self.string()?)),
                Some(b't') => self.literal("true", Value::Bool(true)),
                Some(b'f') => self.literal("false", Value::Bool(false)),
                Some(b'n') => self.literal("null", Value::Null),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.unexpected("unexpected character")),
            }
        }

        /// `true`, `false` or `null`; an error points at the first character that differs.
        fn literal(&mut self, word: &'static str, v: Value) -> Result<Value, ParseError> {
            for &c in word.as_bytes() {
                if self.peek() != Some(c) {
                    return Err(self.unexpected("unexpected character"));
                }
                self.pos += 1;
            }
            Ok(v)
        }

        fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
            if depth > MAX_DEPTH {
                return Err(self.error("nesting too deep"));
            }
            self.pos += 1; // {
            let mut members = Vec::new();
            self.space();
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Value::Object(members));
            }
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.unexpected("want a string key, found"));
                }
                let key = self.string()?;
                self.space();
                self.expect(b':', "want ':' after a key, found")?;
                self.space();
                let v = self.value(depth)?;
                members.push((key, v));
                self.space();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.space();
                    }
                    Some(b'}') => {
                        self.pos += 1;
                        return Ok(Value::Object(members));
                    }
                    _ => return Err(self.unexpected("want ',' or '}' in an object, found")),
                }
            }
        }

        fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
            if depth > MAX_DEPTH {
                return Err(self.error("nesting too deep"));
            }
            self.pos += 1; // [
            let mut items = Vec::new();
            self.space();
            if self.peek() == Some(b']') {
                self.pos += 1;
                return Ok(Value::Array(items));
            }
            loop {
                items.push(self.value(depth)?);
                self.space();
                match self.peek() {
                    Some(b',') => {
                        self.pos += 1;
                        self.space();
                    }
                    Some(b']') => {
                        self.pos += 1;
                        return Ok(Value::Array(items));
                    }
                    _ => return Err(self.unexpected("want ',' or ']' in an array, found")),
                }
            }
        }

        /// A string, from its opening quote. Runs of plain characters are copied at once; they
        /// end only at ASCII bytes, so every slice is on character boundaries.
        fn string(&mut self) -> Result<String, ParseError> {
            self.pos += 1; // "
            let mut out = String::new();
            loop {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if c == b'"' || c == b'\\' || c < 0x20 {
                        break;
                    }
                    self.pos += 1;
                }
                out.push_str(&self.src[start..self.pos]);
                match self.peek() {
                    None => return Err(self.error("unterminated string")),
                    Some(b'"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some(b'\\') => self.escape(&mut out)?,
                    Some(_) => return Err(self.unexpected("control character in a string:")),
                }
            }
        }

        fn escape(&mut self, out: &mut String) -> Result<(), ParseError> {
            self.pos += 1; // backslash
            let c = match self.peek() {
                Some(b'"') => '"',
                Some(b'\\') => '\\',
                Some(b'/') => '/',
                Some(b'b') => '\u{8}',
                Some(b'f') => '\u{c}',
                Some(b'n') => '\n',
                Some(b'r') => '\r',
                Some(b't') => '\t',
                Some(b'u') => {
                    self.pos += 1;
                    let u = self.hex4()?;
                    out.push(self.unicode(u));
                    return Ok(());
                }
                _ => return Err(self.unexpected("invalid escape")),
            };
            self.pos += 1;
            out.push(c);
            Ok(())
        }

        /// The character of a `\uXXXX` escape whose code `u` was just read, with the low half of
        /// a surrogate pair when one follows; a lone surrogate is U+FFFD.
        fn unicode(&mut self, u: u32) -> char {
            if (0xD800..0xDC00).contains(&u) && self.b[self.pos..].starts_with(b"\\u") {
                let save = self.pos;
                self.pos += 2;
                match self.hex4() {
                    Ok(lo) if (0xDC00..0xE000).contains(&lo) => {
                        let c = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                        return char::from_u32(c).unwrap_or('\u{FFFD}');
                    }
                    _ => self.pos = save, // not a low half: read it as an escape of its own
                }
            }
            char::from_u32(u).unwrap_or('\u{FFFD}')
        }

        fn hex4(&mut self) -> Result<u32, ParseError> {
            let mut u = 0;
            for _ in 0..4 {
                let d = match self.peek() {
                    Some(c @ b'0'..=b'9') => c - b'0',
                    Some(c @ b'a'..=b'f') => c - b'a' + 10,
                    Some(c @ b'A'..=b'F') => c - b'A' + 10,
                    _ => return Err(self.unexpected("want 4 hex digits after \\u, found")),
                };
                u = u * 16 + d as u32;
                self.pos += 1;
            }
            Ok(u)
        }

        /// A number: checks the JSON grammar (`-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?`), then
        /// lets core convert the text, correctly rounded.
        fn number(&mut self) -> Result<Value, ParseError> {
            let start = self.pos;
            if self.peek() == Some(b'-') {
                self.pos += 1;
            }
            match self.peek() {
                Some(b'0') => self.pos += 1,
                Some(b'1'..=b'9') => self.digits(),
                _ => return Err(self.unexpected("invalid number: want a digit, found")),
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                if !matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.unexpected("invalid number: want a digit after '.', found"));
                }
                self.digits();
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.pos += 1;
                if let Some(b'+' | b'-') = self.peek() {
                    self.pos += 1;
                }
                if !matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(self.unexpected("invalid number: want a digit in the exponent, found"));
                }
                self.digits();
            }
            match self.src[start..self.pos].parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(Value::Number(n)),
                _ => Err(ParseError { offset: start, reason: "number out of range", found: None }),
            }
        }

        fn digits(&mut self) {
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Writing
    // -----------------------------------------------------------------------------------------

    /// Appends `s` as a JSON string literal: quotes, backslashes and control characters escaped,
    /// everything else as UTF-8.
    pub fn write_string(out: &mut String, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push('"');
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            out.push_str(&s[start..i]);
            if esc.is_empty() {
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            } else {
                out.push_str(esc);
            }
            start = i + 1;
        }
        out.push_str(&s[start..]);
        out.push('"');
    }

    /// `s` as a JSON string literal: handy to name a key or a value in an error message
    /// (`unknown field "factr"`).
    pub fn quote(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 2);
        write_string(&mut out, s);
        out
    }

    /// The shortest decimal digits that read back as the same `f64`: `neg`, `digits[..len]`, and
    /// the exponent `exp` of the first digit (value = d.ddd × 10^exp).
    struct Decimal {
        neg: bool,
        digits: [u8; 17],
        len: usize,
        exp: i32,
    }

    /// A fixed buffer for core::fmt to write into, so that formatting allocates nothing.
    struct Buf {
        b: [u8; 48],
        n: usize,
    }

    impl fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.n + s.len();
            if end > self.b.len() {
                return Err(fmt::Error);
            }
            self.b[self.n..end].copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }

    impl Decimal {
        /// The digits of a finite, non-zero v, from core's shortest round-trip formatting
        /// (`{:e}`: `-2.15e1`).
        fn of(v: f64) -> Decimal {
            let mut buf = Buf { b: [0; 48], n: 0 };
            let _ = fmt::write(&mut buf, format_args!("{:e}", v));
            let text = &buf.b[..buf.n];
            let mut d = Decimal { neg: false, digits: [0; 17], len: 0, exp: 0 };
            let mut i = 0;
            if text.first() == Some(&b'-') {
                d.neg = true;
                i = 1;
            }
            while i < text.len() && text[i] != b'e' {
                if text[i] != b'.' && d.len < d.digits.len() {
                    d.digits[d.len] = text[i];
                    d.len += 1;
                }
                i += 1;
            }
            let mut exp_neg = false;
            i += 1; // e
            if text.get(i) == Some(&b'-') {
                exp_neg = true;
                i += 1;
            }
            while i < text.len() {
                d.exp = d.exp * 10 + (text[i] - b'0') as i32;
                i += 1;
            }
            if exp_neg {
                d.exp = -d.exp;
            }
            d
        }
    }

    /// Appends the shortest JSON number that reads back as `v`: `21.5`, `0.1`, `100`, `1e+21`,
    /// `1.5e-7` (plain notation from 1e-6 up to 1e21, like JavaScript). -0 is written `0`.
    pub fn write_number(out: &mut String, v: f64) -> Result<(), WriteError> {
        if !v.is_finite() {
            return Err(WriteError::NotFinite);
        }
        if v == 0.0 {
            out.push('0');
            return Ok(());
        }
        let d = Decimal::of(v);
        let digits = &d.digits[..d.len];
        let push = |out: &mut String, ds: &[u8]| ds.iter().for_each(|&c| out.push(c as char));
        let zeros = |out: &mut String, n: i32| (0..n).for_each(|_| out.push('0'));
        if d.neg {
            out.push('-');
        }
        let k = d.len as i32; // digits
        let n = d.exp + 1; // digits before the decimal point
        if k <= n && n <= 21 {
            push(out, digits);
            zeros(out, n - k);
        } else if 0 < n && n <= 21 {
            push(out, &digits[..n as usize]);
            out.push('.');
            push(out, &digits[n as usize..]);
        } else if -6 < n && n <= 0 {
            out.push_str("0.");
            zeros(out, -n);
            push(out, digits);
        } else {
            push(out, &digits[..1]);
            if k > 1 {
                out.push('.');
                push(out, &digits[1..]);
            }
            out.push('e');
            out.push(if n - 1 < 0 { '-' } else { '+' });
            let mut buf = Buf { b: [0; 48], n: 0 };
            let _ = fmt::write(&mut buf, format_args!("{}", (n - 1).unsigned_abs()));
            push(out, &buf.b[..buf.n]);
        }
        Ok(())
    }

    /// `v` rounded to `decimals` places, half away from zero, on its shortest decimal form: what
    /// a reader sees is what is rounded, so `round(1.005, 2)` is `1.01` and `round(2.675, 2)` is
    /// `2.68` (binary rounding would give 1.0 and 2.67). The result is the `f64` nearest to the
    /// rounded decimal, which [`write_number`] writes with at most `decimals` places.
    /// Deterministic; a non-finite `v` is returned as it is.
    pub fn round(v: f64, decimals: u32) -> f64 {
        if !v.is_finite() || v == 0.0 || decimals > 400 {
            return v;
        }
        let d = Decimal::of(v);
        let keep = d.exp + 1 + decimals as i32; // digits left of the cut
        if keep >= d.len as i32 {
            return v; // already has at most `decimals` places
        }
        // m = the kept digits as an integer, plus one when the first cut digit is 5 or more.
        let mut m: u64 = 0;
        for &c in &d.digits[..keep.max(0) as usize] {
            m = m * 10 + (c - b'0') as u64;
        }
        if keep >= 0 && d.digits[keep as usize] >= b'5' {
            m += 1;
        }
        if m == 0 {
            return 0.0;
        }
        // The result is m × 10^-decimals: let core read "m e-decimals", correctly rounded.
        let mut buf = Buf { b: [0; 48], n: 0 };
        let sign = if d.neg { "-" } else { "" };
        let _ = fmt::write(&mut buf, format_args!("{}{}e-{}", sign, m, decimals));
        core::str::from_utf8(&buf.b[..buf.n]).ok().and_then(|s| s.parse().ok()).unwrap_or(v)
    }
}
