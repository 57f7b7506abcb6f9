/*
 * switchyard.h — the Switchyard guest ABI v1 for C, in one header.
 *
 * A thin layer over sdk/ABI.md: the host functions of the "switchyard_v1"
 * import module, the export names the host calls, and a few helpers every
 * guest needs (reading a value with the "true length" rule, building
 * messages without printf, reading JSON). Everything is `static inline`:
 * a function you do not call costs nothing, and a host function you do not
 * call is not imported (the host refuses unknown imports, so a module imports
 * only what it uses).
 *
 * Build (Debian bookworm: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32):
 *
 *   clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Wextra \
 *         -I sdk/c -Wl,--strip-all -o guest.wasm guest.c
 *
 * A minimal transform (a pass-through):
 *
 *   #include "switchyard.h"
 *   SY_ABI_VERSION_EXPORT
 *   static sy_buf payload = SY_BUF_INIT(64 * 1024);
 *   SY_TRANSFORM {
 *       int32_t st = sy_buf_input(&payload, SY_FIELD_PAYLOAD);
 *       if (st == SY_TOO_LARGE) return sy_fail_cstr("payload over 64 KiB");
 *       if (st < 0) return sy_fail_cstr("input: no message");
 *       if (sy_emit(0, 0, payload.data, payload.len) < 0) return sy_fail_cstr("emit refused");
 *       return 0;
 *   }
 *
 * Conventions of this header:
 *   - Lengths are uint32_t (wasm32 pointers and lengths are 32 bits).
 *   - Functions that can fail return int32_t: 0 (SY_OK) or a non-negative
 *     length on success, a negative status (SY_ABSENT ... SY_FAILED, the codes
 *     of the ABI, or SY_TOO_LARGE / SY_NO_MEMORY, which the host never returns:
 *     they come from this header) otherwise.
 *   - Nothing here allocates, except the sy_buf helpers (malloc/realloc).
 *   - Nothing here recurses: the JSON reader walks nested values with a loop,
 *     and its skip function refuses nesting deeper than SY_JSON_MAX_DEPTH.
 *
 * See sdk/c/README.md for a walk-through and sdk/ABI.md for the contract.
 */
#ifndef SWITCHYARD_H
#define SWITCHYARD_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>  /* snprintf: only sy_str_double and sy_str_float use it */
#include <stdlib.h> /* strtod, strtof, realloc, free */
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes (sdk/ABI.md, "Status codes")                                */
/* ------------------------------------------------------------------------ */

enum {
    SY_OK = 0,
    SY_ABSENT = -1,       /* no such value: an absent state key; no input message in scope */
    SY_BAD_ARGUMENT = -2, /* out-of-bounds pointer, subject not UTF-8, bad field or level */
    SY_LIMIT = -3,        /* emits or output bytes per call, state size, http sizes */
    SY_NOT_ALLOWED = -4,  /* emit in sy_init; an http_fetch the policy refuses */
    SY_FAILED = -5,       /* http_fetch only: network, TLS, HTTP error or timeout */
    /* Guest-side codes, never returned by the host: */
    SY_TOO_LARGE = -100, /* the value is larger than the caller allows */
    SY_NO_MEMORY = -101  /* malloc/realloc failed */
};

/* Fields of the input message (the `input` import). */
enum { SY_FIELD_PAYLOAD = 0, SY_FIELD_SUBJECT = 1, SY_FIELD_SOURCE = 2 };

/* Log levels (the `log` import). Per-message logging belongs at SY_DEBUG. */
enum { SY_DEBUG = 0, SY_INFO = 1, SY_WARN = 2, SY_ERROR = 3 };

/* The major version of the ABI, which sy_abi_version must return. */
#define SY_ABI_VERSION 1

/* ------------------------------------------------------------------------ */
/* Imports: the host functions, one to one with sdk/ABI.md                  */
/* ------------------------------------------------------------------------ */

#if defined(__wasm__)
#define SY_IMPORT(name) __attribute__((import_module("switchyard_v1"), import_name(name)))
#define SY_EXPORT(name) __attribute__((export_name(name)))
#else
/* A native build (unit tests of the helpers below): the host functions are
 * plain externs the test provides, and exports are ordinary functions. */
#define SY_IMPORT(name)
#define SY_EXPORT(name)
#endif

/* log writes [ptr, ptr+len) to the host's log at level (SY_DEBUG..SY_ERROR). */
SY_IMPORT("log") void sy_log(int32_t level, const void *ptr, uint32_t len);
/* now is the host's clock, Unix nanoseconds. */
SY_IMPORT("now") int64_t sy_now(void);
/* config writes the instance's configuration (a JSON object, "{}" when none)
 * to [buf, buf+limit) when it fits and returns its true length. */
SY_IMPORT("config") int32_t sy_config(void *buf, uint32_t limit);
/* input writes field SY_FIELD_* of the input message to [buf, buf+limit) when
 * it fits and returns its true length; -1 outside sy_transform. */
