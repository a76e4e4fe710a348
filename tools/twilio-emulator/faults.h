/* Fault injection for the emulator: a share of requests answered 500, a
 * burst of 429s, dropped connections, added latency. Decisions come from a
 * seeded generator, so a failing test can be re-run exactly. Configured with
 * POST /_emulator/faults (and read back with GET): ErrorRate (every product)
 * or VideoErrorRate / MediaErrorRate / SyncErrorRate, DropRate (0..1),
 * Burst429 (the next N requests), LatencyMs (0..10000), Seed. */
#ifndef STAGEHAND_EMULATOR_FAULTS_H
#define STAGEHAND_EMULATOR_FAULTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

enum emu_product { EMU_VIDEO = 0, EMU_MEDIA = 1, EMU_SYNC = 2, EMU_PRODUCTS = 3 };

enum fault_action { FAULT_NONE, FAULT_DROP, FAULT_429, FAULT_500 };

struct emu_faults {
    double error_rate[EMU_PRODUCTS];
    double drop_rate;
    long burst_429;
    long latency_ms;
    uint64_t seed;
    uint64_t rng;
};

/* No faults, generator seeded with seed. */
void faults_init(struct emu_faults *f, uint64_t seed);

/* What to do with the next request to product. */
enum fault_action faults_decide(struct emu_faults *f, enum emu_product product);

/* Applies the parameters of POST /_emulator/faults. Returns 0, or -1 with the
 * reason in err (and nothing changed). */
int faults_configure(struct emu_faults *f, const struct emu_request *req, char *err, size_t errlen);

json_t *faults_json(const struct emu_faults *f);

#endif
