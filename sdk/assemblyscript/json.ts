// A small JSON reader and writer for Switchyard guests written in AssemblyScript.
//
// The ABI hands a guest its configuration and (usually) its payloads as UTF-8 JSON, and a
// guest usually answers in JSON. AssemblyScript has no JSON in its standard library, so this
// file gives the little a guest needs:
//
//   - parseJSON(bytes) reads UTF-8 JSON (RFC 8259) into a tree of JSONValue. It never traps
//     on bad input: a JSONParseResult carries either the value or an error message that says
//     what is wrong and at which byte. Nesting is bounded (maxDepth, 64 by default), so a
//     hostile payload cannot exhaust the stack.
//   - JSONWriter writes compact UTF-8 JSON straight into a growing byte buffer, ready for
//     emit or state_set.
//
// Strings: AssemblyScript strings are UTF-16; JSON text here is UTF-8. The reader checks that
// the text is valid UTF-8, decodes \uXXXX escapes (a surrogate pair becomes one code point; a
// lone surrogate becomes U+FFFD, as in Go), and the writer encodes UTF-16 to UTF-8, escaping
// a lone surrogate as \uXXXX so that its output is always valid UTF-8.
//
// Numbers are f64, as in JavaScript: integers beyond 2^53 lose precision. The writer prints
// integral values without a fraction ("3", not "3.0") and a NaN or an infinity as null.
//
// Objects keep their members in order. When a key appears twice, get() returns the last one
// (as JSON.parse and Go's encoding/json do); keys() lists both.
//
// Speed: the Switchyard host checks the call's deadline on every loop iteration of a guest,
// which makes an iteration cost tens of nanoseconds. So the reader skips plain string content
// eight bytes per iteration, and decodes a string value only when asString() asks for it (a
// parsed value keeps a reference to the input bytes until then: do not modify them); the
// writer encodes four plain characters per iteration and copies a never-decoded string
// straight from the input. A 512 KiB payload parses in a few milliseconds.
//
// Numbers are converted exactly (decimalToF64 below), not with AssemblyScript's parseFloat,
// which is not correctly rounded.

/** The kind of a JSON value. */
export enum JSONKind {
  Null = 0,
  Bool = 1,
  Number = 2,
  String = 3,
  Array = 4,
  Object = 5,
}

/** kindName gives a kind as a word for messages: "null", "boolean", "number", "string", "array", "object". */
export function kindName(kind: JSONKind): string {
  switch (kind) {
    case JSONKind.Null: return "null";
    case JSONKind.Bool: return "boolean";
    case JSONKind.Number: return "number";
    case JSONKind.String: return "string";
    case JSONKind.Array: return "array";
    default: return "object";
  }
}

/** One JSON value: a node of the tree parseJSON returns, or one a guest builds to write. */
export class JSONValue {
  /** What this value is; the matching accessor below gives its content. */
  kind: JSONKind = JSONKind.Null;
  private b: bool = false;
  private n: f64 = 0;
  private s: string = "";
  // A parsed string is decoded only when asked for (a big member nobody reads costs nothing
  // but its check): until then, its content is src[srcStart, srcStart+srcLen), as checked
  // JSON string content, with escapes when srcEscaped. Set by the parser only.
  src: ArrayBuffer | null = null;
  srcStart: i32 = 0;
  srcLen: i32 = 0;
  srcEscaped: bool = false;
  // Array elements, or object member values (in the order of memberKeys).
  private elems: Array<JSONValue> | null = null;
  private memberKeys: Array<string> | null = null;

  static nullValue(): JSONValue {
    return new JSONValue();
  }

  static fromBool(b: bool): JSONValue {
    const v = new JSONValue();
    v.kind = JSONKind.Bool;
    v.b = b;
    return v;
  }

  static fromNumber(n: f64): JSONValue {
    const v = new JSONValue();
    v.kind = JSONKind.Number;
    v.n = n;
    return v;
  }

  static fromString(s: string): JSONValue {
    const v = new JSONValue();
    v.kind = JSONKind.String;
    v.s = s;
    return v;
  }

  /** An empty array; add elements with push. */
  static newArray(): JSONValue {
    const v = new JSONValue();
    v.kind = JSONKind.Array;
    v.elems = new Array<JSONValue>();
    return v;
  }

  /** An empty object; add members with set. */
  static newObject(): JSONValue {
    const v = new JSONValue();
    v.kind = JSONKind.Object;
    v.elems = new Array<JSONValue>();
    v.memberKeys = new Array<string>();
    return v;
  }

  isNull(): bool { return this.kind == JSONKind.Null; }
  isBool(): bool { return this.kind == JSONKind.Bool; }
  isNumber(): bool { return this.kind == JSONKind.Number; }
  isString(): bool { return this.kind == JSONKind.String; }
  isArray(): bool { return this.kind == JSONKind.Array; }
  isObject(): bool { return this.kind == JSONKind.Object; }

  /** The boolean; false for any other kind. */
  asBool(): bool { return this.kind == JSONKind.Bool && this.b; }
  /** The number; NaN for any other kind. */
  asNumber(): f64 { return this.kind == JSONKind.Number ? this.n : NaN; }
  /** The string; "" for any other kind. */
  asString(): string {
    if (this.kind != JSONKind.String) return "";
    const src = this.src;
    if (src != null) {
      this.s = decodeJSONString(changetype<usize>(src) + <usize>this.srcStart, this.srcLen, this.srcEscaped);
      this.src = null;
    }
    return this.s;
  }

