/*
 * self-consistency: k sampled chains of thought, majority vote over their normalized
 * answers (Wang et al. 2022). Written in C against strategyd_plugin.h alone, with
 * jansson for its params and result, to keep the plugin ABI honest.
 *
 * Adaptive mode draws samples in rounds and stops after a round once the leading answer
 * holds `confidence` of the votes drawn (by default all of them: a unanimous round, as
 * in early-stopping self-consistency, Li et al. 2024) or cannot be overtaken by the
 * samples left; the result reports the samples it saved.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strategyd_plugin.h"

static const char SYSTEM_PROMPT[] =
    "You are a careful maths tutor. Solve the problem step by step, one short step per "
    "paragraph, then give the final answer on its own line as \"The answer is N.\" where N is a number.";

static const char PARAMS_SCHEMA[] =
    "{"
    "\"k\": {\"type\": \"integer\", \"default\": 8, \"minimum\": 1, \"maximum\": 64,"
    " \"description\": \"samples to draw (at most)\"},"
    "\"temperature\": {\"type\": \"number\", \"default\": 0.7, \"minimum\": 0.01, \"maximum\": 2,"
    " \"description\": \"sampling temperature\"},"
    "\"top_p\": {\"type\": \"number\", \"default\": 0.95, \"minimum\": 0.01, \"maximum\": 1,"
    " \"description\": \"nucleus sampling mass\"},"
    "\"max_tokens\": {\"type\": \"integer\", \"default\": 512, \"minimum\": 1, \"maximum\": 4096,"
    " \"description\": \"tokens per sample\"},"
    "\"adaptive\": {\"type\": \"boolean\", \"default\": false,"
    " \"description\": \"draw in rounds and stop when the vote is decided\"},"
    "\"round\": {\"type\": \"integer\", \"default\": 4, \"minimum\": 1, \"maximum\": 64,"
    " \"description\": \"samples per round in adaptive mode\"},"
    "\"confidence\": {\"type\": \"number\", \"default\": 1.0, \"minimum\": 0.5, \"maximum\": 1,"
    " \"description\": \"adaptive: stop after a round once the leader holds this share of the votes drawn (1 = all of them)\"}"
    "}";

#define MAX_SAMPLES 64
#define ANSWER_BYTES 128

typedef struct {
    char answer[ANSWER_BYTES];
    int votes;
    int first; /* index of the first sample with this answer */
} tally;

/* Adds an answer to the tally; returns the number of distinct answers. */
static int count_vote(tally *tallies, int n, const char *answer, int sample) {
    for (int i = 0; i < n; i++) {
        if (strcmp(tallies[i].answer, answer) == 0) {
            tallies[i].votes++;
            return n;
        }
    }
    snprintf(tallies[n].answer, ANSWER_BYTES, "%s", answer);
    tallies[n].votes = 1;
    tallies[n].first = sample;
    return n + 1;
}

/* The leader (most votes, earliest first on ties) and the runner-up's votes. */
static int leader(const tally *tallies, int n, int *second_votes) {
    int best = -1;
    *second_votes = 0;
    for (int i = 0; i < n; i++) {
        if (best < 0 || tallies[i].votes > tallies[best].votes ||
            (tallies[i].votes == tallies[best].votes && tallies[i].first < tallies[best].first)) {
            best = i;
        }
    }
    for (int i = 0; i < n; i++) {
        if (i != best && tallies[i].votes > *second_votes) *second_votes = tallies[i].votes;
    }
    return best;
}

