/*
 * strategyd_plugin.h -- the whole contract between strategyd and its plugins. ABI 1.
 *
 * A plugin is a shared library in the daemon's plugin directory, named lib<NAME>.so,
 * NAME matching [a-z0-9-]+. It exports one function,
 *
 *     const sd_plugin * strategyd_plugin_entry(void);
 *
 * returning a struct that begins with the ABI version and its own size. The daemon
 * refuses a library without the entry symbol, with another ABI version, with a struct
 * smaller than SD_PLUGIN_MIN_SIZE, or whose name differs from its file name -- each with
 * its own message naming what was expected and what was found -- and carries on. Fields
 * added to ABI 1 later are appended after that size, and read only when `size` covers
 * them; functions added to sd_host are appended too, and a plugin checks that host->size
 * covers one (SD_HOST_HAS) before calling it.
 *
 * The daemon calls the plugin with an sd_host: a table of functions over the resident
 * model (sequences, batched generation, logits, scoring, progress, accounting). Only C
 * types and JSON text cross. Every token the plugin causes to be evaluated is accounted
 * by the host; plugins never count compute themselves.
 *
 * Threads: solve(), score() and reads_logprobs() may run on several threads at once (one
 * per request); a plugin keeps per-request state on its stack, or behind its own lock.
 * Memory: strings the host returns stay valid as stated at each function; strings the
 * plugin passes are copied by the host before the call returns.
 */
#ifndef STRATEGYD_PLUGIN_H
#define STRATEGYD_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SD_PLUGIN_ABI_VERSION 1
#define SD_PLUGIN_ENTRY_SYMBOL "strategyd_plugin_entry"

/* The longest answer sd_host.extract_answer writes, in bytes, without its NUL: a buffer of
   SD_ANSWER_MAX_BYTES + 1 always holds one. */
#define SD_ANSWER_MAX_BYTES 256

/* Return codes of host and plugin functions. */
enum sd_status {
    SD_OK = 0,
    SD_ERR_INVALID_ARGUMENT = -1,  /* a bad sequence, count, kind or parameter          */
    SD_ERR_LIMIT = -2,             /* too many sequences, or one longer than the context */
    SD_ERR_STOPPED = -3,           /* cancelled, the request's budget or the KV cache spent
                                      (any call that evaluates may return it)           */
    SD_ERR_UNKNOWN_SCORER = -4,    /* score() named a scorer that is not loaded         */
    SD_ERR_ENGINE = -5,            /* llama.cpp failed                                  */
    SD_ERR_PLUGIN = -6,            /* the plugin failed; its message was given to fail() */
    SD_ERR_BUFFER_TOO_SMALL = -7,  /* the output buffer is too small                    */
    SD_ERR_HOST_ABI = -8,          /* init(): the host table is another ABI version, or
                                      smaller than the sd_host the plugin was built with */
};

enum sd_plugin_kind {
    SD_KIND_STRATEGY = 1,  /* solves a problem: implements solve()                     */
    SD_KIND_SCORER = 2,    /* scores a (partial) solution in [0, 1]: implements score() */
};

/* What evaluated tokens are charged as (see the metrics in docs/api.md). */
enum sd_token_kind {
    SD_TOKENS_PROMPT = 0,
    SD_TOKENS_GENERATED = 1,
    SD_TOKENS_THOUGHT = 2,
    SD_TOKENS_SCORER = 3,
};

enum sd_finish {
    SD_FINISH_EOG = 0,        /* the model ended its turn       */
    SD_FINISH_STOP = 1,       /* a stop string was produced     */
    SD_FINISH_MAX_TOKENS = 2, /* max_tokens reached             */
    SD_FINISH_STOPPED = 3,    /* cancelled, out of budget, or no room left in the KV cache */
    SD_FINISH_LOW_CONFIDENCE = 4, /* a window of tokens fell below stop_below (generate_with_signals) */
};

/* The models a plugin can ask about (next_token_logprobs). */
enum sd_model {
    SD_MODEL_POLICY = 0,  /* the resident model strategies generate with       */
    SD_MODEL_REWARD = 1,  /* the daemon's reward model (load_reward_model), if loaded */
};

