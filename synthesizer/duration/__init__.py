"""Phoneme duration synthesizer: the offline default that trains on two CPU cores.

A non-autoregressive alternative to RTVC's Tacotron with the same contract (text + 256-d GE2E
embedding in, the synthesizer's 80-band mel out). Phonemes from espeak-ng (:mod:`.phonemes`) go
through a convolutional encoder that predicts one mean mel frame and one duration per phoneme; in
training, monotonic alignment search (:mod:`.alignment`) finds which frames belong to which phoneme,
so no external aligner is needed; a convolutional decoder conditioned on the speaker refines the
expanded means into the mel (:mod:`.model`).
"""
