/*
 * A plugin the daemon tests compile with cc in several variants:
 *   FIXTURE_VERSION "x.y.z"  the version it reports (hot-swap tests rebuild it)
 *   FIXTURE_ABI N            the ABI version it claims (refusal tests)
 *   FIXTURE_NO_ENTRY         export no entry symbol (refusal tests)
 *   FIXTURE_HOST_SIZE N      refuse, in init(), a host table smaller than N bytes, as a
 *                            plugin built against a newer header would (refusal tests)
 *   FIXTURE_PLUGIN_SIZE N    the sd_plugin size it claims (refusal tests)
 *   FIXTURE_ASKS_RESOURCES   asks, while solving, for what only configure() may ask
 *                            (hidden states, a reward model) and answers with the statuses
 * As a strategy it generates exactly `tokens` tokens greedily, so a solve takes a
 * predictable while, waits `linger_ms` more (a strategy's last step that outlasts its
 * time budget), and answers with its own version.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "strategyd_plugin.h"

#ifndef FIXTURE_VERSION
#define FIXTURE_VERSION "1.0.0"
#endif
#ifndef FIXTURE_ABI
#define FIXTURE_ABI SD_PLUGIN_ABI_VERSION
#endif
#ifndef FIXTURE_PLUGIN_SIZE
#define FIXTURE_PLUGIN_SIZE sizeof(sd_plugin)
#endif
#ifndef FIXTURE_NAME
#define FIXTURE_NAME "slow-echo"
#endif

static int32_t solve(void *state, const sd_host *host, sd_request *r, const char *problem, const char *params) {
    (void)state;
    int tokens = 48;
    const char *found = strstr(params, "\"tokens\":");
    if (found) sscanf(found + 9, "%d", &tokens);
    int linger_ms = 0;
    found = strstr(params, "\"linger_ms\":");
    if (found) sscanf(found + 12, "%d", &linger_ms);
    sd_seq seq;
    if (host->seq_from_chat(r, NULL, problem, NULL, &seq) != SD_OK) return host->fail(r, "seq_from_chat failed");
    sd_generate_params gen = {0};
    gen.max_tokens = tokens;
    gen.min_tokens = tokens;
    gen.kind = SD_TOKENS_GENERATED;
    sd_generation out;
    int32_t status = host->generate(r, &seq, 1, &gen, &out);
    if (status != SD_OK && status != SD_ERR_STOPPED) return host->fail(r, "generate failed");
    struct timespec linger = {linger_ms / 1000, (long)(linger_ms % 1000) * 1000000L};
    nanosleep(&linger, NULL);
    char result[256];
#ifdef FIXTURE_ASKS_RESOURCES
    snprintf(result, sizeof result, "{\"text\": \"statuses %d %d\", \"answer\": null}",
             host->enable_hidden_states(NULL), host->load_reward_model(NULL, "smollm2-135m-instruct-q4_1"));
#else
    snprintf(result, sizeof result, "{\"text\": \"generated %d tokens\", \"answer\": \"%s\"}", out.n_tokens,
             FIXTURE_VERSION);
#endif
    host->generations_free(r, &out, 1);
    return host->set_result(r, result);
}

#ifdef FIXTURE_HOST_SIZE
static int32_t init(const sd_host *host, void **state) {
    (void)state;
    return host->size >= FIXTURE_HOST_SIZE ? SD_OK : SD_ERR_HOST_ABI;
}
#endif

static const sd_plugin PLUGIN = {
    .abi_version = FIXTURE_ABI,
    .size = FIXTURE_PLUGIN_SIZE,
    .name = FIXTURE_NAME,
    .version = FIXTURE_VERSION,
    .kind = SD_KIND_STRATEGY,
    .description = "test fixture: generates exactly `tokens` tokens",
    .params_schema = "{\"tokens\": {\"type\": \"integer\", \"default\": 48, \"minimum\": 1, \"maximum\": 4096,"
                     " \"description\": \"tokens to generate\"},"
                     " \"linger_ms\": {\"type\": \"integer\", \"default\": 0, \"minimum\": 0, \"maximum\": 10000,"
                     " \"description\": \"milliseconds to wait after generating\"}}",
    .solve = solve,
#ifdef FIXTURE_HOST_SIZE
    .init = init,
#endif
};

#ifndef FIXTURE_NO_ENTRY
const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
#else
const sd_plugin *some_other_function(void) { return &PLUGIN; }
#endif