  /** The elements of an array (empty for any other kind). Do not modify the returned array. */
  items(): Array<JSONValue> {
    const e = this.elems;
    return this.kind == JSONKind.Array && e ? e : new Array<JSONValue>();
  }

  /** The keys of an object, in order (empty for any other kind). Do not modify the returned array. */
  keys(): Array<string> {
    const k = this.memberKeys;
    return k ? k : new Array<string>();
  }

  /** The values of an object, in the order of keys() (empty for any other kind). */
  values(): Array<JSONValue> {
    const e = this.elems;
    return this.kind == JSONKind.Object && e ? e : new Array<JSONValue>();
  }

  /** The number of elements of an array or members of an object; 0 for any other kind. */
  get length(): i32 {
    const e = this.elems;
    return e ? e.length : 0;
  }

  /** The member of an object named key (the last one, if it is there twice), or null. */
  get(key: string): JSONValue | null {
    const k = this.memberKeys;
    const e = this.elems;
    if (!k || !e) return null;
    for (let i = k.length - 1; i >= 0; i--) {
      if (unchecked(k[i]) == key) return unchecked(e[i]);
    }
    return null;
  }

  /** has reports whether an object has a member named key. */
  has(key: string): bool {
    return this.get(key) != null;
  }

  /** Sets the member key of an object (replacing the last one of that name); returns this. */
  set(key: string, value: JSONValue): JSONValue {
    const k = this.memberKeys;
    const e = this.elems;
    if (this.kind != JSONKind.Object || !k || !e) return this;
    for (let i = k.length - 1; i >= 0; i--) {
      if (unchecked(k[i]) == key) {
        e[i] = value;
        return this;
      }
    }
    k.push(key);
    e.push(value);
    return this;
  }

  /** Appends an element to an array; returns this. */
  push(value: JSONValue): JSONValue {
    const e = this.elems;
    if (this.kind == JSONKind.Array && e) e.push(value);
    return this;
  }

  // Used by the parser, which knows keys may repeat and wants them all kept.
  addMember(key: string, value: JSONValue): void {
    (this.memberKeys as Array<string>).push(key);
    (this.elems as Array<JSONValue>).push(value);
  }

  /** The value as compact JSON text. */
  toString(): string {
    return new JSONWriter().value(this).toString();
  }

  /** The value as compact JSON, UTF-8 bytes. */
  toBytes(): ArrayBuffer {
    return new JSONWriter().value(this).toBytes();
  }
}

/** What parseJSON found: a value, or an error saying what is wrong and where. */
export class JSONParseResult {
  constructor(
    /** The value; null exactly when error is set. */
    public value: JSONValue | null,
    /** Empty on success; otherwise a short lower-case message such as "unexpected end of JSON". */
    public error: string,
  ) {}

  get ok(): bool {
    return this.value != null;
  }
}

// The longest number text parseJSON reads.
const MAX_NUMBER_BYTES = 512;

/** The nesting depth parseJSON allows unless told otherwise. */
export const JSON_MAX_DEPTH: i32 = 64;

/**
 * parseJSON reads one JSON value from UTF-8 bytes, with optional white space around it. It
 * does not trap on bad input: the result says what went wrong. Arrays and objects may nest at
 * most maxDepth deep.
 */
export function parseJSON(bytes: ArrayBuffer, maxDepth: i32 = JSON_MAX_DEPTH): JSONParseResult {
  const p = new Parser(bytes, maxDepth);
  p.skipSpace();
  const v = p.parseValue(0);
  if (v != null) {
    p.skipSpace();
    if (p.pos < p.len) p.failAt(p.pos, "unexpected data after the JSON value");
  }
  if (p.error.length > 0) return new JSONParseResult(null, p.error);
  return new JSONParseResult(v, "");
}

/** parseJSONText is parseJSON for a string. */
export function parseJSONText(text: string, maxDepth: i32 = JSON_MAX_DEPTH): JSONParseResult {
  return parseJSON(String.UTF8.encode(text), maxDepth);
}

// Byte values the parser looks at.
const QUOTE: u32 = 0x22; // "
const BACKSLASH: u32 = 0x5c; // \
const COMMA: u32 = 0x2c; // ,
const COLON: u32 = 0x3a; // :
const MINUS: u32 = 0x2d; // -
const PLUS: u32 = 0x2b; // +
const DOT: u32 = 0x2e; // .
const ZERO: u32 = 0x30;
const LBRACKET: u32 = 0x5b; // [
const RBRACKET: u32 = 0x5d; // ]
const LBRACE: u32 = 0x7b; // {
const RBRACE: u32 = 0x7d; // }

// A recursive-descent parser over the bytes of one buffer. The first error wins: it sets
// error, and every function then returns null up the stack.
class Parser {
  buf: ArrayBuffer; // kept referenced: base points into it
  base: usize;
  len: i32;
  pos: i32 = 0;
  maxDepth: i32;
  error: string = "";
  // The content of the string scanString last read.
  strStart: i32 = 0;
  strLen: i32 = 0;
  strEscaped: bool = false;

  constructor(buf: ArrayBuffer, maxDepth: i32) {
    this.buf = buf;
    this.base = changetype<usize>(buf);
    this.len = buf.byteLength;
    this.maxDepth = maxDepth;
  }

  @inline byteAt(i: i32): u32 {
    return <u32>load<u8>(this.base + <usize>i);
  }

  failAt(at: i32, msg: string): void {
    if (this.error.length == 0) this.error = msg + " at byte " + at.toString();
  }

  failEnd(): void {
    if (this.error.length == 0) this.error = "unexpected end of JSON";
  }

