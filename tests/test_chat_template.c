/*
 * test_chat_template.c — chat prompts, byte for byte as the models' own Jinja
 * templates render them, through lowbit.h only.
 *
 * One conversation (a system prompt, two answered questions and a third
 * question, with whitespace around one answer that some templates trim) is
 * rendered by every template. The expected strings were produced once with
 * the jinja2 package from each model's real template text, exactly as
 * transformers' apply_chat_template renders (trim_blocks, lstrip_blocks):
 * tests/chat_template_expected.py holds the templates and prints this table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "lowbit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const lb_chat_message conversation[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

static const struct {
    const char *name, *bos, *eos, *expected;
} cases[] = {
    {"llama2", "<s>", "</s>",
     "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question [/INST]"},
    {"llama3", "<|begin_of_text|>", "<|eot_id|>",
     "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    {"chatml", "<s>", "<|im_end|>",
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n"},
    {"zephyr", "<s>", "</s>",
     "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n<|user|>\nWho are you</s>\n<|assistant|>\n   I am an assistant   </s>\n<|user|>\nAnother question</s>\n<|assistant|>\n"},
    {"mistral", "<s>", "</s>",
     "<s> [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am an assistant   </s> [INST] Another question [/INST]"},
    {"gemma", "<bos>", "<eos>",
     "<bos><start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n"},
    {"phi3", "<|endoftext|>", "<|endoftext|>",
     "<|endoftext|><|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n<|assistant|>\n"},
    {"alpaca", "<s>", "</s>",
     "You are a helpful assistant\n\n### Instruction:\nHello\n\n### Response:\nHi there</s>\n\n### Instruction:\nWho are you\n\n### Response:\n   I am an assistant   </s>\n\n### Instruction:\nAnother question\n\n### Response:\n"},
    {"raw", "<s>", "</s>",
     "You are a helpful assistant\nHelloHi thereWho are you   I am an assistant   Another question"},
};

static char *render(lb_chat_template t, const lb_chat_message *m, int n, bool add, const char *bos, const char *eos) {
    size_t len = lb_chat_render(t, m, n, add, bos, eos, NULL, 0);
    char *s = malloc(len + 1);
    assert_non_null(s);
    assert_int_equal(lb_chat_render(t, m, n, add, bos, eos, s, len + 1), len);
    return s;
}

// Every template family, the whole conversation, against the Jinja output.
static void test_every_template_matches_jinja(void **state) {
    assert_int_equal(sizeof cases / sizeof cases[0], LB_CHAT_TEMPLATE_COUNT);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int t = lb_chat_template_from_name(cases[i].name);
        assert_true(t >= 0);
        char *got = render((lb_chat_template)t, conversation, 6, true, cases[i].bos, cases[i].eos);
        if (strcmp(got, cases[i].expected)) fprintf(stderr, "template %s:\n got  [%s]\n want [%s]\n", cases[i].name, got, cases[i].expected);
        assert_string_equal(got, cases[i].expected);
        free(got);
    }
}

// Multi-turn prompt reuse depends on this: the prompt of turn k, followed by
// the reply, is a prefix of the prompt of turn k+1 (up to the reply's
// trimmed whitespace, for the templates that trim).
static void test_each_turn_extends_the_last(void **state) {
    const lb_chat_message clean[] = {
        {"system", "Be brief."}, {"user", "Hello"}, {"assistant", "Hi there"}, {"user", "Who are you"},
    };
    for (int t = 0; t < LB_CHAT_TEMPLATE_COUNT; t++) {
        char *first = render((lb_chat_template)t, clean, 2, true, "<s>", "</s>");
        char *second = render((lb_chat_template)t, clean, 4, true, "<s>", "</s>");
        const char *reply = t == LB_CHAT_LLAMA2 || t == LB_CHAT_MISTRAL ? " Hi there" : "Hi there";
        size_t n = strlen(first);
        assert_true(strlen(second) > n + strlen(reply));
        assert_memory_equal(second, first, n);
        assert_memory_equal(second + n, reply, strlen(reply));
        free(first);
        free(second);
    }
}

// Detection by signature, as llama.cpp's llm_chat_detect_template.
static void test_detect(void **state) {
    static const struct {
        const char *jinja;
        lb_chat_template want;
    } d[] = {
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}{% endfor %}", LB_CHAT_CHATML},
        {"{{ bos_token + '[INST] ' + '<<SYS>>\\n' }}", LB_CHAT_LLAMA2},
        {"{{ bos_token }}{% for m in messages %}{{ ' [INST] ' + m['content'] + ' [/INST]' }}{% endfor %}", LB_CHAT_MISTRAL},
        {"{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}", LB_CHAT_LLAMA3},
        {"{{ '<|user|>\\n' + message['content'] + eos_token }}", LB_CHAT_ZEPHYR},
        {"{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>\\n' }}{{ '<|user|>' }}", LB_CHAT_PHI3},
        {"{{ '<start_of_turn>' + role + '\\n' }}", LB_CHAT_GEMMA},
        {"### Instruction:\\n{{ x }}\\n\\n### Response:\\n", LB_CHAT_ALPACA},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) assert_int_equal(lb_chat_template_detect(d[i].jinja), d[i].want);
    assert_int_equal(lb_chat_template_detect("{{ messages }}"), -1);
    assert_int_equal(lb_chat_template_detect(""), -1);
    assert_int_equal(lb_chat_template_detect(NULL), -1);
}

static void test_names(void **state) {
    for (int t = 0; t < LB_CHAT_TEMPLATE_COUNT; t++)
        assert_int_equal(lb_chat_template_from_name(lb_chat_template_name((lb_chat_template)t)), t);
    assert_int_equal(lb_chat_template_from_name("ChatML"), LB_CHAT_CHATML);
    assert_int_equal(lb_chat_template_from_name("vicuna"), -1);
    assert_null(lb_chat_template_name(LB_CHAT_TEMPLATE_COUNT));
}

// snprintf semantics: a small buffer gets a NUL-terminated prefix and the full length.
static void test_small_buffer(void **state) {
    char buf[8];
    size_t full = lb_chat_render(LB_CHAT_CHATML, conversation, 6, true, "", "", NULL, 0);
    assert_int_equal(lb_chat_render(LB_CHAT_CHATML, conversation, 6, true, "", "", buf, sizeof buf), full);
    assert_string_equal(buf, "<|im_st");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_template_matches_jinja),
        cmocka_unit_test(test_each_turn_extends_the_last),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
