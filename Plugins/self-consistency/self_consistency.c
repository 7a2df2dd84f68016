/*
 * self-consistency: n sampled chains of thought, majority vote over their normalized
 * answers (Wang et al. 2022), by the host's vote. Written in C against strategyd_plugin.h alone, with
 * jansson for its params and result, to keep the plugin ABI honest.
 *
 * Adaptive mode draws samples in rounds and stops after a round by `stop_rule`:
 * - share (the default): the leading answer holds `confidence` of the votes drawn (by
 *   default all of them) or cannot be overtaken by the samples left;
 * - beta (Adaptive-Consistency, Aggarwal et al. 2023): the probability that the leader is
 *   likelier than the runner-up, under Beta(v1 + 1, v2 + 1), reaches `stop_threshold`;
 * - esc (early-stopping self-consistency, Li et al. 2024): a round (the window) is unanimous.
 * beta and esc are the host's stop rules (sd_host.stop_rule), the ones every adaptive
 * sampler uses. The result reports the samples it saved.
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
    "\"n\": {\"type\": \"integer\", \"default\": 8, \"minimum\": 1, \"maximum\": 64, \"aliases\": [\"k\"],"
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
    " \"description\": \"adaptive, share: stop after a round once the leader holds this share of the votes drawn (1 = all of them)\"},"
    "\"stop_rule\": {\"type\": \"string\", \"default\": \"share\", \"enum\": [\"share\", \"beta\", \"esc\"],"
    " \"description\": \"adaptive: share (the leader's share, confidence), beta (Adaptive-Consistency's Beta rule, stop_threshold) or esc (a unanimous round)\"},"
    "\"stop_threshold\": {\"type\": \"number\", \"default\": 0.95, \"minimum\": 0.51, \"maximum\": 0.999,"
    " \"description\": \"adaptive, beta: stop once P(leader likelier than runner-up) reaches this\"}"
    "}";

#define MAX_SAMPLES 64
#define ANSWER_BYTES (SD_ANSWER_MAX_BYTES + 1)

/* The host's vote over the samples drawn so far: the leader's index (-1 when no sample has
   an answer), its votes, and the most votes any other answer has. */
typedef struct {
    int lead;
    int lead_votes;
    int second_votes;
} standing;

static standing count_votes(const sd_host *host, sd_request *r, char answers[][ANSWER_BYTES], int drawn,
                            sd_vote_tally *tallies) {
    const char *given[MAX_SAMPLES];
    for (int i = 0; i < drawn; i++) given[i] = answers[i];
    int32_t chosen = -1;
    standing s = {-1, 0, 0};
    if (host->vote(r, given, NULL, drawn, SD_VOTE_PLAIN, tallies, &chosen) != SD_OK || chosen < 0 ||
        answers[chosen][0] == '\0') {
        return s;
    }
    s.lead = chosen;
    s.lead_votes = tallies[chosen].votes;
    for (int i = 0; i < drawn; i++) {
        if (answers[i][0] != '\0' && strcmp(answers[i], answers[chosen]) != 0 && tallies[i].votes > s.second_votes) {
            s.second_votes = tallies[i].votes;
        }
    }
    return s;
}