  // unexpected reports the byte at pos as out of place.
  unexpected(what: string): void {
    if (this.pos >= this.len) {
      this.failEnd();
      return;
    }
    this.failAt(this.pos, "unexpected " + describeByte(this.byteAt(this.pos)) + " " + what);
  }

  skipSpace(): void {
    while (this.pos < this.len) {
      const c = this.byteAt(this.pos);
      if (c != 0x20 && c != 0x0a && c != 0x0d && c != 0x09) return;
      this.pos++;
    }
  }

  parseValue(depth: i32): JSONValue | null {
    if (this.pos >= this.len) {
      this.failEnd();
      return null;
    }
    const c = this.byteAt(this.pos);
    if (c == LBRACE || c == LBRACKET) {
      if (depth >= this.maxDepth) {
        this.failAt(this.pos, "nesting deeper than " + this.maxDepth.toString());
        return null;
      }
      return c == LBRACE ? this.parseObject(depth + 1) : this.parseArray(depth + 1);
    }
    if (c == QUOTE) {
      if (!this.scanString()) return null;
      const v = JSONValue.fromString("");
      v.src = this.buf;
      v.srcStart = this.strStart;
      v.srcLen = this.strLen;
      v.srcEscaped = this.strEscaped;
      return v;
    }
    if (c == MINUS || (c >= ZERO && c <= ZERO + 9)) return this.parseNumber();
    if (this.literal("true")) return JSONValue.fromBool(true);
    if (this.literal("false")) return JSONValue.fromBool(false);
    if (this.literal("null")) return JSONValue.nullValue();
    this.unexpected("looking for a value");
    return null;
  }

  // literal consumes word (ASCII) when the input continues with it.
  literal(word: string): bool {
    const n = word.length;
    if (this.pos + n > this.len) return false;
    for (let i = 0; i < n; i++) {
      if (this.byteAt(this.pos + i) != <u32>word.charCodeAt(i)) return false;
    }
    this.pos += n;
    return true;
  }

  parseObject(depth: i32): JSONValue | null {
    const obj = JSONValue.newObject();
    this.pos++; // {
    this.skipSpace();
    if (this.pos < this.len && this.byteAt(this.pos) == RBRACE) {
      this.pos++;
      return obj;
    }
    while (true) {
      if (this.pos >= this.len || this.byteAt(this.pos) != QUOTE) {
        this.unexpected("looking for an object key");
        return null;
      }
      if (!this.scanString()) return null;
      const key = decodeJSONString(this.base + <usize>this.strStart, this.strLen, this.strEscaped);
      this.skipSpace();
      if (this.pos >= this.len || this.byteAt(this.pos) != COLON) {
        this.unexpected("after an object key");
        return null;
      }
      this.pos++;
      this.skipSpace();
      const v = this.parseValue(depth);
      if (v == null) return null;
      obj.addMember(key, v);
      this.skipSpace();
      if (this.pos >= this.len) {
        this.failEnd();
        return null;
      }
      const c = this.byteAt(this.pos);
      this.pos++;
      if (c == RBRACE) return obj;
      if (c != COMMA) {
        this.pos--;
        this.unexpected("after an object member");
        return null;
      }
      this.skipSpace();
    }
  }

  parseArray(depth: i32): JSONValue | null {
    const arr = JSONValue.newArray();
    this.pos++; // [
    this.skipSpace();
    if (this.pos < this.len && this.byteAt(this.pos) == RBRACKET) {
      this.pos++;
      return arr;
    }
    while (true) {
      const v = this.parseValue(depth);
      if (v == null) return null;
      arr.push(v);
      this.skipSpace();
      if (this.pos >= this.len) {
        this.failEnd();
        return null;
      }
      const c = this.byteAt(this.pos);
      this.pos++;
      if (c == RBRACKET) return arr;
      if (c != COMMA) {
        this.pos--;
        this.unexpected("after an array element");
        return null;
      }
      this.skipSpace();
    }
  }

  parseNumber(): JSONValue | null {
    // The grammar of RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    const start = this.pos;
    if (this.byteAt(this.pos) == MINUS) this.pos++;
    if (this.pos >= this.len) {
      this.failEnd();
      return null;
    }
    let c = this.byteAt(this.pos);
    if (c == ZERO) {
      this.pos++;
    } else if (c > ZERO && c <= ZERO + 9) {
      this.digits();
    } else {
      this.unexpected("in a number");
      return null;
    }
    if (this.pos < this.len && this.byteAt(this.pos) == DOT) {
      this.pos++;
      if (!this.digits()) {
        this.unexpected("after a decimal point");
        return null;
      }
    }
    if (this.pos < this.len && (this.byteAt(this.pos) | 0x20) == 0x65) { // e or E
      this.pos++;
      if (this.pos < this.len && (this.byteAt(this.pos) == PLUS || this.byteAt(this.pos) == MINUS)) this.pos++;
      if (!this.digits()) {
        this.unexpected("in an exponent");
        return null;
      }
    }
    if (this.pos - start > MAX_NUMBER_BYTES) {
      this.failAt(start, "number longer than " + MAX_NUMBER_BYTES.toString() + " bytes");
      return null;
    }
    const n = decimalToF64(this.base + <usize>start, this.pos - start);
    if (!isFinite(n)) {
      this.failAt(start, "number " + decodeUTF8(this.base + <usize>start, this.pos - start) + " out of range");
      return null;
    }
    return JSONValue.fromNumber(n);
  }