SY_IMPORT("input") int32_t sy_input(int32_t field, void *buf, uint32_t limit);
/* input_time is the input's time (sy_transform) or the call's (sy_collect), Unix ns. */
SY_IMPORT("input_time") int64_t sy_input_time(void);
/* emit queues one output; subject_len 0 keeps the input's subject. Returns a status. */
SY_IMPORT("emit")
int32_t sy_emit(const void *subject, uint32_t subject_len, const void *payload, uint32_t payload_len);
/* state_get returns the true length of the value under key (written to buf when
 * it fits), or SY_ABSENT. */
SY_IMPORT("state_get")
int32_t sy_state_get(const void *key, uint32_t key_len, void *buf, uint32_t limit);
/* state_set stores a copy of the value under key; SY_LIMIT when the state is full. */
SY_IMPORT("state_set")
int32_t sy_state_set(const void *key, uint32_t key_len, const void *val, uint32_t val_len);
/* state_delete removes key (0 also when it was absent). */
SY_IMPORT("state_delete") int32_t sy_state_delete(const void *key, uint32_t key_len);
/* fail gives the error message of the current call; then return non-zero. */
SY_IMPORT("fail") void sy_fail(const void *ptr, uint32_t len);
/* http_fetch makes the request described by the JSON at [req, req+req_len) and
 * returns the length of the response JSON, or a status (see sdk/ABI.md). */
SY_IMPORT("http_fetch") int32_t sy_http_fetch(const void *req, uint32_t req_len);
/* http_response reads the response JSON of the last successful http_fetch. */
SY_IMPORT("http_response") int32_t sy_http_response(void *buf, uint32_t limit);
/* http_error reads why the last http_fetch failed. */
SY_IMPORT("http_error") int32_t sy_http_error(void *buf, uint32_t limit);

/* ------------------------------------------------------------------------ */
/* Exports                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Put SY_ABI_VERSION_EXPORT once in your program, then define the calls you
 * implement with SY_INIT, SY_TRANSFORM and SY_COLLECT, each followed by a body
 * that returns 0 on success or non-zero after sy_fail*:
 *
 *   SY_ABI_VERSION_EXPORT
 *   SY_INIT      { ... return 0; }   optional: read the configuration
 *   SY_TRANSFORM { ... return 0; }   for a transform
 *   SY_COLLECT   { ... return 0; }   for a collector
 *
 * Compile with -mexec-model=reactor: wasi-libc then exports `_initialize`,
 * which the host calls before anything else (it runs C constructors).
 */
#define SY_ABI_VERSION_EXPORT                                                                      \
    SY_EXPORT("sy_abi_version") int32_t sy_abi_version(void);                                      \
    int32_t sy_abi_version(void) { return SY_ABI_VERSION; }
#define SY_INIT                                                                                    \
    SY_EXPORT("sy_init") int32_t sy_init(void);                                                    \
    int32_t sy_init(void)
#define SY_TRANSFORM                                                                               \
    SY_EXPORT("sy_transform") int32_t sy_transform(void);                                          \
    int32_t sy_transform(void)
#define SY_COLLECT                                                                                 \
    SY_EXPORT("sy_collect") int32_t sy_collect(void);                                              \
    int32_t sy_collect(void)

/* ------------------------------------------------------------------------ */
/* Reading values into a caller's buffer: the "true length" rule            */
/* ------------------------------------------------------------------------ */

/* sy__fit turns an import's result r for a buffer of cap bytes into a status:
 * SY_OK with *len = r when the value is now at buf[0:r]; SY_TOO_LARGE with
 * *len = r (the size to call again with) when it did not fit; or r itself
 * when it is a negative status. */
static inline int32_t sy__fit(int32_t r, uint32_t cap, uint32_t *len) {
    if (r < 0) return r;
    if (len) *len = (uint32_t)r;
    return (uint32_t)r <= cap ? SY_OK : SY_TOO_LARGE;
}

/* sy_read_config reads the configuration into [buf, buf+cap). */
static inline int32_t sy_read_config(void *buf, uint32_t cap, uint32_t *len) {
    return sy__fit(sy_config(buf, cap), cap, len);
}

/* sy_read_input reads one field (SY_FIELD_*) of the input message into [buf, buf+cap). */
static inline int32_t sy_read_input(int32_t field, void *buf, uint32_t cap, uint32_t *len) {
    return sy__fit(sy_input(field, buf, cap), cap, len);
}

/* sy_read_state reads the value stored under key into [buf, buf+cap); SY_ABSENT when none. */
static inline int32_t sy_read_state(const void *key, uint32_t key_len, void *buf, uint32_t cap,
                                    uint32_t *len) {
    return sy__fit(sy_state_get(key, key_len, buf, cap), cap, len);
}

/* sy_read_http_response reads the response JSON of the last http_fetch into [buf, buf+cap). */
static inline int32_t sy_read_http_response(void *buf, uint32_t cap, uint32_t *len) {
    return sy__fit(sy_http_response(buf, cap), cap, len);
}

/* sy_read_http_error reads why the last http_fetch failed into [buf, buf+cap). */
static inline int32_t sy_read_http_error(void *buf, uint32_t cap, uint32_t *len) {
    return sy__fit(sy_http_error(buf, cap), cap, len);
}

/* ------------------------------------------------------------------------ */
/* sy_buf: a growable buffer for values of unknown size                     */
/* ------------------------------------------------------------------------ */

