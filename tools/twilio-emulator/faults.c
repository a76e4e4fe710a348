/* Seeded fault injection (see faults.h). */
#include "faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void faults_init(struct emu_faults *f, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->seed = seed;
    f->rng = seed ? seed : 1;
}

/* xorshift64*: small, fast, and the same sequence for the same seed. */
static double next_random(struct emu_faults *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (double)((f->rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

enum fault_action faults_decide(struct emu_faults *f, enum emu_product product)
{
    if (f->burst_429 > 0) {
        f->burst_429--;
        return FAULT_429;
    }
    if (f->drop_rate > 0 && next_random(f) < f->drop_rate)
        return FAULT_DROP;
    if (f->error_rate[product] > 0 && next_random(f) < f->error_rate[product])
        return FAULT_500;
    return FAULT_NONE;
}

/* Reads an optional number in [min, max]; 0 when fine, -1 when bad. */
static int number(const struct emu_request *req, const char *name, double min, double max, double *out, char *err,
                  size_t errlen)
{
    const char *text = emu_param(req, name);
    if (!text)
        return 0;
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !(v >= min && v <= max)) {
        snprintf(err, errlen, "%s must be a number from %g to %g", name, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int faults_configure(struct emu_faults *f, const struct emu_request *req, char *err, size_t errlen)
{
    struct emu_faults next = *f;
    double all = -1, burst = (double)f->burst_429, latency = (double)f->latency_ms, seed = -1;
    if (number(req, "ErrorRate", 0, 1, &all, err, errlen) < 0 ||
        number(req, "VideoErrorRate", 0, 1, &next.error_rate[EMU_VIDEO], err, errlen) < 0 ||
        number(req, "MediaErrorRate", 0, 1, &next.error_rate[EMU_MEDIA], err, errlen) < 0 ||
        number(req, "SyncErrorRate", 0, 1, &next.error_rate[EMU_SYNC], err, errlen) < 0 ||
        number(req, "DropRate", 0, 1, &next.drop_rate, err, errlen) < 0 ||
        number(req, "Burst429", 0, 1e6, &burst, err, errlen) < 0 ||
        number(req, "LatencyMs", 0, 10000, &latency, err, errlen) < 0 ||
        number(req, "Seed", 0, 9007199254740992.0, &seed, err, errlen) < 0)
        return -1;
    if (all >= 0)
        for (int p = 0; p < EMU_PRODUCTS; p++)
            next.error_rate[p] = all;
    next.burst_429 = (long)burst;
    next.latency_ms = (long)latency;
    if (seed >= 0) {
        next.seed = (uint64_t)seed;
        next.rng = next.seed ? next.seed : 1;
    }
    *f = next;
    return 0;
}

json_t *faults_json(const struct emu_faults *f)
{
    return json_pack("{s:{s:f, s:f, s:f}, s:f, s:I, s:I, s:I}", "error_rate", "video", f->error_rate[EMU_VIDEO],
                     "media", f->error_rate[EMU_MEDIA], "sync", f->error_rate[EMU_SYNC], "drop_rate", f->drop_rate,
                     "burst_429", (json_int_t)f->burst_429, "latency_ms", (json_int_t)f->latency_ms, "seed",
                     (json_int_t)f->seed);
}