  // digits consumes [0-9]* and reports whether there was at least one.
  digits(): bool {
    const start = this.pos;
    while (this.pos < this.len) {
      const c = this.byteAt(this.pos);
      if (c < ZERO || c > ZERO + 9) break;
      this.pos++;
    }
    return this.pos > start;
  }

  // scanString moves past the string whose quote is at pos, checking it: valid UTF-8, no
  // control characters, valid escapes. It leaves the range of its content in strStart and
  // strLen, and whether it has escapes in strEscaped; decodeJSONString decodes it.
  scanString(): bool {
    this.pos++; // "
    const start = this.pos;
    let escaped = false;
    while (true) {
      // Eight plain ASCII bytes at a time: most of any text, and all of a big one. Every
      // loop iteration costs the host a check of the call's deadline, so fewer is faster.
      while (this.pos + 8 <= this.len && plainASCII8(load<u64>(this.base + <usize>this.pos))) this.pos += 8;
      if (this.pos >= this.len) {
        this.failEnd();
        return false;
      }
      const c = this.byteAt(this.pos);
      if (c == QUOTE) {
        this.strStart = start;
        this.strLen = this.pos - start;
        this.strEscaped = escaped;
        this.pos++;
        return true;
      }
      if (c == BACKSLASH) {
        escaped = true;
        if (!this.checkEscape()) return false;
      } else if (c < 0x20) {
        this.failAt(this.pos, "control character " + describeByte(c) + " in a string");
        return false;
      } else if (c < 0x80) {
        this.pos++;
      } else if (!this.utf8Sequence()) {
        return false;
      }
    }
  }

  // utf8Sequence checks the multi-byte UTF-8 sequence at pos (RFC 3629: shortest form, no
  // surrogates, at most U+10FFFF) and moves past it.
  utf8Sequence(): bool {
    const at = this.pos;
    const c = this.byteAt(at);
    let n = 0;
    let lo: u32 = 0x80;
    let hi: u32 = 0xbf; // the range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0) lo = 0xa0; // no overlong forms
      if (c == 0xed) hi = 0x9f; // no surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0) lo = 0x90; // no overlong forms
      if (c == 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else {
      this.failAt(at, "invalid UTF-8");
      return false;
    }
    if (at + n >= this.len) {
      // The sequence, or the closing quote after it, would run past the end.
      this.failEnd();
      return false;
    }
    for (let i = 1; i <= n; i++) {
      const b = this.byteAt(at + i);
      if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) {
        this.failAt(at, "invalid UTF-8");
        return false;
      }
    }
    this.pos = at + n + 1;
    return true;
  }

  // checkEscape checks the escape at pos (a backslash) and moves past it.
  checkEscape(): bool {
    const at = this.pos;
    if (at + 1 >= this.len) {
      this.pos = this.len;
      this.failEnd();
      return false;
    }
    const c = this.byteAt(at + 1);
    this.pos = at + 2;
    switch (c) {
      case QUOTE: case BACKSLASH: case 0x2f: case 0x62: case 0x66: case 0x6e: case 0x72: case 0x74:
        return true; // " \ / b f n r t
      case 0x75: // u
        return this.hex4() >= 0;
    }
    this.failAt(at, "invalid escape \\" + describeByte(c));
    return false;
  }

  // hex4 reads four hex digits at pos, or reports an error and returns -1.
  hex4(): i32 {
    if (this.pos + 4 > this.len) {
      this.pos = this.len;
      this.failEnd();
      return -1;
    }
    let v: i32 = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.byteAt(this.pos);
      let d: i32;
      if (c >= ZERO && c <= ZERO + 9) d = <i32>(c - ZERO);
      else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) d = <i32>((c | 0x20) - 0x61 + 10);
      else {
        this.failAt(this.pos, "invalid hex digit " + describeByte(c) + " in a \\u escape");
        return -1;
      }
      v = (v << 4) | d;
      this.pos++;
    }
    return v;
  }
}

// ---------------------------------------------------------------------------------------
// Numbers: decimal text to the nearest f64.
//
// AssemblyScript's parseFloat is not correctly rounded (in 0.28.20 it is off by one unit in
// the last place for about 1% of numbers, and by orders of magnitude for some with exponents
// above 38), so the reader converts numbers itself: exactly, with Clinger's fast path for the
// usual case (at most 15 significant digits and a power of ten up to 10^22, both exact in an
// f64: one correctly rounded multiplication or division), and big integers for the rest.