static int32_t solve(void *state, const sd_host *host, sd_request *r, const char *problem, const char *params_json) {
    (void)state;
    json_error_t error;
    json_t *params = json_loads(params_json, 0, &error);
    if (!params) return host->fail(r, "params are not JSON");
    int n_samples = (int)json_integer_value(json_object_get(params, "n"));
    double temperature = json_number_value(json_object_get(params, "temperature"));
    double top_p = json_number_value(json_object_get(params, "top_p"));
    int max_tokens = (int)json_integer_value(json_object_get(params, "max_tokens"));
    int adaptive = json_is_true(json_object_get(params, "adaptive"));
    int round_size = adaptive ? (int)json_integer_value(json_object_get(params, "round")) : n_samples;
    double confidence = json_number_value(json_object_get(params, "confidence"));
    const char *rule_name = json_string_value(json_object_get(params, "stop_rule"));
    int rule = rule_name && strcmp(rule_name, "beta") == 0 ? SD_STOP_BETA
             : rule_name && strcmp(rule_name, "esc") == 0 ? SD_STOP_ESC : -1;
    double stop_threshold = json_number_value(json_object_get(params, "stop_threshold"));
    json_decref(params);
    if (adaptive && rule >= 0 && !SD_HOST_HAS(host, stop_rule)) return host->fail(r, "this daemon has no stop rules (sd_host.stop_rule)");

    sd_seq root;
    int32_t status = host->seq_from_chat(r, SYSTEM_PROMPT, problem, NULL, &root);
    if (status != SD_OK) return host->fail(r, "could not create the prompt sequence");

    char answers[MAX_SAMPLES][ANSWER_BYTES];
    sd_vote_tally tallies[MAX_SAMPLES];
    standing vote = {-1, 0, 0};
    int drawn = 0, stopped_early = 0, interrupted = 0;
    char *owned_texts[MAX_SAMPLES] = {0};

    while (drawn < n_samples && !interrupted) {
        int n = round_size < n_samples - drawn ? round_size : n_samples - drawn;
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
            host->seq_free(r, children[i]);
        }
        host->generations_free(r, out, n);
        drawn += n;
        interrupted = status == SD_ERR_STOPPED;

        vote = count_votes(host, r, answers, drawn, tallies);
        char event[256];
        snprintf(event, sizeof event, "{\"event\": \"step\", \"samples\": %d, \"leader\": \"%s\", \"leader_votes\": %d}",
                 drawn, vote.lead >= 0 ? answers[vote.lead] : "", vote.lead_votes);
        host->progress(r, event);
        if (adaptive && rule >= 0 && drawn < n_samples) {
            const char *given[MAX_SAMPLES];
            for (int i = 0; i < drawn; i++) given[i] = answers[i];
            bool stop = false;
            /* ESC's window is the round just drawn. */
            double parameter = rule == SD_STOP_BETA ? stop_threshold : (double)n;
            if (host->stop_rule(r, rule, parameter, given, drawn, &stop, NULL) != SD_OK) {
                for (int i = 0; i < drawn; i++) free(owned_texts[i]);
                host->seq_free(r, root);
                return host->fail(r, "the stop rule refused its arguments");
            }
            if (stop) {
                stopped_early = 1;
                break;
            }
        } else if (adaptive && vote.lead >= 0 && drawn < n_samples) {
            int remaining = n_samples - drawn;
            /* Samples without an answer count against the leader's share. */
            if (vote.lead_votes > vote.second_votes + remaining || (double)vote.lead_votes / drawn >= confidence) {
                stopped_early = 1;
                break;
            }
        }
    }

    json_t *result = json_object();
    json_t *candidates = json_array();
    int distinct = 0;
    for (int i = 0; i < drawn; i++) {
        int first = answers[i][0] != '\0';
        for (int j = 0; first && j < i; j++) first = strcmp(answers[i], answers[j]) != 0;
        distinct += first;
        json_t *candidate = json_pack("{s:s, s:o, s:i, s:f}", "text", owned_texts[i], "answer",
                                      answers[i][0] ? json_string(answers[i]) : json_null(), "votes",
                                      (int)tallies[i].votes, "vote_weight", tallies[i].weight);
        json_array_append_new(candidates, candidate);
    }
    json_object_set_new(result, "text", json_string(vote.lead >= 0 ? owned_texts[vote.lead] : drawn > 0 ? owned_texts[0] : ""));
    json_object_set_new(result, "answer", vote.lead >= 0 ? json_string(answers[vote.lead]) : json_null());
    json_object_set_new(result, "candidates", candidates);
    const char *rule_used = !adaptive ? "none" : rule == SD_STOP_BETA ? "beta" : rule == SD_STOP_ESC ? "esc" : "share";
    json_object_set_new(result, "details", json_pack("{s:i, s:i, s:b, s:i, s:s}", "samples", drawn, "samples_saved",
                                                     n_samples - drawn, "stopped_early", stopped_early, "distinct_answers", distinct,
                                                     "stop_rule", rule_used));
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
    if (host->abi_version != SD_PLUGIN_ABI_VERSION || !SD_HOST_HAS(host, vote)) return SD_ERR_HOST_ABI;
    return SD_OK;
}

static const sd_plugin PLUGIN = {
    .abi_version = SD_PLUGIN_ABI_VERSION,
    .size = sizeof(sd_plugin),
    .name = "self-consistency",
    .version = "1.3.1",
    .kind = SD_KIND_STRATEGY,
    .description = "Self-consistency: n sampled chains of thought, majority vote; adaptive early stop",
    .params_schema = PARAMS_SCHEMA,
    .init = init,
    .solve = solve,
};

const sd_plugin *strategyd_plugin_entry(void) { return &PLUGIN; }
