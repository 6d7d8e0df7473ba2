"""Frame-rate iSTFT vocoder (Vocos/APNet family, no discriminator).

Modules: ``hparams`` (sizes, loss weights, schedule), ``spectral`` (the synthesizer's mel and STFT
geometry in torch, overlap-add), ``model`` (ConvNeXt backbone, amplitude and phase heads),
``losses`` (APNet-style spectral and phase losses), ``data`` (random waveform segments),
``train`` (``python -m vocoder.istft.train``) and ``inference`` (:class:`ISTFTVocoder`).
"""
