"""Symbol table of the synthesizer's character embedding, frozen: RTVC's ``nn.Embedding(66, 512)`` row
*i* was trained on symbol *i*, so any change makes every checkpoint speak garbage.

>>> len(SYMBOLS)
66
>>> SYMBOL_TO_ID["a"], SYMBOL_TO_ID[" "]
(28, 65)
"""

from __future__ import annotations

__all__ = ["PAD", "EOS", "SYMBOLS", "SYMBOL_TO_ID", "NUM_SYMBOLS"]

#: Padding symbol (id 0); the attention mask treats id 0 as "no character".
PAD: str = "_"
#: End-of-sequence symbol (id 1), appended to every encoded text.
EOS: str = "~"

_PUNCTUATION: str = "!'\"(),-.:;? "
_LETTERS: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

#: The 66 symbols in checkpoint order.
SYMBOLS: tuple[str, ...] = (PAD, EOS, *_LETTERS, *_PUNCTUATION)

#: Symbol -> embedding row.
SYMBOL_TO_ID: dict[str, int] = {s: i for i, s in enumerate(SYMBOLS)}

NUM_SYMBOLS: int = len(SYMBOLS)

# Fail loudly at import rather than silently load a checkpoint against a
# mismatched table.
assert NUM_SYMBOLS == 66 and len(SYMBOL_TO_ID) == 66
