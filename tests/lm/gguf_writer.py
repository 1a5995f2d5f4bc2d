"""Write a tiny Llama as a GGUF file the way llama.cpp's convert_hf_to_gguf.py does, so tests cover the
GGUF path without downloading anything: float32 tensors under llama.cpp's names, q/k rows permuted to
its rotary layout, and a byte-level ("gpt2") vocabulary in the metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's `LlamaModel.permute`: HF's half-split rotary rows to GGML's interleaved pairs."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def write_tiny_gguf(model, path: Path, chat_template: str | None = None) -> Path:
    """`model` (a transformers LlamaForCausalLM with curate's byte tokenizer vocabulary) as a GGUF file."""
    import gguf

    from curate.lm import byte_tokenizer

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None)
                                    or config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = list(byte_tokenizer.SPECIALS) + byte_tokenizer._byte_chars()
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] * byte_tokenizer.OFFSET + [gguf.TokenType.NORMAL] * 256)
    writer.add_token_scores([0.0] * len(tokens))  # no merges: one token per byte, like curate's byte tokenizer
    writer.add_bos_token_id(byte_tokenizer.BOS)
    writer.add_eos_token_id(byte_tokenizer.EOS)
    writer.add_pad_token_id(byte_tokenizer.PAD)
    writer.add_unk_token_id(byte_tokenizer.UNK)
    writer.add_add_bos_token(False)
    if chat_template:
        writer.add_chat_template(chat_template)

    state = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    writer.add_tensor("token_embd.weight", state["model.embed_tokens.weight"])
    for i in range(config.num_hidden_layers):
        prefix, block = f"model.layers.{i}.", f"blk.{i}."
        writer.add_tensor(block + "attn_norm.weight", state[prefix + "input_layernorm.weight"])
        writer.add_tensor(block + "attn_q.weight", _permute(state[prefix + "self_attn.q_proj.weight"], heads))
        writer.add_tensor(block + "attn_k.weight", _permute(state[prefix + "self_attn.k_proj.weight"], kv_heads))
        writer.add_tensor(block + "attn_v.weight", state[prefix + "self_attn.v_proj.weight"])
        writer.add_tensor(block + "attn_output.weight", state[prefix + "self_attn.o_proj.weight"])
        writer.add_tensor(block + "ffn_norm.weight", state[prefix + "post_attention_layernorm.weight"])
        writer.add_tensor(block + "ffn_gate.weight", state[prefix + "mlp.gate_proj.weight"])
        writer.add_tensor(block + "ffn_up.weight", state[prefix + "mlp.up_proj.weight"])
        writer.add_tensor(block + "ffn_down.weight", state[prefix + "mlp.down_proj.weight"])
    writer.add_tensor("output_norm.weight", state["model.norm.weight"])
    if not config.tie_word_embeddings:
        writer.add_tensor("output.weight", state["lm_head.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
