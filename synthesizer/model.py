"""Tacotron synthesizer: RTVC's fatchord variant with SV2TTS speaker conditioning.

The state dict equals RTVC's ``synthesizer.pt``; design and the batching fix: docs/synthesizer.md.

>>> import torch
>>> from synthesizer.hparams import SynthesizerHParams
>>> hp = SynthesizerHParams(tts_embed_dims=32, tts_encoder_dims=32, tts_decoder_dims=32,
...                         tts_postnet_dims=32, tts_lstm_dims=64)
>>> model = build_tacotron(hp)
>>> model.r = 2
>>> out = model.generate(torch.tensor([[30, 40, 50, 1]]), torch.rand(1, 256), max_steps=20)
>>> out.postnet_mels.shape[:2], out.attention.shape[2]
(torch.Size([1, 80]), 4)
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from synthesizer.hparams import SynthesizerHParams
from synthesizer.packed import DecoderKernels
from synthesizer.text.symbols import SYMBOLS

#: Decoding may stop only after this frame index (RTVC's ``t > 10``), so a stop token that fires
#: immediately on a fresh model cannot end synthesis before it starts.
MIN_STOP_FRAME = 10

#: Per-step hook of :meth:`Tacotron.generate`:
#: ``(frame_index, mels (B, n_mels, r), attention (B, Tc), stop (B,))``.
StepCallback = Callable[[int, Tensor, Tensor, Tensor], None]


class TacotronOutput(NamedTuple):
    """What :meth:`Tacotron.forward` and :meth:`Tacotron.generate` return (unpacks as a 4-tuple)."""

    mels: Tensor  # (B, n_mels, T) decoder output
    postnet_mels: Tensor  # (B, n_mels, T) refined output (RTVC calls it "linear")
    attention: Tensor  # (B, T // r, Tc)
    stop: Tensor  # (B, T) stop probabilities, each decoder step's value repeated r times


class DecoderState(NamedTuple):

    attn_hidden: Tensor  # (B, decoder_dims)
    rnn1_hidden: Tensor  # (B, lstm_dims)
    rnn1_cell: Tensor  # (B, lstm_dims)
    rnn2_hidden: Tensor  # (B, lstm_dims)
    rnn2_cell: Tensor  # (B, lstm_dims)
    context: Tensor  # (B, encoder_dims + speaker_embedding_size)
    cumulative: Tensor  # (B, Tc) sum of all previous attention weights


# -- Building blocks -------------------------------------------------------------------------------


class HighwayNetwork(nn.Module):
    """``y = σ(W2 x) · relu(W1 x) + (1 − σ(W2 x)) · x``.

    >>> HighwayNetwork(8)(torch.rand(2, 5, 8)).shape
    torch.Size([2, 5, 8])
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.W1 = nn.Linear(size, size)
        self.W2 = nn.Linear(size, size)
        self.W1.bias.data.fill_(0.0)  # RTVC's initialisation

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.W2(x))  # (..., size)
        return gate * F.relu(self.W1(x)) + (1.0 - gate) * x


