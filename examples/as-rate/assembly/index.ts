// transforms.rate — turns cumulative meter counters into rates, in AssemblyScript.
//
// Meters report counters that only grow: energy in kWh, bytes sent, pulses. For every input
// (a JSON object) and every configured counter present in it, this transform keeps the
// previous reading (time, value) per subject and counter in the plugin instance's state, and
// emits on "<subject>.<counter>_rate" the increase per unit of time since that reading:
//
//   {"rate": <increase per unit>, "interval_s": <seconds since the previous reading>}
//
// The first reading of a subject and counter only primes the state. A counter that went
// down is a meter reset: re-primed (reset: skip) or also reported as an error (reset: fail).
// See README.md for the configuration and the exact rules.
import {
  JSONKind,
  JSONValue,
  JSONWriter,
  Level,
  LIMIT,
  OK,
  emit,
  fail,
  formatJSONNumber,
  inputPayload,
  inputSubject,
  inputTime,
  kindName,
  log,
  now,
  parseJSON,
  quoteJSON,
  config as readConfig,
  stateGet,
  stateSet,
  statusText,
} from "../../../sdk/assemblyscript/switchyard";

// Bounds of the configuration: what one call reads and emits stays small.
const MAX_COUNTERS = 32;
const MAX_NAME_BYTES = 128;

// ---------------------------------------------------------------------------------------
// Configuration, read once per module instance in sy_init.

let counters = new Array<string>(); // the counter fields, in the order outputs are emitted
let unitSeconds: f64 = 1; // "per": the unit of time of a rate, in seconds
let failOnReset = false; // "reset": fail (true) or skip (false)

export function sy_abi_version(): i32 {
  return 1;
}

export function sy_init(): i32 {
  const parsed = parseJSON(readConfig());
  if (!parsed.ok) return fail("config: not JSON: " + parsed.error);
  const cfg = parsed.value!;
  if (!cfg.isObject()) return fail("config: want a JSON object, got " + kindName(cfg.kind));

  // Strict: every key must be one we know.
  const keys = cfg.keys();
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (k != "counters" && k != "per" && k != "reset") {
      return fail("config: unknown field " + quoteJSON(k) + " (want counters, per, reset)");
    }
  }

  const list = cfg.get("counters");
  if (list == null) return fail("config: counters is required: the counter fields to turn into rates");
  if (!list.isArray()) return fail("config: counters must be an array of field names, got " + kindName(list.kind));
  const items = list.items();
  if (items.length == 0) return fail("config: counters must name at least one field");
  if (items.length > MAX_COUNTERS) return fail("config: counters names " + items.length.toString() + " fields, at most " + MAX_COUNTERS.toString());
  const names = new Array<string>();
  for (let i = 0; i < items.length; i++) {
    const where = "config: counters[" + i.toString() + "]";
    if (!items[i].isString()) return fail(where + " must be a string, got " + kindName(items[i].kind));
    const name = items[i].asString();
    if (name.length == 0) return fail(where + " is empty");
    if (String.UTF8.byteLength(name) > MAX_NAME_BYTES) return fail(where + " is longer than " + MAX_NAME_BYTES.toString() + " bytes");
    if (!tokenSafe(name)) {
      return fail(where + " " + quoteJSON(name) + " must not contain '.', '*', '>', spaces or control characters: it becomes a subject token");
    }
    if (names.includes(name)) return fail("config: counters lists " + quoteJSON(name) + " twice");
    names.push(name);
  }

  let unit: f64 = 1;
  const per = cfg.get("per");
  if (per != null) {
    if (!per.isString()) return fail("config: per must be a string (second, minute, hour or day), got " + kindName(per.kind));
    const p = per.asString();
    if (p == "second") unit = 1;
    else if (p == "minute") unit = 60;
    else if (p == "hour") unit = 3600;
    else if (p == "day") unit = 86400;
    else return fail("config: per " + quoteJSON(p) + " is not a unit: want second, minute, hour or day");
  }

  let onReset = false;
  const reset = cfg.get("reset");
  if (reset != null) {
    if (!reset.isString()) return fail("config: reset must be a string (skip or fail), got " + kindName(reset.kind));
    const r = reset.asString();
    if (r == "fail") onReset = true;
    else if (r != "skip") return fail("config: reset " + quoteJSON(r) + " is not an option: want skip or fail");
  }

  counters = names;
  unitSeconds = unit;
  failOnReset = onReset;
  return 0;
}

// tokenSafe reports whether name can end a subject token ("<name>_rate"): no '.', which
// separates tokens, no wildcard, no space or control character.
function tokenSafe(name: string): bool {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c <= 0x20 || c == 0x7f || c == 0x2e || c == 0x2a || c == 0x3e) return false; // . * >
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// State: per subject and counter, the previous reading as 16 bytes: the time (i64 Unix
// nanoseconds, little-endian) and the value (f64). The key is the JSON array
// ["<subject>","<counter>"], which cannot be confused between two pairs.

const READING_BYTES = 16;

function stateKey(subject: string, counter: string): string {
  return "[" + quoteJSON(subject) + "," + quoteJSON(counter) + "]";
}

function encodeReading(time: i64, value: f64): ArrayBuffer {
  const b = new ArrayBuffer(READING_BYTES);
  store<i64>(changetype<usize>(b), time);
  store<f64>(changetype<usize>(b), value, 8);
  return b;
}

