/*
 * A scorer that scores with another scorer (logprob), as a third party's wrapper would,
 * for the tests of sd_plugin.reads_logprobs. Variants, by define:
 *   FIXTURE_NAME "name"       its name (SearchStrategyTests builds it as lib<name>.so)
 *   FIXTURE_TARGET "name"     the scorer it asks instead of logprob (itself: nesting tests)
 *   FIXTURE_READS_LOGPROBS    declare that it reads the policy's log-probabilities
 *   FIXTURE_PLUGIN_SIZE N     the size it claims; SD_PLUGIN_MIN_SIZE is a plugin built
 *                             before reads_logprobs existed, whose field the host must not read
 */
#include "strategyd_plugin.h"

#ifndef FIXTURE_TARGET
#define FIXTURE_TARGET "logprob"
#endif
#ifndef FIXTURE_PLUGIN_SIZE
#define FIXTURE_PLUGIN_SIZE sizeof(sd_plugin)
#endif

static int32_t init(const sd_host *host, void **state) {
    (void)state;
    return host->abi_version == SD_PLUGIN_ABI_VERSION && host->size >= sizeof(sd_host) ? SD_OK : SD_ERR_HOST_ABI;
}

static int32_t score(void *state, const sd_host *host, sd_request *r, const char *problem, const char *solution,
                     const char *params, double *out) {
    (void)state, (void)params;
    return host->score(r, FIXTURE_TARGET, NULL, problem, solution, out);
}

#ifdef FIXTURE_READS_LOGPROBS
static bool reads_logprobs(void *state, const sd_host *host, sd_request *r, const char *params) {
    (void)state, (void)params;
    return host->scorer_reads_logprobs(r, FIXTURE_TARGET, NULL);
}
#endif

static const sd_plugin PLUGIN = {
    .abi_version = SD_PLUGIN_ABI_VERSION,
    .size = FIXTURE_PLUGIN_SIZE,
    .name = FIXTURE_NAME,
    .version = "1.0.0",
    .kind = SD_KIND_SCORER,
    .description = "test fixture: the logprob scorer's score",
    .params_schema = "{}",
    .init = init,
    .score = score,
#ifdef FIXTURE_READS_LOGPROBS
    .reads_logprobs = reads_logprobs,
#endif
};

const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