class BatchNormConv(nn.Module):
    """Conv1d (no bias, "same" padding), optional ReLU, then BatchNorm: ReLU first (RTVC quirk 12,
    docs/rtvc-quirks.md).

    >>> BatchNormConv(4, 6, kernel=3)(torch.rand(2, 4, 10)).shape
    torch.Size([2, 6, 10])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=1, padding=kernel // 2, bias=False)
        self.bnorm = nn.BatchNorm1d(out_channels)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)  # (B, out, T or T + 1 for even kernels)
        if self.relu:
            x = F.relu(x)
        return self.bnorm(x)


class CBHG(nn.Module):
    """Conv bank (kernels 1…K), highways and a bidirectional GRU; ``proj_channels[-1]`` must equal
    ``in_channels`` (the residual).

    >>> CBHG(3, 8, 16, (16, 8), 2)(torch.rand(2, 8, 7)).shape
    torch.Size([2, 7, 16])
    """

    def __init__(self, K: int, in_channels: int, channels: int, proj_channels: tuple[int, int],
                 num_highways: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"CBHG channels must be even (BiGRU halves), not {channels}")
        self.conv1d_bank = nn.ModuleList([BatchNormConv(in_channels, channels, k) for k in range(1, K + 1)])
        self.maxpool = nn.MaxPool1d(kernel_size=2, stride=1, padding=1)
        self.conv_project1 = BatchNormConv(K * channels, proj_channels[0], 3)
        self.conv_project2 = BatchNormConv(proj_channels[0], proj_channels[1], 3, relu=False)
        # Registered between the projections and the highways to keep RTVC's state_dict order.
        self.pre_highway = nn.Linear(proj_channels[1], channels, bias=False) if proj_channels[1] != channels else None
        self.highways = nn.ModuleList([HighwayNetwork(channels) for _ in range(num_highways)])
        self.rnn = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, T)`` → ``(B, T, channels)``."""
        residual = x  # (B, C_in, T)
        length = x.size(-1)
        # Even kernels produce one extra frame with padding k // 2: trim back to T.
        bank = torch.cat([conv(x)[:, :, :length] for conv in self.conv1d_bank], dim=1)  # (B, K*C, T)
        x = self.maxpool(bank)[:, :, :length]  # (B, K*C, T)
        x = self.conv_project1(x)  # (B, P0, T)
        x = self.conv_project2(x)  # (B, C_in, T)
        x = (x + residual).transpose(1, 2)  # (B, T, C_in)
        if self.pre_highway is not None:
            x = self.pre_highway(x)  # (B, T, C)
        for highway in self.highways:
            x = highway(x)
        if x.is_cuda:
            self.rnn.flatten_parameters()  # cuDNN wants contiguous weights after .to()/load
        x, _ = self.rnn(x)  # (B, T, C)
        return x


class PreNet(nn.Module):
    """Two ReLU layers whose dropout stays on in eval mode, (RTVC quirk 11, docs/rtvc-quirks.md).

    >>> PreNet(8, 16, 4, dropout=0.5)(torch.rand(2, 8)).shape
    torch.Size([2, 4])
    """

    def __init__(self, in_dims: int, fc1_dims: int, fc2_dims: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dims, fc1_dims)
        self.fc2 = nn.Linear(fc1_dims, fc2_dims)
        self.p = dropout

    def forward(self, x: Tensor) -> Tensor:
        # training=True on purpose: the pretrained model relies on this noise to produce varied,
        # natural prosody, and its outputs are only reproducible through torch's RNG seed.
        x = F.dropout(F.relu(self.fc1(x)), self.p, training=True)
        return F.dropout(F.relu(self.fc2(x)), self.p, training=True)