/* When an adaptive sampler may stop drawing (sd_host.stop_rule). */
enum sd_stop_rule {
    SD_STOP_BETA = 0,  /* Adaptive-Consistency: P(leader likelier than runner-up) >= parameter */
    SD_STOP_ESC = 1,   /* early-stopping self-consistency: the last `parameter` answers agree  */
};

/* How sd_host.vote tallies an answer. */
enum sd_vote_mode {
    SD_VOTE_PLAIN = 0,     /* each candidate giving it counts one   */
    SD_VOTE_WEIGHTED = 1,  /* each candidate giving it counts its weight */
};

/* What a candidate's answer gathered in a vote. */
typedef struct sd_vote_tally {
    int32_t votes;   /* candidates giving this answer; 0 for a candidate without one */
    double weight;   /* the sum of their weights                                    */
} sd_vote_tally;

/* A sequence of tokens in the shared KV cache, owned by one request. */
typedef int32_t sd_seq;

/* One request in flight, opaque to plugins. */
typedef struct sd_request sd_request;

/* A zeroed sd_sampling is greedy. */
typedef struct sd_sampling {
    float temperature;  /* 0 = greedy; else (0, 5]                  */
    int32_t top_k;      /* 0 = off; else [1, vocabulary size]       */
    float top_p;        /* 0 or 1 = off; else (0, 1)                */
    float min_p;        /* 0 = off; else [0, 1)                     */
    uint32_t seed;      /* sequence i of a generate() call uses seed + i */
} sd_sampling;

typedef struct sd_generate_params {
    int32_t max_tokens;          /* per sequence, [1, the daemon's --max-tokens-per-call] */
    int32_t min_tokens;          /* end-of-generation is suppressed before this; >= 0     */
    const char * const * stop;   /* n_stop NUL-terminated stop strings, may be NULL       */
    int32_t n_stop;              /* [0, 16]                                              */
    sd_sampling sampling;
    int32_t kind;                /* enum sd_token_kind of the generated tokens            */
    bool logprobs;               /* fill sd_generation.logprob_sum and logprob_min; the
                                    sequence keeps them and the tokens' signals at top_k
                                    1, so seq_append_scored and seq_append_signals (at
                                    top_k 1) over these tokens are free                  */
} sd_generate_params;

/* What generate_with_signals records, and when it ends a sequence early. A token's
   confidence is minus the mean log-probability of the top_k likeliest tokens at its step
   (DeepConf, Fu et al. 2025: high when the model's mass sits on few tokens); a group's is
   the mean over `window` consecutive tokens. */
typedef struct sd_signal_params {
    uint32_t size;       /* sizeof(sd_signal_params) */
    int32_t top_k;       /* [1, 20]                                                  */
    int32_t window;      /* [1, 65536]                                               */
    double stop_below;   /* > 0: end a sequence once its last `window` tokens' mean
                            confidence is below this (finish SD_FINISH_LOW_CONFIDENCE);
                            0: never                                                 */
} sd_signal_params;

/* One sequence's signals, one entry per generated token (n = the generation's n_tokens),
   read from the next-token distribution at temperature 1 before sampling. Free with
   token_signals_free. */
typedef struct sd_token_signals {
    int32_t n;
    int32_t * tokens;     /* the generated tokens                        */
    float * logprob;      /* log p of each token                        */
    float * confidence;   /* minus the mean log-probability of the top_k */
    float * entropy;      /* of the next-token distribution, in nats    */
    float * margin;       /* p(likeliest) - p(second likeliest)         */
    float * certainty;    /* KL(uniform || p), self-certainty (Kang et al. 2025) */
} sd_token_signals;

typedef struct sd_generation {
    char * text;          /* the generated text, NUL-terminated; free with generations_free */
    int32_t n_tokens;
    int32_t finish;       /* enum sd_finish                                       */
    double logprob_sum;   /* of the generated tokens, when asked for             */
    double logprob_min;
} sd_generation;

/* The compute a request has used so far. */
typedef struct sd_usage {
    int64_t prompt_tokens;
    int64_t generated_tokens;
    int64_t thought_tokens;
    int64_t scorer_tokens;
    int64_t evaluated_tokens;
    double flops;
    double scorer_flops;
    double wall_seconds;
} sd_usage;