// The powers of ten an f64 holds exactly.
const EXACT_POWERS: StaticArray<f64> = [
  1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

// decimalToF64 converts a JSON number, checked by the parser, at [ptr, ptr+len) to the
// nearest f64 (ties to even): ±Infinity when it is too large for one, ±0 when too small.
function decimalToF64(ptr: usize, len: i32): f64 {
  let i = 0;
  const negative = load<u8>(ptr) == <u8>MINUS;
  if (negative) i++;
  // The value is D × 10^exp10, D the nd significant digits (no leading or trailing zeros);
  // m holds D while it has at most 19 digits.
  let m: u64 = 0;
  let nd = 0;
  let zeros = 0; // zeros after the last non-zero digit, not yet counted in nd
  let exp10 = 0;
  let inFraction = false;
  for (; i < len; i++) {
    const c = <u32>load<u8>(ptr + <usize>i);
    if (c == DOT) {
      inFraction = true;
      continue;
    }
    if (c < ZERO || c > ZERO + 9) break; // e or E
    if (inFraction) exp10--;
    if (c == ZERO) {
      if (nd > 0) zeros++;
      continue;
    }
    for (let z = 0; z <= zeros; z++) if (nd + z < 19) m *= 10;
    nd += zeros + 1;
    zeros = 0;
    if (nd <= 19) m += <u64>(c - ZERO);
  }
  exp10 += zeros; // trailing zeros scale; they are not digits
  if (i < len) {
    i++; // e or E
    let expSign = 1;
    const c = load<u8>(ptr + <usize>i);
    if (c == <u8>MINUS || c == <u8>PLUS) {
      if (c == <u8>MINUS) expSign = -1;
      i++;
    }
    let e = 0;
    for (; i < len; i++) {
      if (e < 100000) e = e * 10 + <i32>(load<u8>(ptr + <usize>i) - <u8>ZERO);
    }
    exp10 += expSign * e;
  }
  let v: f64;
  if (nd == 0 || nd + exp10 < -343) v = 0; // below half the smallest subnormal
  else if (nd + exp10 > 310) v = Infinity; // above the largest f64
  else if (nd <= 15 && exp10 >= -22 && exp10 <= 22) {
    v = exp10 >= 0 ? <f64>m * unchecked(EXACT_POWERS[exp10]) : <f64>m / unchecked(EXACT_POWERS[-exp10]);
  } else {
    v = bigDecimalToF64(ptr, len, nd, exp10);
  }
  return negative ? -v : v;
}

// bigDecimalToF64 is the exact conversion of the nd significant digits of the number at
// [ptr, ptr+len) times 10^exp10: the quotient of two big integers, num / den, computed to
// 56 bits and rounded to 53 (fewer for a subnormal) with the remainder as a sticky bit.
function bigDecimalToF64(ptr: usize, len: i32, nd: i32, exp10: i32): f64 {
  const words = ((nd + (exp10 < 0 ? -exp10 : exp10)) * 7) / 64 + 8; // 10^k < 2^(3.33k), and room for the shifts
  const num = new Big(words);
  let taken = 0;
  for (let i = 0; i < len && taken < nd; i++) {
    const c = <u32>load<u8>(ptr + <usize>i);
    if (c < ZERO || c > ZERO + 9) continue; // - and .
    if (taken == 0 && c == ZERO) continue; // leading zeros
    num.mulSmall(10);
    num.addSmall(c - ZERO);
    taken++;
  }
  const den = new Big(words);
  den.addSmall(1);
  if (exp10 >= 0) num.mulPow10(exp10);
  else den.mulPow10(-exp10);
  // Scale so that num / den lies in (2^55, 2^57).
  const shift = 56 - (num.bitLength() - den.bitLength());
  if (shift > 0) num.shl(shift);
  else if (shift < 0) den.shl(-shift);
  // Binary long division: the quotient q (56 or 57 bits), the remainder left in num.
  den.shl(57);
  let q: u64 = 0;
  for (let b = 57; b >= 0; b--) {
    if (num.cmp(den) >= 0) {
      num.sub(den);
      q |= (<u64>1) << <u64>b;
    }
    den.shr1();
  }
  const sticky = !num.isZero();
  // The value is q × 2^-shift: keep 53 bits of q, fewer for a subnormal, round half to even.
  let drop = (64 - <i32>clz<u64>(q)) - 53;
  let e2 = drop - shift; // the value is about (q >> drop) × 2^e2
  if (e2 < -1074) {
    drop += -1074 - e2;
    e2 = -1074;
  }
  if (drop > 63) return 0; // below half the smallest subnormal
  let mant = q >> <u64>drop;
  const rest = q & (((<u64>1) << <u64>drop) - 1);
  const half = (<u64>1) << <u64>(drop - 1);
  if (rest > half || (rest == half && (sticky || (mant & 1) != 0))) mant++;
  if (mant == (<u64>1) << 53) {
    mant >>= 1;
    e2++;
  }
  if (mant < (<u64>1) << 52) return reinterpret<f64>(mant); // a subnormal (e2 is -1074)
  const biased = e2 + 1075;
  if (biased >= 2047) return Infinity;
  return reinterpret<f64>((<u64>biased << 52) | (mant & (((<u64>1) << 52) - 1)));
}

// Big is an unsigned big integer of a fixed capacity, little-endian 32-bit words: just the
// operations decimalToF64 needs.
class Big {
  w: StaticArray<u32>;
  n: i32 = 0; // words in use; w[n-1] != 0 unless n == 0

  constructor(capacity: i32) {
    this.w = new StaticArray<u32>(capacity);
  }

  isZero(): bool {
    return this.n == 0;
  }

  bitLength(): i32 {
    return this.n == 0 ? 0 : (this.n - 1) * 32 + 32 - <i32>clz<u32>(unchecked(this.w[this.n - 1]));
  }

  mulSmall(m: u32): void {
    let carry: u64 = 0;
    for (let k = 0; k < this.n; k++) {
      const t = <u64>unchecked(this.w[k]) * <u64>m + carry;
      unchecked((this.w[k] = <u32>t));
      carry = t >> 32;
    }
    if (carry != 0) unchecked((this.w[this.n++] = <u32>carry));
  }

  addSmall(a: u32): void {
    let carry = <u64>a;
    for (let k = 0; k < this.n && carry != 0; k++) {
      const t = <u64>unchecked(this.w[k]) + carry;
      unchecked((this.w[k] = <u32>t));
      carry = t >> 32;
    }
    if (carry != 0) unchecked((this.w[this.n++] = <u32>carry));
  }

  mulPow10(e: i32): void {
    for (; e >= 9; e -= 9) this.mulSmall(1000000000);
    if (e > 0) this.mulSmall(<u32>unchecked(EXACT_POWERS[e]));
  }

  shl(bits: i32): void {
    const ws = bits >> 5;
    const bs = bits & 31;
    const n = this.n;
    if (n == 0) return;
    let top: i32 = n + ws;
    if (bs != 0) {
      const over = unchecked(this.w[n - 1]) >> (32 - bs);
      unchecked((this.w[top] = over));
      for (let k = n - 1; k > 0; k--) {
        unchecked((this.w[k + ws] = (this.w[k] << bs) | (this.w[k - 1] >> (32 - bs))));
      }
      unchecked((this.w[ws] = this.w[0] << bs));
      this.n = over != 0 ? top + 1 : top;
    } else {
      for (let k = n - 1; k >= 0; k--) unchecked((this.w[k + ws] = this.w[k]));
      this.n = top;
    }
    for (let k = 0; k < ws; k++) unchecked((this.w[k] = 0));
  }

  shr1(): void {
    const n = this.n;
    for (let k = 0; k < n - 1; k++) {
      unchecked((this.w[k] = (this.w[k] >> 1) | (this.w[k + 1] << 31)));
    }
    if (n > 0) {
      unchecked((this.w[n - 1] = this.w[n - 1] >> 1));
      if (unchecked(this.w[n - 1]) == 0) this.n--;
    }
  }

  cmp(o: Big): i32 {
    if (this.n != o.n) return this.n < o.n ? -1 : 1;
    for (let k = this.n - 1; k >= 0; k--) {
      const a = unchecked(this.w[k]);
      const b = unchecked(o.w[k]);
      if (a != b) return a < b ? -1 : 1;
    }
    return 0;
  }

  // sub subtracts o, which is not larger.
  sub(o: Big): void {
    let borrow: i64 = 0;
    for (let k = 0; k < this.n; k++) {
      const t = <i64>unchecked(this.w[k]) - (k < o.n ? <i64>unchecked(o.w[k]) : 0) - borrow;
      unchecked((this.w[k] = <u32>t));
      borrow = t < 0 ? 1 : 0;
    }
    while (this.n > 0 && unchecked(this.w[this.n - 1]) == 0) this.n--;
  }
}

// describeByte names a byte for an error message: 'x' when printable ASCII, else 0xNN.
function describeByte(c: u32): string {
  if (c >= 0x20 && c < 0x7f) return "'" + String.fromCharCode(c) + "'";
  return "0x" + (c < 0x10 ? "0" : "") + c.toString(16);
}

// Word-at-a-time tests ("SWAR"): each lane of a u64 tested at once.
const ONES8: u64 = 0x0101010101010101;
const HIGHS8: u64 = 0x8080808080808080;
const ONES16: u64 = 0x0001000100010001;
const HIGHS16: u64 = 0x8000800080008000;

// plainASCII8 reports whether all 8 bytes of w are printable ASCII other than " and \, that is
// string content a scanner may skip. (x - ONES) & ~x & HIGHS is non-zero exactly when a byte
// of x is zero, and (x - n*ONES) & ~x & HIGHS when a byte is below n (n <= 0x80).
// @ts-ignore: decorator
@inline function plainASCII8(w: u64): bool {
  const q = w ^ (ONES8 * 0x22);
  const b = w ^ (ONES8 * 0x5c);
  return ((((q - ONES8) & ~q) | ((b - ONES8) & ~b) | ((w - ONES8 * 0x20) & ~w) | w) & HIGHS8) == 0;
}

// plainASCII4 is plainASCII8 for four UTF-16 units.
// @ts-ignore: decorator
@inline function plainASCII4(w: u64): bool {
  if ((w & 0xff80ff80ff80ff80) != 0) return false; // a unit above 0x7f
  const q = w ^ (ONES16 * 0x22);
  const b = w ^ (ONES16 * 0x5c);
  return ((((q - ONES16) & ~q) | ((b - ONES16) & ~b) | ((w - ONES16 * 0x20) & ~w)) & HIGHS16) == 0;
}

// widen4 turns four bytes (the low 32 bits of x) into four UTF-16 units.
// @ts-ignore: decorator
@inline function widen4(x: u64): u64 {
  x &= 0xffffffff;
  x = (x | (x << 16)) & 0x0000ffff0000ffff;
  return (x | (x << 8)) & 0x00ff00ff00ff00ff;
}

/**
 * decodeUTF8 decodes the UTF-8 bytes at [ptr, ptr+len) into a string, ASCII eight bytes at a
 * time. It is lenient, like String.UTF8.decode: a malformed sequence is read as its bits say
 * (use parseJSON, which checks UTF-8, on untrusted text).
 */
export function decodeUTF8(ptr: usize, len: i32): string {
  if (len <= 0) return "";
  const n = <usize>len;
  const out = __new(n << 1, idof<String>()); // at most one UTF-16 unit per byte
  let o = out;
  let i: usize = 0;
  while (i < n) {
    if (i + 8 <= n) {
      const w = load<u64>(ptr + i);
      if ((w & HIGHS8) == 0) {
        store<u64>(o, widen4(w));
        store<u64>(o, widen4(w >> 32), 8);
        i += 8;
        o += 16;
        continue;
      }
    }
    let c = <u32>load<u8>(ptr + i);
    i++;
    if (c >= 0xc0 && i < n) {
      // A lead byte: take the continuation bytes it announces (those present).
      let more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : 1;
      c &= c >= 0xf0 ? 0x07 : c >= 0xe0 ? 0x0f : 0x1f;
      while (more > 0 && i < n) {
        c = (c << 6) | (<u32>load<u8>(ptr + i) & 0x3f);
        i++;
        more--;
      }
      if (c >= 0x10000) {
        c -= 0x10000;
        store<u16>(o, <u16>(0xd800 | (c >> 10)));
        o += 2;
        c = 0xdc00 | (c & 0x3ff);
      }
    }
    store<u16>(o, <u16>c);
    o += 2;
  }
  return changetype<string>(__renew(out, o - out));
}

// decodeJSONString decodes string content checked by the parser: UTF-8 with escapes when
// escaped. A \u escape of a surrogate pair is one code point; a lone surrogate is U+FFFD.
function decodeJSONString(ptr: usize, len: i32, escaped: bool): string {
  if (!escaped) return decodeUTF8(ptr, len);
  const parts = new Array<string>();
  let i = 0;
  let run = 0; // start of the current run of plain bytes
  while (i < len) {
    if (load<u8>(ptr + <usize>i) != <u8>BACKSLASH) {
      i++;
      continue;
    }
    if (i > run) parts.push(decodeUTF8(ptr + <usize>run, i - run));
    const c = <u32>load<u8>(ptr + <usize>i + 1);
    i += 2;
    switch (c) {
      case 0x62: parts.push("\b"); break;
      case 0x66: parts.push("\f"); break;
      case 0x6e: parts.push("\n"); break;
      case 0x72: parts.push("\r"); break;
      case 0x74: parts.push("\t"); break;
      case 0x75: {
        const u = hexAt(ptr + <usize>i);
        i += 4;
        if (u >= 0xd800 && u <= 0xdbff && i + 6 <= len && load<u8>(ptr + <usize>i) == <u8>BACKSLASH &&
          load<u8>(ptr + <usize>i + 1) == 0x75) {
          const low = hexAt(ptr + <usize>i + 2);
          if (low >= 0xdc00 && low <= 0xdfff) {
            parts.push(String.fromCodePoint(0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00)));
            i += 6;
            break;
          }
        }
        parts.push(u >= 0xd800 && u <= 0xdfff ? "\uFFFD" : String.fromCharCode(u));
        break;
      }
      default: parts.push(String.fromCharCode(c)); // " \ /
    }
    run = i;
  }
  if (len > run) parts.push(decodeUTF8(ptr + <usize>run, len - run));
  return parts.join("");
}