/*
 * An sy_buf keeps one heap buffer and reuses it from call to call: a read
 * passes the whole capacity as the limit and only when the value is larger
 * grows the buffer to the true length and reads again (so most reads cost one
 * host call and no allocation). `max` bounds the value: a larger one is
 * refused with SY_TOO_LARGE (and `want` says how large it was) instead of
 * being allocated. After a successful read, data[0:len] is the value and
 * data[len] is a NUL byte, so text can also be used as a C string.
 */
typedef struct {
    char *data;
    uint32_t len;  /* bytes of the last value read */
    uint32_t cap;  /* bytes usable at data (data holds cap+1 for the NUL) */
    uint32_t max;  /* the largest value accepted */
    uint32_t want; /* the true length of the last value, also when it was refused */
} sy_buf;

#define SY_BUF_INIT(max_bytes) {0, 0, 0, (max_bytes), 0}

/* sy_buf_reserve makes room for n bytes (plus the NUL). */
static inline int32_t sy_buf_reserve(sy_buf *b, uint32_t n) {
    if (n <= b->cap && b->data) return SY_OK;
    if (n == UINT32_MAX) return SY_NO_MEMORY;
    char *p = (char *)realloc(b->data, (size_t)n + 1);
    if (!p) return SY_NO_MEMORY;
    b->data = p;
    b->cap = n;
    return SY_OK;
}

/* sy_buf_free releases the buffer; the sy_buf can be used again. */
static inline void sy_buf_free(sy_buf *b) {
    free(b->data);
    b->data = 0;
    b->len = b->cap = b->want = 0;
}

/* The readers sy__buf_read drives, one per host function, so that a guest
 * imports only the host functions of the readers it calls. */
typedef struct {
    int32_t field;
    const void *key;
    uint32_t key_len;
} sy__buf_arg;
typedef int32_t (*sy__buf_reader)(const sy__buf_arg *a, void *buf, uint32_t limit);

static inline int32_t sy__buf_config(const sy__buf_arg *a, void *buf, uint32_t limit) {
    (void)a;
    return sy_config(buf, limit);
}
static inline int32_t sy__buf_input(const sy__buf_arg *a, void *buf, uint32_t limit) {
    return sy_input(a->field, buf, limit);
}
static inline int32_t sy__buf_state(const sy__buf_arg *a, void *buf, uint32_t limit) {
    return sy_state_get(a->key, a->key_len, buf, limit);
}
static inline int32_t sy__buf_http(const sy__buf_arg *a, void *buf, uint32_t limit) {
    (void)a;
    return sy_http_response(buf, limit);
}

/* sy__buf_read applies the true-length rule: read with the whole capacity;
 * when the value is larger (and not above max), grow to it and read again. */
static inline int32_t sy__buf_read(sy_buf *b, sy__buf_reader read, const sy__buf_arg *a) {
    b->len = 0;
    if (sy_buf_reserve(b, b->cap) < 0) return SY_NO_MEMORY; /* first use: room for the NUL */
    b->data[0] = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        int32_t r = read(a, b->data, b->cap);
        if (r < 0) return r;
        b->want = (uint32_t)r;
        if ((uint32_t)r <= b->cap) {
            b->len = (uint32_t)r;
            b->data[r] = 0;
            return SY_OK;
        }
        if ((uint32_t)r > b->max) return SY_TOO_LARGE;
        if (sy_buf_reserve(b, (uint32_t)r) < 0) return SY_NO_MEMORY;
    }
    return SY_BAD_ARGUMENT; /* the value kept changing size: cannot happen within a call */
}

/* sy_buf_config reads the configuration into b. */
static inline int32_t sy_buf_config(sy_buf *b) {
    sy__buf_arg a = {0, 0, 0};
    return sy__buf_read(b, sy__buf_config, &a);
}
/* sy_buf_input reads one field (SY_FIELD_*) of the input message into b. */
static inline int32_t sy_buf_input(sy_buf *b, int32_t field) {
    sy__buf_arg a = {field, 0, 0};
    return sy__buf_read(b, sy__buf_input, &a);
}
/* sy_buf_state reads the value stored under key into b; SY_ABSENT when none. */
static inline int32_t sy_buf_state(sy_buf *b, const void *key, uint32_t key_len) {
    sy__buf_arg a = {0, key, key_len};
    return sy__buf_read(b, sy__buf_state, &a);
}
/* sy_buf_http_response reads the response JSON of the last http_fetch into b. */
static inline int32_t sy_buf_http_response(sy_buf *b) {
    sy__buf_arg a = {0, 0, 0};
    return sy__buf_read(b, sy__buf_http, &a);
}

/* ------------------------------------------------------------------------ */
/* sy_str: building text in a fixed buffer, without printf                  */
/* ------------------------------------------------------------------------ */

/*
 * An sy_str appends to a caller's buffer and never writes past it. When a
 * piece does not fit, as much of it as fits is kept, cut at a UTF-8 character
 * boundary, `truncated` is set and later pieces are ignored, so the text is
 * always valid UTF-8 if its pieces were. p[len] is kept a NUL byte.
 *
 *   char m[256]; sy_str s; sy_str_init(&s, m, sizeof m);
 *   sy_str_cstr(&s, "config: unknown field "); sy_str_json(&s, key, key_len);
 *   return sy_fail_str(&s);
 */
