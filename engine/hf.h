/*
 * hf.h — a Hugging Face model directory opened as the GGUF file llama.cpp's
 * convert_hf_to_gguf.py would write from it, so that the model loader
 * (model.c), the tokenizer and the quantizer read it through the one code
 * path they already have for GGUF.
 *
 * A directory holds config.json, model.safetensors (or
 * model.safetensors.index.json and the shards it names), tokenizer.json and
 * optionally tokenizer_config.json / chat_template.jinja. Supported: the
 * llama, mistral and qwen2 architectures with F32, F16 or BF16 weights.
 *
 * The result is an ordinary struct gguf_file (gguf.h): metadata keys as the
 * converter writes them (general.architecture, llama.embedding_length, ...,
 * tokenizer.ggml.*), tensors under their GGUF names pointing into the mapped
 * safetensors files. LLaMA's q/k projections are the exception: the
 * converter permutes their rows (HF rotates the two halves of each head,
 * GGUF adjacent pairs), so those are copied, permuted, into memory the file
 * owns; qwen2 rotates halves in GGUF too and is left as it is.
 */
#ifndef LB_HF_H
#define LB_HF_H

#include "gguf.h"

// True when `path` is a directory (then it can only be a Hugging Face one).
bool hf_is_dir(const char *path);

// Open the directory. Errors are one line naming the file and the field:
// "m/config.json: field 'num_attention_heads' missing (required for llama models)".
// gguf_close frees the result, with the mappings and the permuted copies.
lb_status hf_open(struct gguf_file **out, const char *dir, lb_error *err);

#endif