typedef struct sd_host {
    uint32_t abi_version;  /* SD_PLUGIN_ABI_VERSION */
    uint32_t size;         /* sizeof(sd_host) as the daemon was built */

    /* Model facts as a JSON object (architecture, vocabulary_size, embedding_width,
       layers, ...). Valid for the life of the daemon. */
    const char * (*model_info)(sd_request * r);

    /* -- sequences: every sequence belongs to the request; the host frees what the plugin
          leaves as soon as solve() returns. A sequence made from a chat or text shares
          the KV cells of the longest prefix it has in common with a live sequence of the
          request: those tokens are not evaluated again, nor charged. Where a live sequence
          spells the start of the text with tokens the tokenizer would not choose (sampling
          does), the new sequence takes that sequence's tokens for that start. -- */

    /* A sequence holding the model's chat template applied to an optional system message
       and the user message, with the assistant's turn opened and `assistant_prefix`
       (may be NULL) already written in it. Charged as prompt tokens. Only the template's
       own text holds control tokens: the messages and the prefix are tokenized as text,
       so "<|im_end|>" in a problem is those characters, never the token. */
    int32_t (*seq_from_chat)(sd_request * r, const char * system, const char * user,
                             const char * assistant_prefix, sd_seq * out);
    /* A sequence holding text, tokenized as text (control tokens written in it stay
       characters: a plugin that means a control token appends its id with
       seq_append_tokens). The model's BOS token is added first when its vocabulary asks
       for one, as in seq_from_chat. seq_append_text and tokenize read text the same way. */
    int32_t (*seq_from_text)(sd_request * r, const char * text, int32_t kind, sd_seq * out);
    /* n children sharing every token of parent (evaluated once). n in [1, 256]. */
    int32_t (*seq_fork)(sd_request * r, sd_seq parent, int32_t n, sd_seq * children);
    int32_t (*seq_append_text)(sd_request * r, sd_seq seq, const char * text, int32_t kind);
    int32_t (*seq_append_tokens)(sd_request * r, sd_seq seq, const int32_t * tokens, int32_t n, int32_t kind);
    void (*seq_free)(sd_request * r, sd_seq seq);
    /* Evaluates the queued tokens of n sequences in one batch. Optional: fork, generate
       and logits evaluate on demand, but one call before forking many parents saves a
       decode per parent. Each sequence at most once. */
    int32_t (*seq_evaluate)(sd_request * r, const sd_seq * seqs, int32_t n);

    /* -- decoding -- */

    /* Generates on n sequences together: one llama_decode per step for all of them.
       out[i] receives sequence seqs[i]'s generation. Returns SD_OK, or SD_ERR_STOPPED
       when the request was cancelled or ran out of budget, or the KV cache had no room
       for a step (out[] then holds what was generated so far, finish =
       SD_FINISH_STOPPED; after a full cache the request counts as out of budget). */
    int32_t (*generate)(sd_request * r, const sd_seq * seqs, int32_t n,
                        const sd_generate_params * params, sd_generation * out);
    void (*generations_free)(sd_request * r, sd_generation * generations, int32_t n);
    /* Next-token logits of a sequence (n_vocab floats) and its last hidden state after
       the final norm (n_embd floats; only once enable_hidden_states was called). */
    int32_t (*logits)(sd_request * r, sd_seq seq, float * out, int32_t n_vocab);
    int32_t (*hidden_state)(sd_request * r, sd_seq seq, float * out, int32_t n_embd);
    /* Samples a token from logits the plugin computed (for example a mixture). Each call
       draws afresh from the request's seed + sampling->seed: vary sampling->seed from call
       to call (the position, say) for independent draws. */
    int32_t (*sample)(sd_request * r, const float * logits, int32_t n_vocab,
                      const sd_sampling * sampling, int32_t * token);
    /* Tokenizes text into out; returns the count, or SD_ERR_BUFFER_TOO_SMALL. */
    int32_t (*tokenize)(sd_request * r, const char * text, int32_t * out, int32_t capacity);
    /* Writes the text of tokens, NUL-terminated; returns its length or SD_ERR_BUFFER_TOO_SMALL. */
    int32_t (*detokenize)(sd_request * r, const int32_t * tokens, int32_t n, char * out, int32_t capacity);
    /* Whether a token ends the model's turn. */
    bool (*is_end_of_generation)(sd_request * r, int32_t token);

    /* -- answers and scoring -- */

    /* The normalized final answer of a solution text, written NUL-terminated into out:
       a number in canonical form ("72", "-0.5", "1/3"), or an expression in canonical
       spelling ("\sqrt{2}", "(1,-2)"), at most SD_ANSWER_MAX_BYTES bytes. Returns its length, 0 if the
       text has no answer, SD_ERR_BUFFER_TOO_SMALL if out cannot hold it. */
    int32_t (*extract_answer)(sd_request * r, const char * text, char * out, int32_t capacity);
    /* Scores a solution (complete or partial) of the problem with the named scorer plugin,
       its params a JSON object (may be NULL for defaults). Score in [0, 1]. The scorer's
       tokens are charged to this request as scorer tokens. */
    int32_t (*score)(sd_request * r, const char * scorer, const char * params_json,
                     const char * problem, const char * solution, double * out);

    /* Log-probabilities, as the next token after `text`, of the first token of each of
       the n candidate strings, on the model named by `model` (enum sd_model). `text` is
       evaluated in a sequence of its own (tokenized as text, as seq_from_text) and
       charged as scorer tokens. SD_ERR_INVALID_ARGUMENT for SD_MODEL_REWARD when no
       reward model is resident. n in [1, 64]. */
    int32_t (*next_token_logprobs)(sd_request * r, int32_t model, const char * text,
                                   const char * const * candidates, int32_t n, double * out);

    /* -- control and reporting -- */

    /* True once the request is cancelled, its client gone, or its budget spent: return
       the best answer so far. */
    bool (*should_stop)(sd_request * r);
    /* Sends a progress notification to a streaming client: a JSON object. */
    void (*progress)(sd_request * r, const char * json_object);
    void (*usage)(sd_request * r, sd_usage * out);
    /* The request's result, a JSON object: {"text": ..., "answer": ... or null,
       "candidates": [{"text", "answer", "score"?, "votes"?, "vote_weight"?}...],
       "details": {...}}; votes and vote_weight are the candidate's tally from vote().
       Required once from a strategy's solve(). */
    int32_t (*set_result)(sd_request * r, const char * json_object);
    /* Records why the plugin failed; returns SD_ERR_PLUGIN for `return host->fail(...)`. */
    int32_t (*fail)(sd_request * r, const char * message);
    /* Writes to the daemon's log. level: 0 debug, 1 info, 2 warning, 3 error. */
    void (*log)(sd_request * r, int32_t level, const char * message);

    /* Appends n tokens to a sequence and evaluates them in one batch with an output at
       every position: out[i] = log p(tokens[i] | everything before it), temperature 1.
       A teacher-forced score of a continuation at the price of one decode. Charged as
       `kind`. n in [1, the daemon's --context-size]. When another live sequence of the
       request holds the same tokens after the same prefix, their log-probabilities known
       (generated with logprobs or signals, or scored), those are returned and its KV cells shared:
       only the tokens past the longest such run are evaluated and charged. */
    int32_t (*seq_append_scored)(sd_request * r, sd_seq seq, const int32_t * tokens, int32_t n,
                                 int32_t kind, float * out);

    /* Whether the named scorer, with these params (a JSON object, NULL for its defaults),
       reads the log-probabilities the policy gave a solution's tokens (its plugin's
       reads_logprobs). A strategy asks before sampling what it will score, and generates
       with logprobs if so. False for an unknown scorer or invalid params (score() then
       says why). */
    bool (*scorer_reads_logprobs)(sd_request * r, const char * scorer, const char * params_json);

    /* -- added to ABI 1 later: call only when SD_HOST_HAS(host, member) -- */

    /* The vote over n candidates, the one rule every strategy's final answer uses.
       answers[i]: a normalized answer (extract_answer), NULL or "" for none (it does not
       vote). weights: NULL for all 1, else n finite numbers. The winning answer has the
       largest tally (a count for SD_VOTE_PLAIN, a weight sum for SD_VOTE_WEIGHTED); ties go
       to the answer with the larger best single weight, then to the answer seen first.
       *chosen: among the candidates giving the winner, the one with the largest weight
       (the first on ties); when no candidate has an answer, the candidate with the largest
       weight; -1 for n = 0. tallies: NULL, or n entries receiving each candidate's
       answer's count and weight sum. n in [0, 65536]. Evaluates nothing. */
    int32_t (*vote)(sd_request * r, const char * const * answers, const double * weights, int32_t n,
                    int32_t mode, sd_vote_tally * tallies, int32_t * chosen);

    /* -- for a plugin's configure() only (r is NULL): resources every solve shares, which
          the administrator's settings for the plugin ask the daemon for. Called at any
          other time they return SD_ERR_INVALID_ARGUMENT. -- */

    /* From now on, every evaluated sequence keeps its last hidden state (hidden_state()
       needs it); llama.cpp then copies n_embd floats per output, for every solve. */
    int32_t (*enable_hidden_states)(sd_request * r);
    /* Makes `model` (a catalog model name or a GGUF path) the daemon's reward model
       (SD_MODEL_REWARD), resident from now on. The same model again is kept as it is;
       another while one is resident is refused with SD_ERR_INVALID_ARGUMENT (one reward
       model at a time); a model that cannot be loaded, SD_ERR_ENGINE (the daemon logs why). */
    int32_t (*load_reward_model)(sd_request * r, const char * model);

    /* -- signals of the model's certainty (added to ABI 1 later: SD_HOST_HAS) -- */

    /* generate(), and per generated token the signals of sd_token_signals into signals[i]
       for sequence seqs[i]; ends a sequence early when `params->stop_below` says so. */
    int32_t (*generate_with_signals)(sd_request * r, const sd_seq * seqs, int32_t n,
                                     const sd_generate_params * generate, const sd_signal_params * params,
                                     sd_generation * out, sd_token_signals * signals);
    void (*token_signals_free)(sd_request * r, sd_token_signals * signals, int32_t n);
    /* seq_append_scored, and the signals of each appended token's position (as
       generate_with_signals records them; `params->stop_below` is not used) into *signals,
       free with token_signals_free. A scorer of the policy's certainty teacher-forces a
       solution with it. As seq_append_scored lends, so does this where the other sequence
       knows the signals at the same top_k: tokens sampled with signals know them at
       theirs, tokens sampled with logprobs at top_k 1. */
    int32_t (*seq_append_signals)(sd_request * r, sd_seq seq, const int32_t * tokens, int32_t n, int32_t kind,
                                  const sd_signal_params * params, float * out, sd_token_signals * signals);

    /* Whether an adaptive sampler may stop drawing, by `rule` over the answers drawn so
       far in draw order (NULL or "" for none), n in [0, 65536]. SD_STOP_BETA (Aggarwal et
       al. 2023): with v1 votes for the leading answer and v2 for the runner-up, stop once
       P(X > 1/2) for X ~ Beta(v1 + 1, v2 + 1) is at least `parameter` (in (0.5, 1));
       SD_STOP_ESC (Li et al. 2024): stop once the last `parameter` answers (a whole number
       >= 1) are one and the same. *measure: that probability, or the share of the last
       window giving its most common answer. Evaluates nothing. */
    int32_t (*stop_rule)(sd_request * r, int32_t rule, double parameter, const char * const * answers,
                         int32_t n, bool * stop, double * measure);

    /* -- strategies that choose strategies (added to ABI 1 later: SD_HOST_HAS) -- */

    /* The request's budget: evaluated tokens, FLOPs (0: no cap) and seconds left. */
    int32_t (*budget)(sd_request * r, int64_t * max_tokens, double * max_flops, double * seconds_left);
    /* Runs the strategy plugin `strategy` on this request's problem, with `params_json` (a
       JSON object checked against its schema, defaults filled in; NULL for all defaults),
       as part of this request: its tokens, FLOPs and budget are this request's. Its result
       object goes to *result_json (NUL-terminated, free with free()), not to the client:
       the calling strategy sets its own. SD_ERR_INVALID_ARGUMENT for an unknown strategy, invalid params, or nesting deeper
       than 8; the strategy's own status when it fails (host->fail's message is kept). */
    int32_t (*solve_with)(sd_request * r, const char * strategy, const char * params_json, char ** result_json);
} sd_host;

