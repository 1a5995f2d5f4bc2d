"""A byte-level tokenizer: 4 special tokens, then one token per byte.

It needs no training data and no download, never meets an unknown character, and its
ids are trivial to compute (`4 + byte`), which is what a proxy model trained on the
fly wants. It is saved as a regular `PreTrainedTokenizerFast` folder, so
`AutoTokenizer` loads it like any other.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
OFFSET = len(SPECIALS)
VOCAB_SIZE = OFFSET + 256


@lru_cache(maxsize=1)
def _byte_chars() -> list[str]:
    """GPT-2's byte-to-printable-character table, indexed by byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def byte_ids(text: str, bos: bool = True) -> list[int]:
    """What the saved tokenizer gives for `text`, computed directly."""
    ids = [b + OFFSET for b in text.encode("utf-8")]
    return [BOS] + ids if bos else ids


def build():
    """The tokenizer as a transformers `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS)}
    vocab.update({char: OFFSET + b for b, char in enumerate(_byte_chars())})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                        special_tokens=[("<s>", BOS)])
    # split_special_tokens: "<s>" in the text is four bytes, as `byte_ids` says, never the BOS token
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=1 << 30, split_special_tokens=True)


def save(folder: Path) -> None:
    build().save_pretrained(str(folder))