typedef struct {
    char *p;
    uint32_t len;
    uint32_t cap; /* bytes of text p can hold (its size minus the NUL) */
    int truncated;
} sy_str;

/* sy_utf8_trim returns the largest n' <= n such that s[0:n'] does not end in
 * the middle of a UTF-8 sequence (given that s[0:n] starts on a boundary). */
static inline uint32_t sy_utf8_trim(const char *s, uint32_t n) {
    const unsigned char *u = (const unsigned char *)s;
    uint32_t i = n, back = 0;
    while (i > 0 && back < 4 && (u[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return n;
    unsigned char lead = u[i - 1];
    uint32_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return (n - (i - 1) < need) ? i - 1 : n;
}

static inline void sy_str_init(sy_str *s, char *buf, uint32_t size) {
    s->p = buf;
    s->len = 0;
    s->cap = size ? size - 1 : 0;
    s->truncated = 0;
    if (size) buf[0] = 0;
}

/* sy_str_reset empties s, keeping its buffer. */
static inline void sy_str_reset(sy_str *s) {
    s->len = 0;
    s->truncated = 0;
    if (s->p) s->p[0] = 0;
}

static inline void sy_str_bytes(sy_str *s, const void *b, uint32_t n) {
    if (s->truncated) return;
    if (n > s->cap - s->len) {
        n = sy_utf8_trim((const char *)b, s->cap - s->len);
        s->truncated = 1;
    }
    memcpy(s->p + s->len, b, n);
    s->len += n;
    if (s->p) s->p[s->len] = 0;
}

static inline void sy_str_cstr(sy_str *s, const char *c) { sy_str_bytes(s, c, (uint32_t)strlen(c)); }

static inline void sy_str_char(sy_str *s, char c) { sy_str_bytes(s, &c, 1); }

static inline void sy_str_uint(sy_str *s, uint64_t v) {
    char d[20];
    int n = 0;
    do d[sizeof d - 1 - n++] = (char)('0' + v % 10); while ((v /= 10) != 0);
    sy_str_bytes(s, d + sizeof d - n, (uint32_t)n);
}

static inline void sy_str_int(sy_str *s, int64_t v) {
    if (v < 0) {
        sy_str_char(s, '-');
        sy_str_uint(s, (uint64_t)0 - (uint64_t)v);
    } else {
        sy_str_uint(s, (uint64_t)v);
    }
}

/* sy_str_json appends [b, b+n) as a JSON string, quoted and escaped. The bytes
 * should be UTF-8 (they are copied as they are, except for the escapes). The
 * string is appended whole or not at all (then `truncated` is set). */
static inline void sy_str_json(sy_str *s, const void *b, uint32_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)b;
    uint32_t start = s->len;
    sy_str_char(s, '"');
    for (uint32_t i = 0; i < n && !s->truncated; i++) {
        unsigned char c = u[i];
        char e[6] = {'\\', 0, 0, 0, 0, 0};
        switch (c) {
        case '"': e[1] = '"'; sy_str_bytes(s, e, 2); continue;
        case '\\': e[1] = '\\'; sy_str_bytes(s, e, 2); continue;
        case '\n': e[1] = 'n'; sy_str_bytes(s, e, 2); continue;
        case '\r': e[1] = 'r'; sy_str_bytes(s, e, 2); continue;
        case '\t': e[1] = 't'; sy_str_bytes(s, e, 2); continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7F) {
            e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
            sy_str_bytes(s, e, 6);
        } else {
            sy_str_bytes(s, &u[i], 1);
        }
    }
    sy_str_char(s, '"');
    if (s->truncated) { /* all or nothing: take the partial string back */
        s->len = start;
        if (s->p) s->p[start] = 0;
    }
}

/* sy_str_double appends v as a JSON number: the shortest text of at most
 * max_digits (1..17) significant digits that reads back as exactly v, or v
 * rounded to max_digits digits when none does. 17 gives the exact shortest
 * form; 15 hides the last-bit noise of arithmetic (3 * 0.1 gives 0.3).
 * Returns -1, appending nothing, for NaN and infinities (JSON has none).
 * Uses snprintf and strtod from wasi-libc. */
static inline int sy_str_double(sy_str *s, double v, int max_digits) {
    char t[40];
    int n = 0;
    if (v != v || v - v != 0) return -1;
    if (v == 0) v = 0; /* no "-0" */
    if (max_digits < 1) max_digits = 1;
    if (max_digits > 17) max_digits = 17;
    for (int p = 1; p <= max_digits; p++) {
        n = snprintf(t, sizeof t, "%.*g", p, v);
        if (n < 0 || n >= (int)sizeof t) return -1;
        if (strtod(t, 0) == v) break;
    }
    sy_str_bytes(s, t, (uint32_t)n);
    return 0;
}

/* sy_str_float appends a float (such as a float32 register pair) as the
 * shortest JSON number that reads back as the same float: 230.1f gives
 * "230.1", not "230.100006103515625". -1 for NaN and infinities. */
static inline int sy_str_float(sy_str *s, float v) {
    char t[40];
    int n = 0;
    if (v != v || v - v != 0) return -1;
    if (v == 0) v = 0;
    for (int p = 1; p <= 9; p++) {
        n = snprintf(t, sizeof t, "%.*g", p, (double)v);
        if (n < 0 || n >= (int)sizeof t) return -1;
        if (strtof(t, 0) == v) break;
    }
    sy_str_bytes(s, t, (uint32_t)n);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Failing and logging                                                      */
/* ------------------------------------------------------------------------ */

/* sy_fail_cstr gives msg as the call's error and returns 1, so that
 * `return sy_fail_cstr("payload: empty");` ends an export. */
static inline int32_t sy_fail_cstr(const char *msg) {
    sy_fail(msg, (uint32_t)strlen(msg));
    return 1;
}

/* sy_fail_str gives the text of s as the call's error and returns 1. */
static inline int32_t sy_fail_str(const sy_str *s) {
    sy_fail(s->p, s->len);
    return 1;
}

/* sy_fail_parts joins C strings, up to a NULL, into one error message (at
 * most 512 bytes) and returns 1: use it through SY_FAIL("a", b, "c"). */
static inline int32_t sy_fail_parts(const char *first, ...) {
    char m[513];
    sy_str s;
    va_list ap;
    sy_str_init(&s, m, sizeof m);
    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *)) sy_str_cstr(&s, p);
    va_end(ap);
    return sy_fail_str(&s);
}
#define SY_FAIL(...) sy_fail_parts(__VA_ARGS__, (const char *)0)

/* sy_log_cstr writes a NUL-terminated line to the host's log. */
static inline void sy_log_cstr(int32_t level, const char *line) {
    sy_log(level, line, (uint32_t)strlen(line));
}

/* sy_emit_str emits the text of s on the subject of sub (NULL: the input's). */
static inline int32_t sy_emit_str(const sy_str *sub, const sy_str *payload) {
    return sy_emit(sub ? sub->p : 0, sub ? sub->len : 0, payload->p, payload->len);
}

/* ------------------------------------------------------------------------ */
/* A JSON reader                                                            */
/* ------------------------------------------------------------------------ */

/*
 * sy_json is a pull reader over a JSON text in memory (RFC 8259): it never
 * allocates, never recurses, never reads outside [data, data+len), and keeps
 * the first error it meets (later calls then fail at once). The caller walks
 * the values it expects and skips the others:
 *
 *   sy_json j; sy_json_init(&j, buf.data, buf.len);
 *   if (sy_json_peek(&j) != SY_JSON_OBJECT) ... not an object
 *   sy_json_object_begin(&j);
 *   char key[32]; uint32_t klen; int r;
 *   while ((r = sy_json_object_next(&j, key, sizeof key, &klen)) == 1) {
 *       if (sy_json_key_is(key, klen, "factor")) {
 *           if (sy_json_peek(&j) != SY_JSON_NUMBER) ... wrong type
 *           sy_json_number(&j, &factor);
 *       } else {
 *           sy_json_skip(&j);   // or refuse the unknown key
 *       }
 *   }
 *   if (r < 0 || sy_json_finish(&j) < 0) ... sy_json_error(&j), sy_json_offset(&j)
 *
 * Inside an array, sy_json_array_next returns 1 before each element and 0 at
 * the closing bracket. Functions returning int give 0 (or 1 for "another
 * member/element") on success and -1 on a syntax error.
 *
 * Strings are decoded into UTF-8: escapes including \uXXXX and surrogate
 * pairs; an unpaired surrogate or a byte that is not UTF-8 becomes U+FFFD
 * (as Go's encoding/json does). Numbers are read with strtod; a number too
 * large for a double is an error. Duplicate keys are reported to the caller
 * like any other (refuse or accept them as you see fit).
 */

#ifndef SY_JSON_MAX_DEPTH
#define SY_JSON_MAX_DEPTH 128 /* nesting sy_json_skip accepts */
#endif
#ifndef SY_JSON_MAX_NUMBER
#define SY_JSON_MAX_NUMBER 128 /* characters of one number */
#endif

enum {
    SY_JSON_ERROR = -1,
    SY_JSON_NULL = 0,
    SY_JSON_BOOL,
    SY_JSON_NUMBER,
    SY_JSON_STRING,
    SY_JSON_ARRAY,
    SY_JSON_OBJECT
};

typedef struct {
    const unsigned char *start, *p, *end;
    const char *err; /* the first error, a static string; NULL when none */
    uint32_t err_at; /* byte offset of the first error */
    int first;       /* just after '[' or '{': no comma expected */
    int limit;       /* the error is a limit of the reader, not a syntax error */
    uint32_t values; /* values and keys read so far */
    /* The most values and keys the reader reads (0: no limit). A budget bounds
     * the time a text takes, whatever its shape: a 1 MiB array of 0s is half
     * a million values. Set it after sy_json_init. */
    uint32_t max_values;
} sy_json;

static inline void sy_json_init(sy_json *j, const void *data, uint32_t len) {
    j->start = j->p = (const unsigned char *)data;
    j->end = j->p + len;
    j->err = 0;
    j->err_at = 0;
    j->first = 0;
    j->limit = 0;
    j->values = 0;
    j->max_values = 0;
}

/* sy_json_error is the first error ("unexpected end of JSON", ...) or NULL. */
static inline const char *sy_json_error(const sy_json *j) { return j->err; }
/* sy_json_offset is the byte offset of the first error (or of the cursor). */
static inline uint32_t sy_json_offset(const sy_json *j) {
    return j->err ? j->err_at : (uint32_t)(j->p - j->start);
}

static inline int sy__json_fail(sy_json *j, const char *why) {
    if (!j->err) {
        j->err = why;
        j->err_at = (uint32_t)(j->p - j->start);
    }
    return -1;
}

/* sy__json_limit records an error that is a limit of the reader. */
static inline int sy__json_limit(sy_json *j, const char *why) {
    if (!j->err) j->limit = 1;
    return sy__json_fail(j, why);
}

/* sy__json_count counts one value (or key) against max_values. */
static inline int sy__json_count(sy_json *j) {
    if (j->max_values && j->values >= j->max_values) return sy__json_limit(j, "too many values");
    j->values++;
    return 0;
}

static inline void sy__json_ws(sy_json *j) {
    /* a local cursor: the compiler cannot keep j->p in a register, since a
     * byte read through it might alias it */
    const unsigned char *p = j->p, *e = j->end;
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    j->p = p;
}

/* sy_json_key_is reports whether the key read by sy_json_object_next is lit. */
static inline int sy_json_key_is(const char *key, uint32_t key_len, const char *lit) {
    size_t n = strlen(lit);
    return key_len == n && memcmp(key, lit, n) == 0;
}

/* sy_json_peek returns the kind of the next value (SY_JSON_NULL..OBJECT)
 * without consuming it, or SY_JSON_ERROR. */
static inline int sy_json_peek(sy_json *j) {
    if (j->err) return SY_JSON_ERROR;
    sy__json_ws(j);
    if (j->p >= j->end) return sy__json_fail(j, "unexpected end of JSON");
    switch (*j->p) {
    case '{': return SY_JSON_OBJECT;
    case '[': return SY_JSON_ARRAY;
    case '"': return SY_JSON_STRING;
    case 't':
    case 'f': return SY_JSON_BOOL;
    case 'n': return SY_JSON_NULL;
    case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9': return SY_JSON_NUMBER;
    default: return sy__json_fail(j, "invalid character");
    }
}

static inline int sy__json_lit(sy_json *j, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return sy__json_fail(j, "invalid literal");
    j->p += n;
    return 0;
}

/* sy_json_null consumes null. */
static inline int sy_json_null(sy_json *j) {
    if (sy_json_peek(j) != SY_JSON_NULL) return sy__json_fail(j, "expected null");
    if (sy__json_count(j) < 0) return -1;
    return sy__json_lit(j, "null");
}

/* sy_json_bool consumes true or false into *out (1 or 0). */
static inline int sy_json_bool(sy_json *j, int *out) {
    if (sy_json_peek(j) != SY_JSON_BOOL) return sy__json_fail(j, "expected true or false");
    if (sy__json_count(j) < 0) return -1;
    int v = *j->p == 't';
    if (sy__json_lit(j, v ? "true" : "false") < 0) return -1;
    if (out) *out = v;
    return 0;
}

static inline int sy__json_digit(const unsigned char *p, const unsigned char *e) {
    return p < e && *p >= '0' && *p <= '9';
}

/* sy_json_number consumes a number into *out (may be NULL to skip it). */
static inline int sy_json_number(sy_json *j, double *out) {
    if (sy_json_peek(j) != SY_JSON_NUMBER) return sy__json_fail(j, "expected a number");
    if (sy__json_count(j) < 0) return -1;
    const unsigned char *s = j->p, *p = s, *e = j->end, *digits;
    uint64_t whole = 0; /* the integer part, exact while it has at most 15 digits */
    int neg = *p == '-', plain;
    char t[SY_JSON_MAX_NUMBER + 1];
    size_t n;
    double v;
    if (neg) p++;
    if (!sy__json_digit(p, e)) goto bad;
    digits = p;
    if (*p == '0') p++;
    else while (sy__json_digit(p, e)) whole = whole * 10 + (uint64_t)(*p++ - '0');
    plain = p - digits <= 15;
    if (p < e && *p == '.') {
        plain = 0;
        p++;
        if (!sy__json_digit(p, e)) goto bad;
        while (sy__json_digit(p, e)) p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        plain = 0;
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (!sy__json_digit(p, e)) goto bad;
        while (sy__json_digit(p, e)) p++;
    }
    if (!out) {
        j->p = p;
        return 0;
    }
    if (plain) { /* a plain integer: exact as a double, no need for strtod */
        j->p = p;
        *out = neg ? -(double)whole : (double)whole;
        return 0;
    }
    n = (size_t)(p - s);
    if (n > SY_JSON_MAX_NUMBER) return sy__json_limit(j, "number too long");
    memcpy(t, s, n);
    t[n] = 0;
    v = strtod(t, 0);
    if (v - v != 0) return sy__json_limit(j, "number out of range"); /* overflowed to infinity */
    j->p = p;
    *out = v;
    return 0;
bad:
    j->p = p;
    return sy__json_fail(j, "invalid number");
}

/* sy_json_is_int reports whether v is a whole number in [min, max]. */
static inline int sy_json_is_int(double v, double min, double max) {
    return v >= min && v <= max && v == (double)(int64_t)v;
}

/* sy__json_hex4 reads the 4 hex digits at p (of \uXXXX) into *cp. */
static inline int sy__json_hex4(const unsigned char *p, const unsigned char *e, uint32_t *cp) {
    uint32_t v = 0;
    if (e - p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        uint32_t d = c >= '0' && c <= '9'   ? (uint32_t)(c - '0')
                     : c >= 'a' && c <= 'f' ? (uint32_t)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (uint32_t)(c - 'A' + 10)
                                            : 16;
        if (d == 16) return -1;
        v = v << 4 | d;
    }
    *cp = v;
    return 0;
}

/* sy__json_utf8 returns the length (2..4) of the valid UTF-8 sequence at p,
 * or 0 when the bytes there are not one (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static inline uint32_t sy__json_utf8(const unsigned char *p, const unsigned char *end) {
    unsigned char c = p[0];
    uint32_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else return 0;
    if ((uint32_t)(end - p) < n) return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (uint32_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* sy__json_put appends k bytes to the decoded string: they are written while
 * they fit before the NUL, and counted in any case (the true length). */
static inline void sy__json_put(char *buf, uint32_t cap, uint32_t *n, const void *b, uint32_t k) {
    if (cap && *n < cap - 1) {
        uint32_t room = cap - 1 - *n;
        memcpy(buf + *n, b, k < room ? k : room);
    }
    *n += k;
}

/*
 * sy_json_string consumes a string, decoding it into buf (size cap, NUL
 * included) and setting *len to its true decoded length. As with the host's
 * imports, *len < cap means the whole string is at buf[0:*len]; otherwise buf
 * holds its first cap-1 bytes (maybe ending inside a character: see
 * sy_utf8_trim). buf may be NULL (cap 0) to skip a string.
 */
static inline int sy_json_string(sy_json *j, char *buf, uint32_t cap, uint32_t *len) {
    static const unsigned char fffd[3] = {0xEF, 0xBF, 0xBD};
    const char *why;
    uint32_t n = 0;
    if (sy_json_peek(j) != SY_JSON_STRING) return sy__json_fail(j, "expected a string");
    if (sy__json_count(j) < 0) return -1;
    const unsigned char *p = j->p + 1, *e = j->end; /* a local cursor, for speed */
    for (;;) {
        /* a run of plain bytes at once */
        const unsigned char *run = p;
        while (p < e && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
        if (p > run) sy__json_put(buf, cap, &n, run, (uint32_t)(p - run));
        if (p >= e) {
            why = "unexpected end of JSON in a string";
            goto bad;
        }
        unsigned char c = *p;
        if (c == '"') {
            p++;
            break;
        }
        if (c < 0x20) {
            why = "control character in a string";
            goto bad;
        }
        if (c >= 0x80) {
            uint32_t k = sy__json_utf8(p, e);
            if (k) {
                sy__json_put(buf, cap, &n, p, k);
                p += k;
            } else { /* not UTF-8: one replacement character per byte */
                sy__json_put(buf, cap, &n, fffd, 3);
                p++;
            }
            continue;
        }
        /* an escape */
        if (e - p < 2) {
            why = "unexpected end of JSON in a string";
            goto bad;
        }
        char x = (char)p[1];
        uint32_t cp;
        switch (x) {
        case '"': case '\\': case '/': sy__json_put(buf, cap, &n, &x, 1); p += 2; continue;
        case 'b': sy__json_put(buf, cap, &n, "\b", 1); p += 2; continue;
        case 'f': sy__json_put(buf, cap, &n, "\f", 1); p += 2; continue;
        case 'n': sy__json_put(buf, cap, &n, "\n", 1); p += 2; continue;
        case 'r': sy__json_put(buf, cap, &n, "\r", 1); p += 2; continue;
        case 't': sy__json_put(buf, cap, &n, "\t", 1); p += 2; continue;
        case 'u': break;
        default:
            p++;
            why = "invalid escape in a string";
            goto bad;
        }
        if (sy__json_hex4(p + 2, e, &cp) < 0) {
            why = "invalid \\u escape";
            goto bad;
        }
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDFFF) {
            /* a high surrogate followed by a low one is a pair; anything
             * else is a lone surrogate, which becomes U+FFFD */
            uint32_t lo;
            if (cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u' && sy__json_hex4(p + 2, e, &lo) == 0 &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else {
                cp = 0xFFFD;
            }
        }
        unsigned char u[4];
        uint32_t k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp, k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xC0 | cp >> 6), u[1] = (unsigned char)(0x80 | (cp & 0x3F)), k = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xE0 | cp >> 12), u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp & 0x3F)), k = 3;
        } else {
            u[0] = (unsigned char)(0xF0 | cp >> 18), u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
            u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)), u[3] = (unsigned char)(0x80 | (cp & 0x3F)), k = 4;
        }
        sy__json_put(buf, cap, &n, u, k);
    }
    j->p = p;
    if (cap) buf[n < cap - 1 ? n : cap - 1] = 0;
    if (len) *len = n;
    return 0;