static int32_t solve(void *state, const sd_host *host, sd_request *r, const char *problem, const char *params_json) {
    (void)state;
    json_error_t error;
    json_t *params = json_loads(params_json, 0, &error);
    if (!params) return host->fail(r, "params are not JSON");
    int k = (int)json_integer_value(json_object_get(params, "k"));
    double temperature = json_number_value(json_object_get(params, "temperature"));
    double top_p = json_number_value(json_object_get(params, "top_p"));
    int max_tokens = (int)json_integer_value(json_object_get(params, "max_tokens"));
    int adaptive = json_is_true(json_object_get(params, "adaptive"));
    int round_size = adaptive ? (int)json_integer_value(json_object_get(params, "round")) : k;
    double confidence = json_number_value(json_object_get(params, "confidence"));
    json_decref(params);

    sd_seq root;
    int32_t status = host->seq_from_chat(r, SYSTEM_PROMPT, problem, NULL, &root);
    if (status != SD_OK) return host->fail(r, "could not create the prompt sequence");

    char answers[MAX_SAMPLES][ANSWER_BYTES];
    tally tallies[MAX_SAMPLES];
    int distinct = 0, drawn = 0, stopped_early = 0, interrupted = 0;
    char *owned_texts[MAX_SAMPLES] = {0};

    while (drawn < k && !interrupted) {
        int n = round_size < k - drawn ? round_size : k - drawn;
        sd_seq children[MAX_SAMPLES];
        status = host->seq_fork(r, root, n, children);
        if (status != SD_OK) {
            if (drawn > 0) break; /* vote over what was drawn */
            return host->fail(r, "could not fork the samples: more than the daemon's --max-width?");
        }
        sd_generate_params gen = {0};
        gen.max_tokens = max_tokens;
        gen.sampling.temperature = (float)temperature;
        gen.sampling.top_p = (float)top_p;
        gen.sampling.seed = (uint32_t)drawn; /* distinct seeds across rounds */
        gen.kind = SD_TOKENS_GENERATED;
        sd_generation out[MAX_SAMPLES];
        status = host->generate(r, children, n, &gen, out);
        if (status != SD_OK && status != SD_ERR_STOPPED) {
            for (int i = 0; i < n; i++) host->seq_free(r, children[i]);
            for (int i = 0; i < drawn; i++) free(owned_texts[i]);
            return host->fail(r, "generation failed");
        }
        for (int i = 0; i < n; i++) {
            int index = drawn + i;
            owned_texts[index] = strdup(out[i].text ? out[i].text : "");
            if (host->extract_answer(r, owned_texts[index], answers[index], ANSWER_BYTES) <= 0) answers[index][0] = '\0';
            if (answers[index][0] != '\0') distinct = count_vote(tallies, distinct, answers[index], index);
            host->seq_free(r, children[i]);
        }
        host->generations_free(r, out, n);
        drawn += n;
        interrupted = status == SD_ERR_STOPPED;

        int second = 0;
        int lead = distinct > 0 ? leader(tallies, distinct, &second) : -1;
        char event[256];
        snprintf(event, sizeof event, "{\"event\": \"step\", \"samples\": %d, \"leader\": \"%s\", \"leader_votes\": %d}",
                 drawn, lead >= 0 ? tallies[lead].answer : "", lead >= 0 ? tallies[lead].votes : 0);
        host->progress(r, event);
        if (adaptive && lead >= 0 && drawn < k) {
            int remaining = k - drawn;
            /* Samples without an answer count against the leader's share. */
            if (tallies[lead].votes > second + remaining || (double)tallies[lead].votes / drawn >= confidence) {
                stopped_early = 1;
                break;
            }
        }
    }

    int second = 0;
    int lead = distinct > 0 ? leader(tallies, distinct, &second) : -1;
    json_t *result = json_object();
    json_t *candidates = json_array();
    const char *chosen_text = drawn > 0 ? owned_texts[0] : "";
    for (int i = 0; i < drawn; i++) {
        int votes = 0;
        for (int t = 0; t < distinct; t++) {
            if (answers[i][0] != '\0' && strcmp(tallies[t].answer, answers[i]) == 0) votes = tallies[t].votes;
        }
        if (lead >= 0 && i == tallies[lead].first) chosen_text = owned_texts[i];
        json_t *candidate = json_pack("{s:s, s:o, s:i}", "text", owned_texts[i], "answer",
                                      answers[i][0] ? json_string(answers[i]) : json_null(), "votes", votes);
        json_array_append_new(candidates, candidate);
    }
    json_object_set_new(result, "text", json_string(chosen_text));
    json_object_set_new(result, "answer", lead >= 0 ? json_string(tallies[lead].answer) : json_null());
    json_object_set_new(result, "candidates", candidates);
    json_object_set_new(result, "details", json_pack("{s:i, s:i, s:b, s:i}", "samples", drawn, "samples_saved",
                                                     k - drawn, "stopped_early", stopped_early, "distinct_answers", distinct));
    char *text = json_dumps(result, JSON_COMPACT);
    status = host->set_result(r, text);
    free(text);
    json_decref(result);
    for (int i = 0; i < drawn; i++) free(owned_texts[i]);
    host->seq_free(r, root);
    return status;
}

static int32_t init(const sd_host *host, void **state) {
    (void)state;
    if (host->abi_version != SD_PLUGIN_ABI_VERSION || host->size < sizeof(sd_host)) return SD_ERR_HOST_ABI;
    return SD_OK;
}

static const sd_plugin PLUGIN = {
    .abi_version = SD_PLUGIN_ABI_VERSION,
    .size = sizeof(sd_plugin),
    .name = "self-consistency",
    .version = "1.1.0",
    .kind = SD_KIND_STRATEGY,
    .description = "Self-consistency: k sampled chains of thought, majority vote; adaptive early stop",
    .params_schema = PARAMS_SCHEMA,
    .init = init,
    .solve = solve,
};

const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
