/*
 * chat_template.c — chat prompts as the models' own Jinja templates write them.
 *
 * The engine has no Jinja interpreter. Each supported template family is one
 * row of `templates` below: a C function that writes exactly the bytes the
 * family's reference template (named in the row's comment) renders, and the
 * signature substrings by which a GGUF `tokenizer.chat_template` is recognised,
 * the way llama.cpp's llm_chat_detect_template does it. tests/test_chat_template.c
 * compares every row with the Jinja output, byte for byte.
 *
 * Conversations are taken as: an optional system message first, then user and
 * assistant messages alternating, starting with a user message.
 */
#include "internal.h"
#include "gguf.h"
#include "model.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// --- output buffer ------------------------------------------------------------
// snprintf semantics: everything is counted, what fits is written.

struct out {
    char *buf;
    size_t cap, len;
};

static void put_n(struct out *o, const char *s, size_t n) {
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;
        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

static void put(struct out *o, const char *s) { put_n(o, s, strlen(s)); }

// Jinja's `trim` / Python's str.strip(): without leading and trailing whitespace.
static void put_trimmed(struct out *o, const char *s) {
    size_t n = strlen(s);
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    put_n(o, s, n);
}

static bool is_role(const lb_chat_message *m, const char *role) { return m->role && !strcmp(m->role, role); }

// The system prompt (NULL when none) and the messages after it.
struct conv {
    const char *system;
    const lb_chat_message *msgs;
    int n;
};

static struct conv split(const lb_chat_message *msgs, int n) {
    struct conv c = {NULL, msgs, n};
    if (n > 0 && is_role(&msgs[0], "system")) {
        c.system = msgs[0].content ? msgs[0].content : "";
        c.msgs++;
        c.n--;
    }
    return c;
}

struct tokens {
    const char *bos, *eos;
};

// --- the templates --------------------------------------------------------------

// meta-llama/Llama-2-7b-chat-hf: the system prompt in <<SYS>> inside the first
// [INST]; contents stripped; no generation prompt (the prompt ends with [/INST]).
static void render_llama2(struct out *o, struct conv c, bool add, struct tokens t) {
    for (int i = 0; i < c.n; i++) {
        const char *content = c.msgs[i].content;
        if (is_role(&c.msgs[i], "user")) {
            put(o, t.bos);
            put(o, "[INST] ");
            if (i == 0 && c.system) {
                // strip() applies to the whole "<<SYS>>...content" string: only the
                // content's tail can carry whitespace that is cut.
                put(o, "<<SYS>>\n");
                put(o, c.system);
                put(o, "\n<</SYS>>\n\n");
                size_t n = strlen(content);
                while (n && isspace((unsigned char)content[n - 1])) n--;
                put_n(o, content, n);
            } else {
                put_trimmed(o, content);
            }
            put(o, " [/INST]");
        } else if (is_role(&c.msgs[i], "assistant")) {
            put(o, " ");
            put_trimmed(o, content);
            put(o, " ");
            put(o, t.eos);
        }
    }
    (void)add;
}

// meta-llama/Meta-Llama-3-8B-Instruct
static void render_llama3(struct out *o, struct conv c, bool add, struct tokens t) {
    put(o, t.bos);
    if (c.system) {
        put(o, "<|start_header_id|>system<|end_header_id|>\n\n");
        put_trimmed(o, c.system);
        put(o, "<|eot_id|>");
    }
    for (int i = 0; i < c.n; i++) {
        put(o, "<|start_header_id|>");
        put(o, c.msgs[i].role);
        put(o, "<|end_header_id|>\n\n");
        put_trimmed(o, c.msgs[i].content);
        put(o, "<|eot_id|>");
    }
    if (add) put(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// teknium/OpenHermes-2.5-Mistral-7B (and Qwen, SmolLM, ...)
static void render_chatml(struct out *o, struct conv c, bool add, struct tokens t) {
    if (c.system) {
        put(o, "<|im_start|>system\n");
        put(o, c.system);
        put(o, "<|im_end|>\n");
    }
    for (int i = 0; i < c.n; i++) {
        put(o, "<|im_start|>");
        put(o, c.msgs[i].role);
        put(o, "\n");
        put(o, c.msgs[i].content);
        put(o, "<|im_end|>\n");
    }
    if (add) put(o, "<|im_start|>assistant\n");
    (void)t;
}

// TinyLlama/TinyLlama-1.1B-Chat-v1.0 (HuggingFaceH4/zephyr-7b-beta)
static void render_zephyr(struct out *o, struct conv c, bool add, struct tokens t) {
    if (c.system) {
        put(o, "<|system|>\n");
        put(o, c.system);
        put(o, t.eos);
        put(o, "\n");
    }
    for (int i = 0; i < c.n; i++) {
        put(o, "<|");
        put(o, c.msgs[i].role);
        put(o, "|>\n");
        put(o, c.msgs[i].content);
        put(o, t.eos);
        put(o, "\n");
    }
    if (add) put(o, "<|assistant|>\n");
}

// mistralai/Mistral-7B-Instruct-v0.2, mistral-common "v1" template: the system
// prompt opens the first [INST]; no generation prompt.
static void render_mistral(struct out *o, struct conv c, bool add, struct tokens t) {
    put(o, t.bos);
    for (int i = 0; i < c.n; i++) {
        if (is_role(&c.msgs[i], "user")) {
            put(o, " [INST] ");
            if (i == 0 && c.system) {
                put(o, c.system);
                put(o, "\n\n");
            }
            put(o, c.msgs[i].content);
            put(o, " [/INST]");
        } else {
            put(o, " ");
            put(o, c.msgs[i].content);
            put(o, t.eos);
        }
    }
    (void)add;
}

// google/gemma-3-1b-it: no system role; the system prompt opens the first user turn.
static void render_gemma(struct out *o, struct conv c, bool add, struct tokens t) {
    put(o, t.bos);
    for (int i = 0; i < c.n; i++) {
        put(o, is_role(&c.msgs[i], "assistant") ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (i == 0 && c.system) {
            put(o, c.system);
            put(o, "\n\n");
        }
        put_trimmed(o, c.msgs[i].content);
        put(o, "<end_of_turn>\n");
    }
    if (add) put(o, "<start_of_turn>model\n");
}

// microsoft/Phi-3-small-8k-instruct
static void render_phi3(struct out *o, struct conv c, bool add, struct tokens t) {
    put(o, t.bos);
    if (c.system) {
        put(o, "<|system|>\n");
        put(o, c.system);
        put(o, "<|end|>\n");
    }
    for (int i = 0; i < c.n; i++) {
        put(o, "<|");
        put(o, c.msgs[i].role);
        put(o, "|>\n");
        put(o, c.msgs[i].content);
        put(o, "<|end|>\n");
    }
    put(o, add ? "<|assistant|>\n" : t.eos);
}

// Stanford Alpaca's layout. The user turn ends with the response header.
static void render_alpaca(struct out *o, struct conv c, bool add, struct tokens t) {
    if (c.system) {
        put(o, c.system);
        put(o, "\n\n");
    }
    for (int i = 0; i < c.n; i++) {
        if (is_role(&c.msgs[i], "user")) {
            put(o, "### Instruction:\n");
            put(o, c.msgs[i].content);
            put(o, "\n\n### Response:\n");
        } else {
            put(o, c.msgs[i].content);
            put(o, t.eos);
            put(o, "\n\n");
        }
    }
    (void)add;
}

// Base models: the texts one after another, so a reply continues the text.
static void render_raw(struct out *o, struct conv c, bool add, struct tokens t) {
    if (c.system) {
        put(o, c.system);
        put(o, "\n");
    }
    for (int i = 0; i < c.n; i++) put(o, c.msgs[i].content);
    (void)add, (void)t;
}

typedef void (*render_fn)(struct out *o, struct conv c, bool add, struct tokens t);

static const struct {
    const char *name;
    render_fn render;
    const char *signatures[3]; // all must occur in the Jinja source; NULL-terminated
    const char *stop;          // end-of-turn text a model may write as plain text
} templates[LB_CHAT_TEMPLATE_COUNT] = {
    [LB_CHAT_RAW] = {"raw", render_raw, {NULL}, NULL},
    [LB_CHAT_LLAMA2] = {"llama2", render_llama2, {"[INST]", NULL}, NULL},
    [LB_CHAT_LLAMA3] = {"llama3", render_llama3, {"<|start_header_id|>", "<|end_header_id|>", NULL}, "<|eot_id|>"},
    [LB_CHAT_CHATML] = {"chatml", render_chatml, {"<|im_start|>", NULL}, "<|im_end|>"},
    [LB_CHAT_ZEPHYR] = {"zephyr", render_zephyr, {"<|user|>", "eos_token", NULL}, "</s>"},
    [LB_CHAT_MISTRAL] = {"mistral", render_mistral, {"[INST]", NULL}, NULL},
    [LB_CHAT_GEMMA] = {"gemma", render_gemma, {"<start_of_turn>", NULL}, "<end_of_turn>"},
    [LB_CHAT_PHI3] = {"phi3", render_phi3, {"<|end|>", "<|user|>", NULL}, "<|end|>"},
    [LB_CHAT_ALPACA] = {"alpaca", render_alpaca, {"### Instruction:", "### Response:", NULL}, "### Instruction:"},
};

// --- public -----------------------------------------------------------------------

const char *lb_chat_template_name(lb_chat_template t) {
    return (unsigned)t < LB_CHAT_TEMPLATE_COUNT ? templates[t].name : NULL;
}

int lb_chat_template_from_name(const char *name) {
    for (int i = 0; name && i < LB_CHAT_TEMPLATE_COUNT; i++)
        if (!strcasecmp(name, templates[i].name)) return i;
    return -1;
}

const char *lb_chat_template_stop(lb_chat_template t) {
    return (unsigned)t < LB_CHAT_TEMPLATE_COUNT ? templates[t].stop : NULL;
}

static bool has_all(const char *s, const char *const *sig) {
    if (!sig[0]) return false;
    for (int i = 0; sig[i]; i++)
        if (!strstr(s, sig[i])) return false;
    return true;
}

int lb_chat_template_detect(const char *jinja) {
    if (!jinja || !*jinja) return -1;
    // Order matters where signatures overlap, as in llm_chat_detect_template:
    // [INST] with <<SYS>> is llama2; [INST] alone is mistral; <|end|> with
    // <|user|> is phi3 before zephyr's <|user|>.
    if (strstr(jinja, "<|im_start|>")) return LB_CHAT_CHATML;
    if (strstr(jinja, "[INST]")) return strstr(jinja, "<<SYS>>") ? LB_CHAT_LLAMA2 : LB_CHAT_MISTRAL;
    static const lb_chat_template order[] = {LB_CHAT_LLAMA3, LB_CHAT_GEMMA, LB_CHAT_PHI3, LB_CHAT_ZEPHYR, LB_CHAT_ALPACA};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (has_all(jinja, templates[order[i]].signatures)) return order[i];
    return -1;
}

int lb_model_chat_template(const lb_model *m) {
    if (!m->gguf) return -1;
    const struct gguf_kv *kv = gguf_find(m->gguf, "tokenizer.chat_template");
    if (!kv || kv->value.type != GGUF_STRING) return -1;
    char *s = malloc(kv->value.str.len + 1);
    if (!s) return -1;
    memcpy(s, kv->value.str.data, kv->value.str.len);
    s[kv->value.str.len] = 0;
    int t = lb_chat_template_detect(s);
    free(s);
    return t;
}

size_t lb_chat_render(lb_chat_template t, const lb_chat_message *msgs, int n, bool add_assistant, const char *bos,
                      const char *eos, char *buf, size_t cap) {
    if ((unsigned)t >= LB_CHAT_TEMPLATE_COUNT) t = LB_CHAT_RAW;
    struct out o = {buf, cap ? cap - 1 : 0, 0};
    struct tokens tok = {bos ? bos : "", eos ? eos : ""};
    templates[t].render(&o, split(msgs, n < 0 ? 0 : n), add_assistant, tok);
    if (cap) buf[o.len < cap - 1 ? o.len : cap - 1] = 0;
    return o.len;
}