/* Whether a host table has a function appended to ABI 1 after its first release. */
#define SD_HOST_HAS(host, member) \
    ((host)->size >= offsetof(sd_host, member) + sizeof(((sd_host *)0)->member))

typedef struct sd_plugin {
    uint32_t abi_version;      /* SD_PLUGIN_ABI_VERSION                                */
    uint32_t size;             /* sizeof(sd_plugin)                                     */
    const char * name;         /* [a-z0-9-]+, the same as the file's lib<NAME>.so       */
    const char * version;      /* the plugin's own version, e.g. "1.2.0"                */
    int32_t kind;              /* enum sd_plugin_kind                                   */
    const char * description;  /* one line                                              */
    /* The params the plugin takes, a JSON object: name -> {"type": "integer" | "number" |
       "boolean" | "string", "default": ..., "minimum"?: ..., "maximum"?: ..., "enum"?: [...],
       "description": "..."}. The daemon checks a request's params against it and hands
       the plugin a complete object, defaults filled in. */
    const char * params_schema;

    /* Optional: called once after loading; a non-zero return refuses the load. *state
       is passed to every later call. A plugin that calls host functions checks here that
       host->abi_version is SD_PLUGIN_ABI_VERSION and host->size >= sizeof(sd_host), and
       returns SD_ERR_HOST_ABI otherwise: a plugin built against a newer header must not
       call past the end of an older daemon's table. */
    int32_t (*init)(const sd_host * host, void ** state);
    /* Optional: called once when the generation is retired and no request uses it. */
    void (*deinit)(void * state);
    /* Strategies: solve `problem` and call host->set_result(). */
    int32_t (*solve)(void * state, const sd_host * host, sd_request * r,
                     const char * problem, const char * params_json);
    /* Scorers: the score in [0, 1] of `solution` (possibly partial) for `problem`. */
    int32_t (*score)(void * state, const sd_host * host, sd_request * r,
                     const char * problem, const char * solution, const char * params_json,
                     double * out);

    /* -- optional fields: the daemon reads them only when `size` covers them, so a plugin
          built before one was added still loads (and goes without it) -- */

    /* Scorers, NULL for never: whether score() with these params reads the log-probabilities
       the policy gave the solution's tokens, by seq_append_scored over the text a strategy
       sampled, or their signals at top_k 1 by seq_append_signals. Strategies that will
       score with this scorer then generate with logprobs and the scorer reads them at no
       cost instead of evaluating the tokens again. Keeping them costs the strategy a few
       passes over the vocabulary per sampled token: a scorer that reads only text leaves
       this NULL. */
    bool (*reads_logprobs)(void * state, const sd_host * host, sd_request * r, const char * params_json);

    /* The plugin's own settings, given by the daemon's administrator in a section per
       plugin (the configuration file's "plugins" object, or --plugin-config NAME.KEY=VALUE)
       and never by clients: params_schema's format, plus type "path" (a string; a relative
       path is taken from the plugin directory). NULL: the plugin takes none, and a section
       naming it is refused. The daemon checks the section at load and refuses the load
       naming the setting; plugins.list shows the values. */
    const char * settings_schema;
    /* Called once after init(), before any request, with the complete settings (a JSON
       object, defaults filled in, paths made absolute); a non-zero return refuses the load.
       NULL when the plugin reads its settings no other way than through this call. */
    int32_t (*configure)(void * state, const sd_host * host, const char * settings_json);
} sd_plugin;

/* The smallest sd_plugin the daemon loads: everything before the optional fields. */
#define SD_PLUGIN_MIN_SIZE offsetof(sd_plugin, reads_logprobs)

typedef const sd_plugin * (*sd_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* STRATEGYD_PLUGIN_H */