// What to do with one counter of the input, decided before anything is written.
const PRIME = 0; // store the reading, emit nothing
const RATE = 1; // store the reading, emit the rate
const KEEP = 2; // a repeat of the previous reading (same time): nothing to do

class Step {
  constructor(
    public counter: string,
    public key: string, // its state key
    public action: i32,
    public value: f64,
    public rate: f64 = 0,
    public interval: f64 = 0,
  ) {}
}

// ---------------------------------------------------------------------------------------
// The transform.

export function sy_transform(): i32 {
  const payload = inputPayload();
  if (payload == null) return fail("no input message");
  if (payload.byteLength == 0) return fail("payload is empty: want a JSON object of counters");
  const parsed = parseJSON(payload);
  if (!parsed.ok) return fail("payload: not JSON: " + parsed.error);
  const obj = parsed.value!;
  if (!obj.isObject()) return fail("payload: want a JSON object of counters, got " + kindName(obj.kind));

  const subject = inputSubject();
  let time = inputTime();
  if (time == 0) time = now(); // a message without a time: the host's clock

  // First decide, for every counter present, what to do, so that an error leaves no trace
  // (but for a reset reported with reset: fail, which re-primes its counter).
  const steps = new Array<Step>();
  for (let i = 0; i < counters.length; i++) {
    const name = counters[i];
    const field = obj.get(name);
    if (field == null) continue; // not in this reading
    if (!field.isNumber()) return fail("counter " + quoteJSON(name) + ": want a number, got " + describe(field));
    const value = field.asNumber();

    const key = stateKey(subject, name);
    const prev = stateGet(key);
    if (prev == null || prev.byteLength != READING_BYTES) {
      steps.push(new Step(name, key, PRIME, value)); // first reading (or an unreadable one)
      continue;
    }
    const prevTime = load<i64>(changetype<usize>(prev));
    const prevValue = load<f64>(changetype<usize>(prev), 8);
    if (time == prevTime) {
      steps.push(new Step(name, key, KEEP, value)); // delivered twice: nothing new
      continue;
    }
    if (time < prevTime) {
      return fail("counter " + quoteJSON(name) + ": reading at " + formatTime(time) +
        " is older than the previous one at " + formatTime(prevTime));
    }
    if (value < prevValue) {
      // A meter reset: start again from this reading.
      const what = "counter " + quoteJSON(name) + " went down from " + formatJSONNumber(prevValue) +
        " to " + formatJSONNumber(value) + " (meter reset)";
      if (failOnReset) {
        // Re-prime even though the call fails, so that the next reading gives a rate again.
        const status = stateSet(key, encodeReading(time, value));
        if (status != OK) return fail(what + "; state: " + statusText(status));
        return fail(what);
      }
      log(Level.Info, subject + ": " + what + ": re-primed");
      steps.push(new Step(name, key, PRIME, value));
      continue;
    }
    const interval = <f64>(time - prevTime) / 1e9;
    steps.push(new Step(name, key, RATE, value, (value - prevValue) * unitSeconds / interval, interval));
  }

  // Then emit (outputs are dropped by the host if the call fails later)...
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    if (s.action != RATE) continue;
    const out = new JSONWriter().beginObject()
      .key("rate").number(s.rate)
      .key("interval_s").number(s.interval)
      .endObject();
    const status = emit(subject + "." + s.counter + "_rate", out.toBytes());
    if (status != OK) return fail("emit " + quoteJSON(s.counter) + " rate: " + statusText(status));
  }
  // ...and store the readings last.
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i];
    if (s.action == KEEP) continue;
    const status = stateSet(s.key, encodeReading(time, s.value));
    if (status == LIMIT) return fail("state full: cannot keep counter " + quoteJSON(s.counter) + " of " + quoteJSON(subject));
    if (status != OK) return fail("state: counter " + quoteJSON(s.counter) + ": " + statusText(status));
  }
  return 0;
}

// describe names a JSON value for an error message: its kind, and a short string's text.
function describe(v: JSONValue): string {
  if (v.kind == JSONKind.String && v.asString().length <= 32) return "string " + quoteJSON(v.asString());
  return kindName(v.kind);
}

// formatTime gives Unix nanoseconds as RFC 3339 in UTC ("2025-06-01T12:00:00Z", with a
// fraction of a second when there is one), for error messages.
function formatTime(ns: i64): string {
  let secs = ns / 1_000_000_000;
  let frac = ns % 1_000_000_000;
  if (frac < 0) {
    secs--;
    frac += 1_000_000_000;
  }
  let days = secs / 86400;
  let sod = secs % 86400;
  if (sod < 0) {
    days--;
    sod += 86400;
  }
  // Civil date from days since 1970-01-01 (H. Hinnant's algorithm, proleptic Gregorian).
  const z = days + 719468;
  const era = (z >= 0 ? z : z - 146096) / 146097;
  const doe = z - era * 146097;
  const yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const mp = (5 * doy + 2) / 153;
  const day = doy - (153 * mp + 2) / 5 + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  let s = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T" +
    pad(sod / 3600, 2) + ":" + pad((sod / 60) % 60, 2) + ":" + pad(sod % 60, 2);
  if (frac != 0) {
    let f = pad(frac, 9);
    while (f.endsWith("0")) f = f.substring(0, f.length - 1);
    s += "." + f;
  }
  return s + "Z";
}

function pad(n: i64, width: i32): string {
  let s = n.toString();
  while (s.length < width) s = "0" + s;
  return s;
}
