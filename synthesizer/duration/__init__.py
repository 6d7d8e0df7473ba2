"""Phoneme duration synthesizer: a non-autoregressive alternative to the Tacotron (docs/synthesizer.md)."""
