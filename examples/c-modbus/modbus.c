/*
 * transforms.modbus — a Modbus register decoder, in C.
 *
 * The input payload is a block of holding registers read from a device:
 *
 *   {"start": 100, "registers": [215, 0, 1234, ...]}
 *
 * The configuration names the readings that live in those registers:
 *
 *   {"readings": [{"name": "temperature", "address": 100, "type": "int16",
 *                  "scale": 0.1, "unit": "°C"}, ...],
 *    "word_order": "big", "on_change": false}
 *
 * For every reading whose registers all lie inside the block, the transform
 * emits {"value": <number>, "unit": "..."} on "<input subject>.<name>". With
 * on_change, a reading is emitted only when its value differs from the last
 * one emitted on that subject (kept in the instance's state).
 *
 * Everything is bounded: fixed tables for the configuration and the register
 * block, and a payload buffer that grows to at most MAX_PAYLOAD. Larger
 * inputs are refused by name. See README.md for the limits.
 */
#include <math.h>

#include "switchyard.h"

SY_ABI_VERSION_EXPORT

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

#define MAX_CONFIG (64 * 1024)    /* bytes of configuration JSON */
#define MAX_PAYLOAD (1024 * 1024) /* bytes of one input payload */
#define MAX_SUBJECT 1024          /* bytes of the input subject */
#define MAX_READINGS 256          /* readings in the configuration */
#define MAX_NAME 64               /* bytes of a reading's name */
#define MAX_UNIT 32               /* bytes of a reading's unit */
#define MAX_KEY 64                /* bytes of a JSON key we read (longer ones are unknown) */
#define ADDRESSES 65536           /* Modbus register addresses 0..65535 */
#define MAX_VALUE 40              /* bytes of a formatted value */
#define MAX_JSON_VALUES (2 * ADDRESSES) /* values and keys of one payload: bounds its time */

/* ------------------------------------------------------------------------ */
/* The configuration                                                        */
/* ------------------------------------------------------------------------ */

enum type { INT16, UINT16, INT32, UINT32, FLOAT32 };
static const char *const type_names[] = {"int16", "uint16", "int32", "uint32", "float32"};

enum { ORDER_UNSET = -1, ORDER_BIG = 0, ORDER_LITTLE = 1 };

struct reading {
    char name[MAX_NAME + 1];
    uint32_t name_len;
    char unit[MAX_UNIT + 1];
    uint32_t unit_len;
    int has_unit;
    uint32_t address;
    enum type type;
    int word_order; /* ORDER_*: for 32-bit types; UNSET takes the top-level one */
    double scale, offset;
};

static struct reading readings[MAX_READINGS];
static uint32_t nreadings;
static int on_change;

/* ------------------------------------------------------------------------ */
/* Error messages                                                           */
/* ------------------------------------------------------------------------ */

/* Every parse function builds its error in msg and returns -1; the export
 * then passes msg to fail. */
static char msg_buf[512];
static sy_str msg;

static int err(const char *text) {
    sy_str_cstr(&msg, text);
    return -1;
}

/* err_json reports a syntax error of j. */
static int err_json(const sy_json *j) {
    sy_str_json_error(&msg, j);
    return -1;
}

/* path starts msg with "config: readings[i]." (i < 0: "config: "). */
static void path(int i) {
    sy_str_reset(&msg);
    sy_str_cstr(&msg, "config: ");
    if (i >= 0) {
        sy_str_cstr(&msg, "readings[");
        sy_str_uint(&msg, (uint32_t)i);
        sy_str_cstr(&msg, "].");
    }
}