// hexAt reads four hex digits the parser checked.
function hexAt(p: usize): i32 {
  let v: i32 = 0;
  for (let k: usize = 0; k < 4; k++) {
    const c = <i32>load<u8>(p + k) | 0x20; // digits are unchanged, letters lower-case
    v = (v << 4) | (c <= 0x39 ? c - 0x30 : c - 0x61 + 10);
  }
  return v;
}

/**
 * JSONWriter writes compact JSON as UTF-8 into a growing buffer. Calls chain:
 *
 *   const w = new JSONWriter();
 *   w.beginObject().key("rate").number(3).key("unit").string("kWh/h").endObject();
 *   emit("", w.toBytes());
 *
 * It puts the commas and colons; the caller keeps to the grammar (a key before each value in
 * an object, matched begin and end).
 */
export class JSONWriter {
  private buf: ArrayBuffer;
  private n: i32 = 0;
  private needComma: bool = false;

  constructor(capacity: i32 = 64) {
    this.buf = new ArrayBuffer(max(capacity, 16));
  }

  /** The bytes written so far (a copy). */
  toBytes(): ArrayBuffer {
    return this.buf.slice(0, this.n);
  }

  /** The text written so far. */
  toString(): string {
    return decodeUTF8(changetype<usize>(this.buf), this.n);
  }

