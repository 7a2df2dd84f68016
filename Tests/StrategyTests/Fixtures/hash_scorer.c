/*
 * A scorer the strategy tests compile with cc, so they do not depend on the real
 * scorers: the score of a solution is a hash of its text in [0, 1) -- deterministic,
 * spread out, and free of model calls (no tokens, no decodes). The param `constant`,
 * when in [0, 1], is returned instead (to see scorer params arrive).
 */
#include <stdio.h>
#include <string.h>

#include "strategyd_plugin.h"

static int32_t score(void *state, const sd_host *host, sd_request *r, const char *problem, const char *solution,
                     const char *params, double *out) {
    (void)state, (void)host, (void)r, (void)problem;
    double constant = -1;
    const char *found = strstr(params, "\"constant\":");
    if (found) sscanf(found + 11, "%lf", &constant);
    if (constant >= 0 && constant <= 1) {
        *out = constant;
        return SD_OK;
    }
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)solution; *c; c++) hash = (hash ^ *c) * 16777619u;
    *out = (hash % 10000) / 10000.0;
    return SD_OK;
}

static const sd_plugin PLUGIN = {
    .abi_version = SD_PLUGIN_ABI_VERSION,
    .size = sizeof(sd_plugin),
    .name = "hash-scorer",
    .version = "1.0.0",
    .kind = SD_KIND_SCORER,
    .description = "test fixture: scores a solution by a hash of its text",
    .params_schema = "{\"constant\": {\"type\": \"number\", \"default\": -1, \"minimum\": -1, \"maximum\": 1,"
                     " \"description\": \"if in [0, 1], the score of every solution\"}}",
    .score = score,
};

const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
