/* fuzz_decode_record.c — libFuzzer target: agent/decode.c decode_record() on one ring record.
 *
 * The input is a whole record (8-byte header + body), truncated to a multiple of 8 bytes as
 * every published record is. It lies in a heap buffer of exactly that size, so AddressSanitizer
 * sees any read past the record. On success every field that the agent would use is read. */
#include "decode.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void touch_str(const char *s)
{
    if (s)
        sink += strlen(s);
}

static void use(const struct decoded *d)
{
    touch_str(d->key);
    touch_str(d->value);
    touch_str(d->experiment);
    touch_str(d->run_name);
    touch_str(d->user);
    touch_str(d->host);
    touch_str(d->source);
    if (d->type == WIRE_METRIC && d->metric)
        sink += (size_t)d->metric->key + (size_t)d->metric->step;
    if (d->type == WIRE_METRICS && d->metrics) {
        const struct wire_metric_entry *e = (const struct wire_metric_entry *)(d->metrics + 1);
        for (uint32_t i = 0; i < d->metrics->count; i++)
            sink += e[i].key;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = size & ~(size_t)(SHMLOG_ALIGN - 1);
    if (len > (1u << 20))
        return 0;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, len);
    struct decoder dec;
    decode_init(&dec);
    struct decoded out;
    memset(&out, 0, sizeof out);
    if (decode_record(&dec, (const struct shmlog_rec *)buf, (uint32_t)len, &out) == 0)
        use(&out);
    decode_reset(&dec);
    /* a second record through the same decoder, as the agent does */
    if (len >= 16 && decode_record(&dec, (const struct shmlog_rec *)buf, (uint32_t)len, &out) == 0)
        use(&out);
    decode_free(&dec);
    free(buf);
    return 0;
}