/* err_unknown reports an unknown key, quoted (cut if longer than we read). */
static int err_unknown(int i, const char *key, uint32_t key_len) {
    sy_str_reset(&msg);
    sy_str_cstr(&msg, "config: ");
    if (i >= 0) {
        sy_str_cstr(&msg, "readings[");
        sy_str_uint(&msg, (uint32_t)i);
        sy_str_cstr(&msg, "]: ");
    }
    sy_str_cstr(&msg, "unknown field ");
    if (key_len <= MAX_KEY) {
        sy_str_json(&msg, key, key_len);
    } else {
        sy_str_json(&msg, key, sy_utf8_trim(key, MAX_KEY));
        sy_str_cstr(&msg, "...");
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Parsing the configuration                                                */
/* ------------------------------------------------------------------------ */

/* The readers below return -1 on a problem: a JSON syntax error is left in
 * the sy_json for parse_config to report; anything else is already in msg. */

/* read_word_order reads "big" or "little". */
static int read_word_order(sy_json *j, int i, int *out) {
    char v[8];
    uint32_t n;
    if (sy_json_peek(j) == SY_JSON_STRING) {
        if (sy_json_string(j, v, sizeof v, &n) < 0) return -1;
        if (sy_json_key_is(v, n, "big")) return *out = ORDER_BIG, 0;
        if (sy_json_key_is(v, n, "little")) return *out = ORDER_LITTLE, 0;
    } else if (j->err) {
        return -1;
    }
    path(i);
    return err("word_order: want \"big\" or \"little\"");
}

/* valid_name reports whether a name can end a subject: no dots, wildcards,
 * spaces or control characters. */
static int valid_name(const char *s, uint32_t n) {
    for (uint32_t k = 0; k < n; k++) {
        unsigned char c = (unsigned char)s[k];
        if (c <= 0x20 || c == 0x7F || c == '.' || c == '*' || c == '>') return 0;
    }
    return 1;
}

/* read_reading reads readings[i], an object, into readings[i]. */
static int read_reading(sy_json *j, int i) {
    struct reading *r = &readings[i];
    char key[MAX_KEY + 1];
    uint32_t klen;
    int rc, has_name = 0, has_address = 0, has_type = 0;
    int seen_scale = 0, seen_offset = 0, seen_word_order = 0;

    memset(r, 0, sizeof *r);
    r->scale = 1;
    r->word_order = ORDER_UNSET;
    if (sy_json_peek(j) != SY_JSON_OBJECT) {
        if (j->err) return -1;
        path(-1);
        sy_str_cstr(&msg, "readings[");
        sy_str_uint(&msg, (uint32_t)i);
        return err("]: want an object");
    }
    sy_json_object_begin(j);
    while ((rc = sy_json_object_next(j, key, sizeof key, &klen)) == 1) {
        int kind = sy_json_peek(j);
        if (kind == SY_JSON_ERROR) return -1;
        int *seen;
        if (sy_json_key_is(key, klen, "name")) seen = &has_name;
        else if (sy_json_key_is(key, klen, "address")) seen = &has_address;
        else if (sy_json_key_is(key, klen, "type")) seen = &has_type;
        else if (sy_json_key_is(key, klen, "scale")) seen = &seen_scale;
        else if (sy_json_key_is(key, klen, "offset")) seen = &seen_offset;
        else if (sy_json_key_is(key, klen, "word_order")) seen = &seen_word_order;
        else if (sy_json_key_is(key, klen, "unit")) seen = &r->has_unit;
        else return err_unknown(i, key, klen);
        if (*seen) {
            path(i);
            sy_str_bytes(&msg, key, klen);
            return err(": given twice");
        }
        *seen = 1;

        if (sy_json_key_is(key, klen, "name")) {
            if (kind != SY_JSON_STRING) return path(i), err("name: want a string");
            if (sy_json_string(j, r->name, sizeof r->name, &r->name_len) < 0) return -1;
            if (r->name_len == 0) return path(i), err("name: empty");
            if (r->name_len > MAX_NAME) return path(i), err("name: longer than 64 bytes");
            if (!valid_name(r->name, r->name_len))
                return path(i), err("name: must not contain dots, *, >, spaces or control characters");
        } else if (sy_json_key_is(key, klen, "unit")) {
            if (kind != SY_JSON_STRING) return path(i), err("unit: want a string");
            if (sy_json_string(j, r->unit, sizeof r->unit, &r->unit_len) < 0) return -1;
            if (r->unit_len > MAX_UNIT) return path(i), err("unit: longer than 32 bytes");
        } else if (sy_json_key_is(key, klen, "type")) {
            char t[16];
            uint32_t n;
            if (kind != SY_JSON_STRING) return path(i), err("type: want a string");
            if (sy_json_string(j, t, sizeof t, &n) < 0) return -1;
            uint32_t k = 0;
            while (k < 5 && !sy_json_key_is(t, n, type_names[k])) k++;
            if (k == 5) return path(i), err("type: want int16, uint16, int32, uint32 or float32");
            r->type = (enum type)k;
        } else if (sy_json_key_is(key, klen, "word_order")) {
            if (read_word_order(j, i, &r->word_order) < 0) return -1;
        } else { /* address, scale, offset: numbers */
            double v;
            int is_address = sy_json_key_is(key, klen, "address");
            if (kind != SY_JSON_NUMBER || sy_json_number(j, &v) < 0) {
                if (j->err) return -1;
                path(i);
                sy_str_bytes(&msg, key, klen);
                return err(is_address ? ": want an integer 0..65535" : ": want a number");
            }
            if (is_address) {
                if (!sy_json_is_int(v, 0, ADDRESSES - 1)) return path(i), err("address: want an integer 0..65535");
                r->address = (uint32_t)v;
            } else if (sy_json_key_is(key, klen, "scale")) {
                if (v == 0) return path(i), err("scale: must not be 0");
                r->scale = v;
            } else {
                r->offset = v;
            }
        }
    }
    if (rc < 0) return -1;

    if (!has_name) return path(i), err("name: missing");
    if (!has_address) return path(i), err("address: missing");
    if (!has_type) return path(i), err("type: missing");
    int wide = r->type == INT32 || r->type == UINT32 || r->type == FLOAT32;
    if (!wide && seen_word_order) return path(i), err("word_order: only for 32-bit types");
    if (wide && r->address == ADDRESSES - 1)
        return path(i), err("address: a 32-bit reading needs two registers, 65535 is the last");
    for (int k = 0; k < i; k++) {
        if (readings[k].name_len == r->name_len && memcmp(readings[k].name, r->name, r->name_len) == 0) {
            path(i);
            sy_str_cstr(&msg, "name: duplicate ");
            sy_str_json(&msg, r->name, r->name_len);
            return -1;
        }
    }
    return 0;
}

/* parse_config reads the whole configuration object. */
static int parse_config(const char *data, uint32_t len) {
    sy_json j;
    char key[MAX_KEY + 1];
    uint32_t klen;
    int rc, seen_readings = 0, seen_on_change = 0, seen_word_order = 0;
    int word_order = ORDER_BIG;

    nreadings = 0;
    on_change = 0;
    sy_json_init(&j, data, len);
    if (sy_json_peek(&j) != SY_JSON_OBJECT) {
        path(-1);
        if (sy_json_skip(&j) < 0 || sy_json_finish(&j) < 0) return err_json(&j);
        return err("want a JSON object");
    }
    sy_json_object_begin(&j);
    while ((rc = sy_json_object_next(&j, key, sizeof key, &klen)) == 1) {
        int kind = sy_json_peek(&j);
        if (kind == SY_JSON_ERROR) return path(-1), err_json(&j);
        if (sy_json_key_is(key, klen, "readings")) {
            if (seen_readings++) return path(-1), err("readings: given twice");
            if (kind != SY_JSON_ARRAY) return path(-1), err("readings: want an array of readings");
            sy_json_array_begin(&j);
            int r;
            while ((r = sy_json_array_next(&j)) == 1) {
                if (nreadings == MAX_READINGS) return path(-1), err("readings: more than 256");
                if (read_reading(&j, (int)nreadings) < 0) return j.err ? (path(-1), err_json(&j)) : -1;
                nreadings++;
            }
            if (r < 0) return path(-1), err_json(&j);
        } else if (sy_json_key_is(key, klen, "on_change")) {
            if (seen_on_change++) return path(-1), err("on_change: given twice");
            if (kind != SY_JSON_BOOL) return path(-1), err("on_change: want true or false");
            if (sy_json_bool(&j, &on_change) < 0) return path(-1), err_json(&j);
        } else if (sy_json_key_is(key, klen, "word_order")) {
            if (seen_word_order++) return path(-1), err("word_order: given twice");
            if (read_word_order(&j, -1, &word_order) < 0) return j.err ? (path(-1), err_json(&j)) : -1;
        } else {
            return err_unknown(-1, key, klen);
        }
    }
    if (rc < 0 || sy_json_finish(&j) < 0) return path(-1), err_json(&j);
    if (!seen_readings) return path(-1), err("readings: missing");
    if (nreadings == 0) return path(-1), err("readings: empty, want at least one reading");
    for (uint32_t i = 0; i < nreadings; i++)
        if (readings[i].word_order == ORDER_UNSET) readings[i].word_order = word_order;
    return 0;
}

SY_INIT {
    sy_buf cfg = SY_BUF_INIT(MAX_CONFIG);
    sy_str_init(&msg, msg_buf, sizeof msg_buf);
    int32_t st = sy_buf_config(&cfg);
    if (st == SY_TOO_LARGE) return sy_buf_free(&cfg), sy_fail_cstr("config: over 64 KiB");
    if (st < 0) return sy_buf_free(&cfg), sy_fail_cstr("config: cannot read it");
    int rc = parse_config(cfg.data, cfg.len);
    sy_buf_free(&cfg);
    return rc < 0 ? sy_fail_str(&msg) : 0;
}

/* ------------------------------------------------------------------------ */
/* Parsing the payload                                                      */
/* ------------------------------------------------------------------------ */

static uint16_t regs[ADDRESSES]; /* the block: regs[0] is register `start` */
static uint32_t nregs, start;

/* payload_error starts msg with "payload: ". */
static int payload_err(const char *text) {
    sy_str_reset(&msg);
    sy_str_cstr(&msg, "payload: ");
    return err(text);
}

static int payload_json_err(const sy_json *j) {
    sy_str_reset(&msg);
    sy_str_cstr(&msg, "payload: ");
    err_json(j);
    if (j->limit && strcmp(sy_json_error(j), "too many values") == 0) err(" (at most 131072, keys included)");
    return -1;
}

/* parse_payload reads {"start": S, "registers": [...]} into regs; other
 * members (a timestamp, a unit id...) are skipped. */
static int parse_payload(const char *data, uint32_t len) {
    sy_json j;
    char key[MAX_KEY + 1];
    uint32_t klen;
    int rc, seen_start = 0, seen_registers = 0;

    nregs = start = 0;
    if (len == 0) return payload_err("empty, want a JSON object with start and registers");
    sy_json_init(&j, data, len);
    j.max_values = MAX_JSON_VALUES;
    int kind = sy_json_peek(&j);
    if (kind != SY_JSON_OBJECT) {
        /* JSON of another kind, or not JSON at all ("temperature=21.5") */
        if (sy_json_skip(&j) < 0 || sy_json_finish(&j) < 0) return payload_json_err(&j);
        return payload_err("want a JSON object with start and registers");
    }
    sy_json_object_begin(&j);
    while ((rc = sy_json_object_next(&j, key, sizeof key, &klen)) == 1) {
        kind = sy_json_peek(&j);
        if (kind == SY_JSON_ERROR) return payload_json_err(&j);
        if (sy_json_key_is(key, klen, "start")) {
            double v;
            if (seen_start++) return payload_err("start: given twice");
            if (kind != SY_JSON_NUMBER) return payload_err("start: want an integer 0..65535");
            if (sy_json_number(&j, &v) < 0) return payload_json_err(&j);
            if (!sy_json_is_int(v, 0, ADDRESSES - 1)) return payload_err("start: want an integer 0..65535");
            start = (uint32_t)v;
        } else if (sy_json_key_is(key, klen, "registers")) {
            if (seen_registers++) return payload_err("registers: given twice");
            if (kind != SY_JSON_ARRAY) return payload_err("registers: want an array of integers 0..65535");
            sy_json_array_begin(&j);
            int r;
            while ((r = sy_json_array_next(&j)) == 1) {
                double v;
                if (nregs == ADDRESSES) return payload_err("registers: more than 65536");
                kind = sy_json_peek(&j);
                if (kind == SY_JSON_ERROR) return payload_json_err(&j);
                if (kind != SY_JSON_NUMBER) v = -1;
                else if (sy_json_number(&j, &v) < 0) return payload_json_err(&j);
                if (!sy_json_is_int(v, 0, 65535)) {
                    payload_err("registers[");
                    sy_str_uint(&msg, nregs);
                    return err("]: want an integer 0..65535");
                }
                regs[nregs++] = (uint16_t)v;
            }
            if (r < 0) return payload_json_err(&j);
        } else if (sy_json_skip(&j) < 0) {
            return payload_json_err(&j);
        }
    }
    if (rc < 0 || sy_json_finish(&j) < 0) return payload_json_err(&j);
    if (!seen_start) return payload_err("start: missing");
    if (!seen_registers) return payload_err("registers: missing");
    if (start + nregs > ADDRESSES) {
        payload_err("registers: ");
        sy_str_uint(&msg, nregs);
        sy_str_cstr(&msg, " registers from start ");
        sy_str_uint(&msg, start);
        return err(" run past address 65535");
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

/* decode formats reading r's value from the block into out; it returns 0 when
 * the block does not hold all of r's registers or the value is not a finite
 * number (a float32 NaN is how many devices say "no reading"), 1 otherwise. */
static int decode(const struct reading *r, sy_str *out) {
    uint32_t need = r->type == INT16 || r->type == UINT16 ? 1 : 2;
    if (r->address < start || r->address + need > start + nregs) return 0;
    const uint16_t *w = &regs[r->address - start];
    int plain = r->scale == 1 && r->offset == 0;

    if (need == 1) {
        int32_t raw = r->type == INT16 ? (int32_t)(int16_t)w[0] : (int32_t)w[0];
        if (plain) return sy_str_int(out, raw), 1;
        return sy_str_double(out, raw * r->scale + r->offset, 15) == 0;
    }
    /* two registers: the high word first ("big") or second ("little") */
    uint32_t bits = r->word_order == ORDER_LITTLE ? (uint32_t)w[1] << 16 | w[0] : (uint32_t)w[0] << 16 | w[1];
    if (r->type == FLOAT32) {
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f)) return 0;
        if (plain) return sy_str_float(out, f) == 0;
        /* scaled, then shown with the float32's own precision: its digits
         * beyond about 7 are noise */
        double v = (double)f * r->scale + r->offset;
        if (!isfinite(v) || fabs(v) > 3.4028234663852886e38) return 0;
        return sy_str_float(out, (float)v) == 0;
    }
    int64_t raw = r->type == INT32 ? (int64_t)(int32_t)bits : (int64_t)bits;
    if (plain) return sy_str_int(out, raw), 1;
    return sy_str_double(out, (double)raw * r->scale + r->offset, 15) == 0;
}

/* ------------------------------------------------------------------------ */
/* The transform                                                            */
/* ------------------------------------------------------------------------ */

static sy_buf payload = SY_BUF_INIT(MAX_PAYLOAD);
static char subject[MAX_SUBJECT];
static uint32_t subject_len;

/* One output of the call: which reading, its value, and whether to emit it. */
static struct {
    char value[MAX_VALUE];
    uint32_t value_len;
    int set; /* on_change: its state was updated in this call */
} outs[MAX_READINGS];

/* out_subject writes "<input subject>.<name>" to s. */
static void out_subject(sy_str *s, const struct reading *r) {
    sy_str_bytes(s, subject, subject_len);
    sy_str_char(s, '.');
    sy_str_bytes(s, r->name, r->name_len);
}

/* undo_state deletes the state keys set in this call, so that a call that
 * fails after setting some leaves nothing half-remembered (the next message
 * emits those readings again rather than never). */
static void undo_state(void) {
    char sb[MAX_SUBJECT + 1 + MAX_NAME + 1];
    sy_str s;
    for (uint32_t i = 0; i < nreadings; i++) {
        if (!outs[i].set) continue;
        sy_str_init(&s, sb, sizeof sb);
        out_subject(&s, &readings[i]);
        sy_state_delete(s.p, s.len);
        outs[i].set = 0;
    }
}

SY_TRANSFORM {
    char sb[MAX_SUBJECT + 1 + MAX_NAME + 1];
    char pb[MAX_VALUE + 2 * MAX_UNIT * 6 + 64];
    char prev[MAX_VALUE];
    sy_str s, p, v;
    uint32_t n;

    sy_str_init(&msg, msg_buf, sizeof msg_buf);
    int32_t st = sy_read_input(SY_FIELD_SUBJECT, subject, sizeof subject, &subject_len);
    if (st == SY_TOO_LARGE) return sy_fail_cstr("subject over 1 KiB");
    if (st < 0) return sy_fail_cstr("input: no message in scope");

    st = sy_buf_input(&payload, SY_FIELD_PAYLOAD);
    if (st == SY_TOO_LARGE) return sy_fail_cstr("payload: over 1 MiB");
    if (st == SY_NO_MEMORY) return sy_fail_cstr("payload: out of memory");
    if (st < 0) return sy_fail_cstr("input: no message in scope");
    if (parse_payload(payload.data, payload.len) < 0) return sy_fail_str(&msg);

    /* 1. Decide: the value of each reading the block holds, and, with
     *    on_change, whether it differs from the last one emitted. */
    uint32_t emitting = 0;
    for (uint32_t i = 0; i < nreadings; i++) {
        outs[i].value_len = 0;
        outs[i].set = 0;
        sy_str_init(&v, outs[i].value, sizeof outs[i].value);
        if (!decode(&readings[i], &v)) continue;
        if (on_change) {
            sy_str_init(&s, sb, sizeof sb);
            out_subject(&s, &readings[i]);
            st = sy_read_state(s.p, s.len, prev, sizeof prev, &n);
            if (st == SY_OK && n == v.len && memcmp(prev, v.p, n) == 0) continue; /* unchanged */
            if (st < 0 && st != SY_ABSENT) return sy_fail_cstr("state: cannot read it");
        }
        outs[i].value_len = v.len;
        emitting++;
    }

    /* 2. Emit, in the order of the configuration. */
    uint32_t emitted = 0;
    for (uint32_t i = 0; i < nreadings; i++) {
        const struct reading *r = &readings[i];
        if (!outs[i].value_len) continue;
        sy_str_init(&s, sb, sizeof sb);
        out_subject(&s, r);
        sy_str_init(&p, pb, sizeof pb);
        sy_str_cstr(&p, "{\"value\":");
        sy_str_bytes(&p, outs[i].value, outs[i].value_len);
        if (r->has_unit) {
            sy_str_cstr(&p, ",\"unit\":");
            sy_str_json(&p, r->unit, r->unit_len);
        }
        sy_str_char(&p, '}');
        st = sy_emit_str(&s, &p);
        if (st == SY_LIMIT) {
            sy_str_reset(&msg);
            sy_str_cstr(&msg, "emit: limit reached after ");
            sy_str_uint(&msg, emitted);
            sy_str_cstr(&msg, " of ");
            sy_str_uint(&msg, emitting);
            sy_str_cstr(&msg, " outputs (raise limits.max_emits or max_emit_bytes)");
            return sy_fail_str(&msg);
        }
        if (st < 0) return SY_FAIL("emit: refused on subject ", s.p);
        emitted++;
    }

    /* 3. Remember what was emitted. Any failure undoes this call's changes
     *    and fails the call, which discards its outputs too. */
    if (on_change) {
        for (uint32_t i = 0; i < nreadings; i++) {
            if (!outs[i].value_len) continue;
            sy_str_init(&s, sb, sizeof sb);
            out_subject(&s, &readings[i]);
            st = sy_state_set(s.p, s.len, outs[i].value, outs[i].value_len);
            if (st < 0) {
                undo_state();
                return SY_FAIL(st == SY_LIMIT ? "state full: cannot remember " : "state: cannot store ", s.p);
            }
            outs[i].set = 1;
        }
    }
    return 0;
}
