/*
 * score-probe: a test strategy that scores a given solution with a named scorer and
 * answers with the score, so that scorer plugins can be tested through the real daemon.
 * It evaluates no tokens itself: the request's metrics are the scorer's alone.
 *
 * params: scorer, solution, scorer_params (a JSON object as text; "{}" for the defaults).
 * result: {"text": "", "answer": null, "details": {"score": S}}.
 */
#include <jansson.h>
#include <stdio.h>

#include "strategyd_plugin.h"

static int32_t solve(void *state, const sd_host *host, sd_request *r, const char *problem, const char *params_json) {
    (void)state;
    json_t *params = json_loads(params_json, 0, NULL);
    if (!params) return host->fail(r, "score-probe: params are not JSON");
    double score = 0;
    int32_t status = host->score(r, json_string_value(json_object_get(params, "scorer")),
                                 json_string_value(json_object_get(params, "scorer_params")), problem,
                                 json_string_value(json_object_get(params, "solution")), &score);
    json_decref(params);
    /* No fail() here: the scorer's own message must reach the client. */
    if (status != SD_OK) return status;
    char result[128];
    snprintf(result, sizeof result, "{\"text\": \"\", \"answer\": null, \"details\": {\"score\": %.17g}}", score);
    return host->set_result(r, result);
}

static const sd_plugin PLUGIN = {
    .abi_version = SD_PLUGIN_ABI_VERSION,
    .size = sizeof(sd_plugin),
    .name = "score-probe",
    .version = "1.0.0",
    .kind = SD_KIND_STRATEGY,
    .description = "test fixture: scores params.solution with params.scorer",
    .params_schema = "{"
                     "\"scorer\": {\"type\": \"string\", \"default\": \"arith\", \"description\": \"the scorer plugin\"},"
                     "\"solution\": {\"type\": \"string\", \"default\": \"\", \"description\": \"the solution to score\"},"
                     "\"scorer_params\": {\"type\": \"string\", \"default\": \"{}\","
                     " \"description\": \"the scorer's params, a JSON object as text\"}"
                     "}",
    .solve = solve,
};

const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