class TacotronEncoder(nn.Module):
    """Character ids -> ``(B, Tc, encoder_dims)``.

    >>> enc = TacotronEncoder(embed_dims=8, num_chars=66, encoder_dims=16, K=3, num_highways=1, dropout=0.0)
    >>> enc(torch.tensor([[5, 6, 1]])).shape
    torch.Size([1, 3, 16])
    """

    def __init__(self, embed_dims: int, num_chars: int, encoder_dims: int, K: int, num_highways: int,
                 dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embed_dims)
        self.pre_net = PreNet(embed_dims, encoder_dims, encoder_dims, dropout)
        self.cbhg = CBHG(K, encoder_dims, encoder_dims, (encoder_dims, encoder_dims), num_highways)

    def forward(self, texts: Tensor) -> Tensor:
        x = self.pre_net(self.embedding(texts))  # (B, Tc, E)
        return self.cbhg(x.transpose(1, 2))  # (B, Tc, E)


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose energies also see a convolution of the cumulative weights.

    >>> attn = LocationSensitiveAttention(16)
    >>> keys, query, cumulative = torch.rand(2, 7, 16), torch.rand(2, 16), torch.zeros(2, 7)
    >>> mask = torch.ones(2, 7, dtype=torch.bool)
    >>> torch.allclose(attn(keys, query, cumulative, mask, exact_rtvc=False).sum(dim=1), torch.ones(2))
    True
    """

    def __init__(self, attn_dims: int, kernel_size: int = 31, filters: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, filters, kernel_size=kernel_size, padding=(kernel_size - 1) // 2, bias=True)
        self.L = nn.Linear(filters, attn_dims, bias=False)
        self.W = nn.Linear(attn_dims, attn_dims, bias=True)
        self.v = nn.Linear(attn_dims, 1, bias=False)

    def forward(self, keys: Tensor, query: Tensor, cumulative: Tensor, mask: Tensor, exact_rtvc: bool) -> Tensor:
        """Attention weights ``(B, Tc)`` from ``keys (B, Tc, A)``, ``query (B, A)``, the cumulative
        weights and ``mask`` (True for real characters); ``exact_rtvc`` multiplies energies by the mask
        (RTVC quirk 13, docs/rtvc-quirks.md) instead of excluding pads."""
        processed_query = self.W(query).unsqueeze(1)  # (B, 1, A)
        location = self.L(self.conv(cumulative.unsqueeze(1)).transpose(1, 2))  # (B, Tc, A)
        energy = self.v(torch.tanh(processed_query + keys + location)).squeeze(-1)  # (B, Tc)
        if exact_rtvc:
            energy = energy * mask.to(energy.dtype)
        else:
            energy = energy.masked_fill(~mask, float("-inf"))
        return F.softmax(energy, dim=1)  # (B, Tc)


class Decoder(nn.Module):
    """One decoder step: pre-net, attention GRU, attention, two residual LSTMs, then r frames and stop."""

    def __init__(
        self,
        n_mels: int,
        encoder_dims: int,
        decoder_dims: int,
        lstm_dims: int,
        dropout: float,
        speaker_embedding_size: int,
        max_r: int = 20,
        zoneout: float = 0.1,
    ) -> None:
        super().__init__()
        self.register_buffer("r", torch.tensor(1, dtype=torch.int32))
        self.n_mels = n_mels
        self.max_r = max_r
        self.zoneout_p = zoneout
        memory_dims = encoder_dims + speaker_embedding_size
        prenet_dims = 2 * decoder_dims
        self.prenet = PreNet(n_mels, prenet_dims, prenet_dims, dropout)
        self.attn_net = LocationSensitiveAttention(decoder_dims)
        self.attn_rnn = nn.GRUCell(memory_dims + prenet_dims, decoder_dims)
        self.rnn_input = nn.Linear(memory_dims + decoder_dims, lstm_dims)
        self.res_rnn1 = nn.LSTMCell(lstm_dims, lstm_dims)
        self.res_rnn2 = nn.LSTMCell(lstm_dims, lstm_dims)
        self.mel_proj = nn.Linear(lstm_dims, n_mels * max_r, bias=False)
        self.stop_proj = nn.Linear(memory_dims + lstm_dims, 1)

    def _zoneout(self, previous: Tensor, current: Tensor) -> Tensor:
        # Keep each unit's previous value with probability p (hidden state only, training only).
        keep = torch.zeros_like(previous).bernoulli_(self.zoneout_p)
        return previous * keep + current * (1.0 - keep)

    def initial_state(self, batch_size: int, n_chars: int, memory_dims: int, like: Tensor) -> DecoderState:
        decoder_dims = self.attn_rnn.hidden_size
        lstm_dims = self.res_rnn1.hidden_size
        zeros = like.new_zeros
        return DecoderState(
            attn_hidden=zeros(batch_size, decoder_dims),
            rnn1_hidden=zeros(batch_size, lstm_dims),
            rnn1_cell=zeros(batch_size, lstm_dims),
            rnn2_hidden=zeros(batch_size, lstm_dims),
            rnn2_cell=zeros(batch_size, lstm_dims),
            context=zeros(batch_size, memory_dims),
            cumulative=zeros(batch_size, n_chars),
        )

    def forward(
        self,
        memory: Tensor,
        keys: Tensor,
        prenet_in: Tensor,
        state: DecoderState,
        mask: Tensor,
        exact_rtvc: bool,
        kernels: DecoderKernels | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, DecoderState]:
        """One step: ``(mels (B, n_mels, r), attention (B, Tc), stop (B, 1), new state)``.

        ``prenet_in`` is the previous step's last frame (zeros at first); ``kernels`` (packed copies of the
        large products, :class:`~synthesizer.packed.DecoderKernels`) replace the modules at inference."""
        if kernels is not None and self.training:
            raise RuntimeError("packed decoder kernels are for inference; they skip zoneout")
        batch_size = memory.size(0)
        prenet_out = self.prenet(prenet_in)  # (B, 2D)
        attn_rnn = self.attn_rnn if kernels is None else kernels.attn_rnn
        attn_hidden = attn_rnn(torch.cat([state.context, prenet_out], dim=-1), state.attn_hidden)  # (B, D)

        scores = self.attn_net(keys, attn_hidden, state.cumulative, mask, exact_rtvc)  # (B, Tc)
        context = torch.bmm(scores.unsqueeze(1), memory).squeeze(1)  # (B, M)

        rnn_input, res_rnn1, res_rnn2, mel_proj = (
            (self.rnn_input, self.res_rnn1, self.res_rnn2, self.mel_proj) if kernels is None
            else (kernels.rnn_input, kernels.rnn1, kernels.rnn2, kernels.mel_proj)
        )
        x = rnn_input(torch.cat([context, attn_hidden], dim=1))  # (B, L)
        rnn1_next, rnn1_cell = res_rnn1(x, (state.rnn1_hidden, state.rnn1_cell))
        rnn1_hidden = self._zoneout(state.rnn1_hidden, rnn1_next) if self.training else rnn1_next
        x = x + rnn1_hidden  # (B, L)
        rnn2_next, rnn2_cell = res_rnn2(x, (state.rnn2_hidden, state.rnn2_cell))
        rnn2_hidden = self._zoneout(state.rnn2_hidden, rnn2_next) if self.training else rnn2_next
        x = x + rnn2_hidden  # (B, L)

        # The projection is always max_r frames wide and mel-major (index = mel * max_r + frame).
        mels = mel_proj(x).view(batch_size, self.n_mels, self.max_r)[:, :, : int(self.r)]  # (B, n_mels, r)
        stop = torch.sigmoid(self.stop_proj(torch.cat([x, context], dim=1)))  # (B, 1)

        new_state = DecoderState(
            attn_hidden, rnn1_hidden, rnn1_cell, rnn2_hidden, rnn2_cell, context, state.cumulative + scores
        )
        return mels, scores, stop, new_state


# -- Tacotron --------------------------------------------------------------------------------------


def stop_lengths(stop: Tensor, r: int, min_frame: int = MIN_STOP_FRAME) -> tuple[Tensor, Tensor]:
    """``(lengths, reached)``: per item, the frames up to and including the first step whose stop
    probability exceeds 0.5 after ``min_frame`` (``T`` where it never fires), and whether it fired.

    ``stop`` is ``(B, T)`` with each step's value repeated ``r`` times.

    >>> stop = torch.tensor([[0.0] * 12 + [0.9] * 2 + [0.1] * 2, [0.0] * 16])
    >>> stop_lengths(stop, r=2)
    (tensor([14, 16]), tensor([ True, False]))
    """
    per_step = stop[:, ::r]  # (B, S)
    starts = torch.arange(per_step.size(1), device=stop.device) * r  # (S,)
    fired = (per_step > 0.5) & (starts > min_frame)  # (B, S)
    reached = fired.any(dim=1)  # (B,)
    first = fired.to(torch.int64).argmax(dim=1)  # (B,) index of the first True (0 when none)
    lengths = torch.where(reached, (first + 1) * r, torch.full_like(first, stop.size(1)))
    return lengths.clamp(max=stop.size(1)), reached


def text_lengths_from_ids(texts: Tensor, pad_id: int = 0) -> Tensor:
    """``(B,)`` lengths of zero-padded id rows: position of the last non-pad id plus one."""
    positions = torch.arange(1, texts.size(1) + 1, device=texts.device)  # (Tc,)
    return ((texts != pad_id).to(torch.int64) * positions).amax(dim=1)


class Tacotron(nn.Module):
    """RTVC's Tacotron with SV2TTS speaker conditioning (``fft_bins`` is ``num_mels``).

    ``pack_cpu_weights``: on a CPU :meth:`generate` uses packed copies of the decoder's products.

    >>> hp = SynthesizerHParams(tts_embed_dims=16, tts_encoder_dims=16, tts_decoder_dims=16,
    ...                         tts_postnet_dims=16, tts_lstm_dims=32, speaker_embedding_size=8)
    >>> model = Tacotron(hp)
    >>> model.r = 2
    >>> out = model(torch.tensor([[30, 31, 1]]), torch.rand(1, 80, 6), torch.rand(1, 8))
    >>> out.mels.shape, out.attention.shape, out.stop.shape
    (torch.Size([1, 80, 6]), torch.Size([1, 3, 3]), torch.Size([1, 6]))
    """

    pack_cpu_weights: bool = True

    def __init__(self, hparams: SynthesizerHParams, num_chars: int = len(SYMBOLS)) -> None:
        super().__init__()
        self.hparams = hparams
        self._packed: tuple[tuple[tuple[int, int], ...], DecoderKernels] | None = None  # see _decoder_kernels
        self.n_mels = hparams.num_mels
        self.encoder_dims = hparams.tts_encoder_dims
        self.speaker_embedding_size = hparams.speaker_embedding_size
        self.memory_dims = hparams.tts_encoder_dims + hparams.speaker_embedding_size
        # Frames past an item's end (per-item batching) are filled with the mel floor.
        self.silence_value = -hparams.max_abs_value if hparams.symmetric_mels else 0.0

        self.encoder = TacotronEncoder(
            hparams.tts_embed_dims, num_chars, hparams.tts_encoder_dims, hparams.tts_encoder_K,
            hparams.tts_num_highways, hparams.tts_dropout,
        )
        self.encoder_proj = nn.Linear(self.memory_dims, hparams.tts_decoder_dims, bias=False)
        self.decoder = Decoder(
            hparams.num_mels, hparams.tts_encoder_dims, hparams.tts_decoder_dims, hparams.tts_lstm_dims,
            hparams.tts_dropout, hparams.speaker_embedding_size, max_r=hparams.max_r,
        )
        self.postnet = CBHG(
            hparams.tts_postnet_K, hparams.num_mels, hparams.tts_postnet_dims,
            (hparams.tts_postnet_dims, hparams.num_mels), hparams.tts_num_highways,
        )
        self.post_proj = nn.Linear(hparams.tts_postnet_dims, hparams.num_mels, bias=False)
        self._init_weights()
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))
        self.register_buffer("stop_threshold", torch.tensor(hparams.tts_stop_threshold, dtype=torch.float32))

    def _init_weights(self) -> None:
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    @property
    def r(self) -> int:
        """Mel frames per decoder step, stored in the ``decoder.r`` buffer."""
        return int(self.decoder.r.item())

    @r.setter
    def r(self, value: int) -> None:
        if not 1 <= int(value) <= self.decoder.max_r:
            raise ValueError(f"r must be between 1 and {self.decoder.max_r}, not {value}")
        with torch.no_grad():
            self.decoder.r.fill_(int(value))

    def num_params(self) -> int:
        """Trainable parameters (30,870,177 at RTVC's sizes)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _memory(self, texts: Tensor, speaker_embeddings: Tensor) -> Tensor:
        """Encode ``(B, Tc)`` ids and append the speaker embedding: ``(B, Tc, E + S)``."""
        encoded = self.encoder(texts)  # (B, Tc, E)
        speaker = speaker_embeddings.unsqueeze(1).expand(-1, texts.size(1), -1)  # (B, Tc, S)
        return torch.cat([encoded, speaker.to(encoded.dtype)], dim=2)

    def _memory_per_item(self, texts: Tensor, lengths: Tensor, speaker_embeddings: Tensor) -> Tensor:
        """Like :meth:`_memory` but each text encoded alone, so pads never reach the CBHG/BiGRU."""
        memory = texts.new_zeros((texts.size(0), texts.size(1), self.memory_dims), dtype=speaker_embeddings.dtype)
        for index, length in enumerate(lengths.tolist()):
            one_text, one_speaker = texts[index : index + 1, :length], speaker_embeddings[index : index + 1]
            memory[index, :length] = self._memory(one_text, one_speaker)[0]
        return memory  # (B, Tc, E + S), zeros at pads

    def _postnet(self, mels: Tensor) -> Tensor:
        return self.post_proj(self.postnet(mels)).transpose(1, 2)

    def _check_inputs(self, texts: Tensor, speaker_embeddings: Tensor) -> None:
        if texts.dim() != 2:
            raise ValueError(f"texts must be (batch, chars) ids, got shape {tuple(texts.shape)}")
        expected = (texts.size(0), self.speaker_embedding_size)
        if tuple(speaker_embeddings.shape) != expected:
            raise ValueError(f"speaker_embeddings must have shape {expected}, got {tuple(speaker_embeddings.shape)}")

    def forward(self, texts: Tensor, mels: Tensor, speaker_embeddings: Tensor,
                exact_rtvc: bool = True, feed_predictions: float = 0.0) -> TacotronOutput:
        """Teacher-forced pass (training, GTA synthesis): the decoder sees target frame ``t − 1`` at step ``t``.

        ``exact_rtvc`` (default) keeps RTVC's attention mask; ``feed_predictions`` is the per-step probability
        of feeding back the model's own last frame (scheduled sampling, docs/synthesizer.md). Mels and stop
        cover ``ceil(Tm / r) · r`` frames."""
        self._check_inputs(texts, speaker_embeddings)
        if self.training:
            with torch.no_grad():
                self.step += 1
        batch_size, _, n_frames = mels.shape
        r = self.r
        memory = self._memory(texts, speaker_embeddings)  # (B, Tc, M)
        keys = self.encoder_proj(memory)  # (B, Tc, A)
        mask = texts != 0  # (B, Tc)
        state = self.decoder.initial_state(batch_size, texts.size(1), self.memory_dims, memory)
        go_frame = memory.new_zeros(batch_size, self.n_mels)

        mel_steps, attention_steps, stop_steps = [], [], []
        previous = go_frame
        for t in range(0, n_frames, r):
            prenet_in = mels[:, :, t - 1] if t > 0 else go_frame  # (B, n_mels)
            if t > 0 and feed_predictions > 0 and float(torch.rand(())) < feed_predictions:
                prenet_in = previous
            frames, scores, stop, state = self.decoder(memory, keys, prenet_in, state, mask, exact_rtvc=exact_rtvc)
            previous = frames[:, :, -1].detach()  # (B, n_mels) the step's last predicted frame
            mel_steps.append(frames)
            attention_steps.append(scores)
            stop_steps.append(stop.expand(-1, r))

        decoder_mels = torch.cat(mel_steps, dim=2)  # (B, n_mels, T)
        return TacotronOutput(
            decoder_mels,
            self._postnet(decoder_mels),
            torch.stack(attention_steps, dim=1),  # (B, T // r, Tc)
            torch.cat(stop_steps, dim=1),  # (B, T)
        )

    def generate(
        self,
        texts: Tensor,
        speaker_embeddings: Tensor,
        max_steps: int | None = None,
        *,
        exact_rtvc_batching: bool = False,
        text_lengths: Tensor | None = None,
        step_callback: StepCallback | None = None,
    ) -> TacotronOutput:
        """Synthesize mels autoregressively; the previous train/eval mode is restored afterwards.

        Pre-net dropout stays on, so seed torch for repeatable results. ``max_steps`` defaults to
        ``hparams.max_decoder_steps``; ``exact_rtvc_batching`` reproduces RTVC's cross-talk between the texts of
        a batch (docs/synthesizer.md); ``step_callback(frame_index, mels, attention, stop)`` runs after each step
        and may raise to abort. ``T`` is a multiple of ``r``."""
        self._check_inputs(texts, speaker_embeddings)
        max_steps = self.hparams.max_decoder_steps if max_steps is None else int(max_steps)
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, not {max_steps}")
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self._generate(texts, speaker_embeddings, max_steps, exact_rtvc_batching, text_lengths,
                                      step_callback)
        finally:
            self.train(was_training)

    def _decoder_kernels(self) -> DecoderKernels:
        version = DecoderKernels.source_version(self.decoder)
        if self._packed is None or self._packed[0] != version:
            self._packed = (version, DecoderKernels.build(self.decoder))
        return self._packed[1]

    def _generate(
        self,
        texts: Tensor,
        speaker_embeddings: Tensor,
        max_steps: int,
        exact_rtvc: bool,
        text_lengths: Tensor | None,
        step_callback: StepCallback | None,
    ) -> TacotronOutput:
        batch_size, n_chars = texts.shape
        r = self.r
        speaker_embeddings = speaker_embeddings.to(self.encoder_proj.weight.dtype)
        if exact_rtvc:
            memory = self._memory(texts, speaker_embeddings)  # (B, Tc, M)
            mask = texts != 0  # (B, Tc)
        else:
            lengths = text_lengths_from_ids(texts) if text_lengths is None else text_lengths.to(texts.device)
            if int(lengths.min()) < 1 or int(lengths.max()) > n_chars:
                raise ValueError(f"text lengths must be between 1 and {n_chars}, got {lengths.tolist()}")
            memory = self._memory_per_item(texts, lengths, speaker_embeddings)  # (B, Tc, M)
            mask = torch.arange(n_chars, device=texts.device).unsqueeze(0) < lengths.unsqueeze(1)  # (B, Tc)
        keys = self.encoder_proj(memory)  # (B, Tc, A)
        state = self.decoder.initial_state(batch_size, n_chars, self.memory_dims, memory)
        prenet_in = memory.new_zeros(batch_size, self.n_mels)  # GO frame
        finished = torch.zeros(batch_size, dtype=torch.bool, device=memory.device)

        kernels = self._decoder_kernels() if memory.device.type == "cpu" and self.pack_cpu_weights else None
        mel_steps, attention_steps, stop_steps = [], [], []
        for t in range(0, max_steps, r):
            frames, scores, stop, state = self.decoder(memory, keys, prenet_in, state, mask, exact_rtvc, kernels)
            mel_steps.append(frames)
            attention_steps.append(scores)
            stop_steps.append(stop.expand(-1, r))
            prenet_in = frames[:, :, -1]  # (B, n_mels)
            if step_callback is not None:
                step_callback(t, frames, scores, stop[:, 0])
            fired = stop[:, 0] > 0.5  # (B,)
            if t > MIN_STOP_FRAME:
                finished |= fired
                # RTVC needs every item's token above 0.5 at the same step; alone, an item would
                # have stopped at its own first firing.
                if bool(fired.all()) if exact_rtvc else bool(finished.all()):
                    break

        decoder_mels = torch.cat(mel_steps, dim=2)  # (B, n_mels, T)
        attention = torch.stack(attention_steps, dim=1)  # (B, T // r, Tc)
        stop_probs = torch.cat(stop_steps, dim=1)  # (B, T)
        if exact_rtvc:
            return TacotronOutput(decoder_mels, self._postnet(decoder_mels), attention, stop_probs)

        n_frames = decoder_mels.size(2)
        frame_lengths, _ = stop_lengths(stop_probs, r)
        if bool((frame_lengths == n_frames).all()):
            return TacotronOutput(decoder_mels, self._postnet(decoder_mels), attention, stop_probs)
        # The post-net's convolutions and BiGRU would otherwise see frames decoded after the item
        # was done: run it on each item's own frames.
        decoder_mels = decoder_mels.clone()
        postnet_mels = torch.full_like(decoder_mels, self.silence_value)
        for index, length in enumerate(frame_lengths.tolist()):
            decoder_mels[index, :, length:] = self.silence_value
            postnet_mels[index, :, :length] = self._postnet(decoder_mels[index : index + 1, :, :length])[0]
        return TacotronOutput(decoder_mels, postnet_mels, attention, stop_probs)


def build_tacotron(hparams: SynthesizerHParams | None = None, num_chars: int = len(SYMBOLS)) -> Tacotron:
    """An untrained Tacotron (Xavier-initialised, ``r = 1``).

    >>> build_tacotron().num_params()
    30870177
    """
    return Tacotron(hparams or SynthesizerHParams(), num_chars=num_chars)