  /** The number of bytes written so far. */
  get length(): i32 {
    return this.n;
  }

  beginObject(): JSONWriter {
    this.separate();
    this.byte(<u8>LBRACE);
    this.needComma = false;
    return this;
  }

  endObject(): JSONWriter {
    this.byte(<u8>RBRACE);
    this.needComma = true;
    return this;
  }

  beginArray(): JSONWriter {
    this.separate();
    this.byte(<u8>LBRACKET);
    this.needComma = false;
    return this;
  }

  endArray(): JSONWriter {
    this.byte(<u8>RBRACKET);
    this.needComma = true;
    return this;
  }

  /** Writes an object key; the next call writes its value. */
  key(k: string): JSONWriter {
    this.separate();
    this.quoted(k);
    this.byte(<u8>COLON);
    this.needComma = false;
    return this;
  }

  string(s: string): JSONWriter {
    this.separate();
    this.quoted(s);
    this.needComma = true;
    return this;
  }

  /** Writes a number: integral values without a fraction, NaN and infinities as null. */
  number(f: f64): JSONWriter {
    this.separate();
    this.ascii(formatJSONNumber(f));
    this.needComma = true;
    return this;
  }

  integer(i: i64): JSONWriter {
    this.separate();
    this.ascii(i.toString());
    this.needComma = true;
    return this;
  }

  bool(b: bool): JSONWriter {
    this.separate();
    this.ascii(b ? "true" : "false");
    this.needComma = true;
    return this;
  }

  nullValue(): JSONWriter {
    this.separate();
    this.ascii("null");
    this.needComma = true;
    return this;
  }