bad:
    j->p = p;
    return sy__json_fail(j, why);
}

/* sy_json_object_begin consumes '{'; then call sy_json_object_next. */
static inline int sy_json_object_begin(sy_json *j) {
    if (sy_json_peek(j) != SY_JSON_OBJECT) return sy__json_fail(j, "expected an object");
    if (sy__json_count(j) < 0) return -1;
    j->p++;
    j->first = 1;
    return 0;
}

/*
 * sy_json_object_next moves to the next member: it returns 1 with the key
 * decoded into key (as sy_json_string does; key may be NULL) and the cursor
 * at the member's value, which the caller must then consume (read or skip);
 * 0 at the closing '}', which it consumes; -1 on an error.
 */
static inline int sy_json_object_next(sy_json *j, char *key, uint32_t cap, uint32_t *key_len) {
    if (j->err) return -1;
    int first = j->first;
    j->first = 0;
    sy__json_ws(j);
    if (j->p >= j->end) return sy__json_fail(j, "unexpected end of JSON in an object");
    if (*j->p == '}') {
        j->p++;
        return 0;
    }
    if (!first) {
        if (*j->p != ',') return sy__json_fail(j, "expected , or } in an object");
        j->p++;
        sy__json_ws(j);
    }
    if (j->p >= j->end || *j->p != '"') return sy__json_fail(j, "expected a string key");
    if (sy_json_string(j, key, cap, key_len) < 0) return -1;
    sy__json_ws(j);
    if (j->p >= j->end || *j->p != ':') return sy__json_fail(j, "expected : after a key");
    j->p++;
    return 1;
}

