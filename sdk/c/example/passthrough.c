/* transforms.passthrough in C: emits each input's payload on its subject.
 * The smallest complete guest, and the module the per-language figures of
 * docs/BENCHMARKS.md ("Guest languages") measure. */
#include "switchyard.h"

SY_ABI_VERSION_EXPORT

/* The payload buffer, reused from call to call. */
static sy_buf payload = SY_BUF_INIT(1 << 20);

SY_INIT {
    char config[64];
    uint32_t n;
    if (sy_read_config(config, sizeof config, &n) != SY_OK || n != 2 || config[0] != '{' || config[1] != '}')
        return sy_fail_cstr("config: passthrough takes no options");
    return 0;
}

SY_TRANSFORM {
    if (sy_buf_input(&payload, SY_FIELD_PAYLOAD) != SY_OK) return sy_fail_cstr("payload: over 1 MiB");
    if (sy_emit(0, 0, payload.data, payload.len) != SY_OK) return sy_fail_cstr("emit refused");
    return 0;
}