  /** Writes a parsed or built value, recursively. */
  value(v: JSONValue): JSONWriter {
    switch (v.kind) {
      case JSONKind.Null:
        this.nullValue();
        break;
      case JSONKind.Bool:
        this.bool(v.asBool());
        break;
      case JSONKind.Number:
        this.number(v.asNumber());
        break;
      case JSONKind.String: {
        const src = v.src;
        if (src != null) {
          // Parsed and never decoded: its checked content is valid JSON as it is.
          this.separate();
          this.reserve(v.srcLen + 2);
          this.byte(<u8>QUOTE);
          memory.copy(changetype<usize>(this.buf) + <usize>this.n, changetype<usize>(src) + <usize>v.srcStart, <usize>v.srcLen);
          this.n += v.srcLen;
          this.byte(<u8>QUOTE);
          this.needComma = true;
        } else {
          this.string(v.asString());
        }
        break;
      }
      case JSONKind.Array: {
        this.beginArray();
        const items = v.items();
        for (let i = 0; i < items.length; i++) this.value(unchecked(items[i]));
        this.endArray();
        break;
      }
      default: {
        this.beginObject();
        const keys = v.keys();
        const values = v.values();
        for (let i = 0; i < keys.length; i++) this.key(unchecked(keys[i])).value(unchecked(values[i]));
        this.endObject();
      }
    }
    return this;
  }

  private separate(): void {
    if (this.needComma) this.byte(<u8>COMMA);
  }

  private reserve(extra: i32): void {
    const need = this.n + extra;
    const cap = this.buf.byteLength;
    if (need <= cap) return;
    let size = cap << 1;
    if (size < need) size = need;
    const grown = new ArrayBuffer(size);
    memory.copy(changetype<usize>(grown), changetype<usize>(this.buf), <usize>this.n);
    this.buf = grown;
  }

  private byte(b: u8): void {
    this.reserve(1);
    store<u8>(changetype<usize>(this.buf) + <usize>this.n, b);
    this.n++;
  }

  private ascii(s: string): void {
    const n = s.length;
    this.reserve(n);
    const p = changetype<usize>(this.buf) + <usize>this.n;
    for (let i = 0; i < n; i++) store<u8>(p + <usize>i, <u8>s.charCodeAt(i));
    this.n += n;
  }

  // quoted writes s as a JSON string: UTF-16 to UTF-8, with the escapes JSON requires, and a
  // lone surrogate (which UTF-8 cannot carry) as a \uXXXX escape.
  private quoted(s: string): void {
    const n = s.length;
    this.reserve(n * 3 + 2); // at most 3 UTF-8 bytes per UTF-16 unit; escapes grow on demand
    this.byte(<u8>QUOTE);
    const sp = changetype<usize>(s);
    for (let i = 0; i < n; i++) {
      // Four plain ASCII units at a time, narrowed to four bytes.
      while (i + 4 <= n) {
        const w = load<u64>(sp + (<usize>i << 1));
        if (!plainASCII4(w)) break;
        this.reserve(4);
        store<u32>(changetype<usize>(this.buf) + <usize>this.n,
          <u32>((w & 0xff) | ((w >> 8) & 0xff00) | ((w >> 16) & 0xff0000) | ((w >> 24) & 0xff000000)));
        this.n += 4;
        i += 4;
      }
      if (i >= n) break;
      const c = <u32>s.charCodeAt(i);
      if (c < 0x80) {
        if (c == QUOTE || c == BACKSLASH) {
          this.byte(<u8>BACKSLASH);
          this.byte(<u8>c);
        } else if (c >= 0x20) {
          this.byte(<u8>c);
        } else if (c == 0x0a) {
          this.ascii("\\n");
        } else if (c == 0x0d) {
          this.ascii("\\r");
        } else if (c == 0x09) {
          this.ascii("\\t");
        } else {
          this.escapeUnit(c);
        }
      } else if (c < 0x800) {
        this.reserve(2);
        this.byte(<u8>(0xc0 | (c >> 6)));
        this.byte(<u8>(0x80 | (c & 0x3f)));
      } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < n && <u32>s.charCodeAt(i + 1) >= 0xdc00 && <u32>s.charCodeAt(i + 1) <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (<u32>s.charCodeAt(i + 1) - 0xdc00);
        i++;
        this.reserve(4);
        this.byte(<u8>(0xf0 | (cp >> 18)));
        this.byte(<u8>(0x80 | ((cp >> 12) & 0x3f)));
        this.byte(<u8>(0x80 | ((cp >> 6) & 0x3f)));
        this.byte(<u8>(0x80 | (cp & 0x3f)));
      } else if (c >= 0xd800 && c <= 0xdfff) {
        this.escapeUnit(c); // a lone surrogate
      } else {
        this.reserve(3);
        this.byte(<u8>(0xe0 | (c >> 12)));
        this.byte(<u8>(0x80 | ((c >> 6) & 0x3f)));
        this.byte(<u8>(0x80 | (c & 0x3f)));
      }
    }
    this.byte(<u8>QUOTE);
  }

  private escapeUnit(c: u32): void {
    let hex = c.toString(16);
    while (hex.length < 4) hex = "0" + hex;
    this.ascii("\\u" + hex);
  }
}

/** quoteJSON gives s as a JSON string literal, with its quotes. */
export function quoteJSON(s: string): string {
  return new JSONWriter(s.length + 2).string(s).toString();
}

/**
 * formatJSONNumber prints f the way JSONWriter.number does: integral values up to 2^53
 * without a fraction ("3"), others in AssemblyScript's shortest round-trip form ("0.1",
 * "1.5e+300"), NaN and infinities as "null" (JSON has no such numbers).
 */
export function formatJSONNumber(f: f64): string {
  if (!isFinite(f)) return "null";
  if (Math.floor(f) == f && Math.abs(f) <= 9007199254740992.0) return (<i64>f).toString();
  return f.toString();
}