/* sy_json_array_begin consumes '['; then call sy_json_array_next. */
static inline int sy_json_array_begin(sy_json *j) {
    if (sy_json_peek(j) != SY_JSON_ARRAY) return sy__json_fail(j, "expected an array");
    if (sy__json_count(j) < 0) return -1;
    j->p++;
    j->first = 1;
    return 0;
}

/* sy_json_array_next returns 1 with the cursor at the next element, which the
 * caller must then consume; 0 at the closing ']', which it consumes; -1 on
 * an error. */
static inline int sy_json_array_next(sy_json *j) {
    if (j->err) return -1;
    int first = j->first;
    j->first = 0;
    sy__json_ws(j);
    if (j->p >= j->end) return sy__json_fail(j, "unexpected end of JSON in an array");
    if (*j->p == ']') {
        j->p++;
        return 0;
    }
    if (!first) {
        if (*j->p != ',') return sy__json_fail(j, "expected , or ] in an array");
        j->p++;
    }
    return 1;
}

/* sy_json_skip consumes one value of any kind, checking its syntax, with
 * nesting up to SY_JSON_MAX_DEPTH (deeper is an error, not a crash). */
static inline int sy_json_skip(sy_json *j) {
    unsigned char kinds[(SY_JSON_MAX_DEPTH + 7) / 8] = {0}; /* bit set: an object */
    uint32_t depth = 0;
    for (;;) {
        /* the cursor is at a value */
        int k = sy_json_peek(j);
        switch (k) {
        case SY_JSON_NULL: if (sy_json_null(j) < 0) return -1; break;
        case SY_JSON_BOOL: if (sy_json_bool(j, 0) < 0) return -1; break;
        case SY_JSON_NUMBER: if (sy_json_number(j, 0) < 0) return -1; break;
        case SY_JSON_STRING: if (sy_json_string(j, 0, 0, 0) < 0) return -1; break;
        case SY_JSON_ARRAY:
        case SY_JSON_OBJECT:
            if (depth == SY_JSON_MAX_DEPTH) return sy__json_limit(j, "nesting too deep");
            if (k == SY_JSON_OBJECT) {
                sy_json_object_begin(j);
                kinds[depth / 8] |= (unsigned char)(1u << depth % 8);
            } else {
                sy_json_array_begin(j);
                kinds[depth / 8] &= (unsigned char)~(1u << depth % 8);
            }
            depth++;
            break;
        default: return -1;
        }
        /* move to the next value, closing the containers that end here */
        for (;;) {
            if (depth == 0) return 0;
            uint32_t top = depth - 1;
            int r = (kinds[top / 8] >> top % 8 & 1) ? sy_json_object_next(j, 0, 0, 0)
                                                     : sy_json_array_next(j);
            if (r < 0) return -1;
            if (r == 1) break;
            depth--;
        }
    }
}

/* sy_json_finish checks that nothing but white space follows the value. */
static inline int sy_json_finish(sy_json *j) {
    if (j->err) return -1;
    sy__json_ws(j);
    if (j->p != j->end) return sy__json_fail(j, "data after the value");
    return 0;
}

/* sy_str_json_error appends "invalid JSON at byte N: <why>" for j's error,
 * or "JSON over a limit at byte N: <why>" when a limit of the reader was hit
 * (max_values, SY_JSON_MAX_DEPTH, SY_JSON_MAX_NUMBER, a number too large). */
static inline void sy_str_json_error(sy_str *s, const sy_json *j) {
    sy_str_cstr(s, j->limit ? "JSON over a limit at byte " : "invalid JSON at byte ");
    sy_str_uint(s, sy_json_offset(j));
    sy_str_cstr(s, ": ");
    sy_str_cstr(s, j->err ? j->err : "unknown error");
}

#ifdef __cplusplus
}
#endif
#endif /* SWITCHYARD_H */
