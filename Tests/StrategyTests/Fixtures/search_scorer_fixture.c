/*
 * A scorer for the search-strategy tests: a deterministic score from a hash of the
 * solution's text (FNV-1a, mixed with the param `salt`), with no model calls, so that
 * tests can recompute the choice from the returned candidates and count decodes exactly.
 * Built by SearchStrategyTests with cc into the test daemon's plugin folder.
 */
#include <stdlib.h>
#include <string.h>

#include "strategyd_plugin.h"

/* The params arrive complete and serialized by the host: {"salt": N} with or without spaces. */
static long salt_of(const char *params) {
    const char *key = strstr(params, "\"salt\"");
    if (!key) return 0;
    key = strchr(key, ':');
    return key ? strtol(key + 1, NULL, 10) : 0;
}

static int32_t score(void *state, const sd_host *host, sd_request *r, const char *problem, const char *solution,
                     const char *params, double *out) {
    (void)state, (void)host, (void)r, (void)problem;
    uint64_t hash = 14695981039346656037ull ^ (uint64_t)salt_of(params);
    for (const unsigned char *c = (const unsigned char *)solution; *c; c++) hash = (hash ^ *c) * 1099511628211ull;
    *out = (double)(hash % 1000003) / 1000002.0;
    return SD_OK;
}

static const sd_plugin PLUGIN = {
    .abi_version = SD_PLUGIN_ABI_VERSION,
    .size = sizeof(sd_plugin),
    .name = "search-fixture",
    .version = "1.0.0",
    .kind = SD_KIND_SCORER,
    .description = "test fixture: a hash of the solution's text as its score",
    .params_schema = "{\"salt\": {\"type\": \"integer\", \"default\": 0, \"minimum\": 0, \"maximum\": 1000000,"
                     " \"description\": \"mixed into the hash\"}}",
    .score = score,
};

const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
