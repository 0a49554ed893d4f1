"""Network hyper-parameters: one JSON-serialisable dataclass, stored next to every checkpoint.

The JSON round trip is exact: ``ModelConfig.from_json(cfg.to_json()) == cfg`` (tuples are written
as JSON lists and turned back into tuples). Unknown keys are an error rather than silently
ignored, so a checkpoint written by a newer version never loads into a network that lacks the
feature it describes.

Presets (``CONFIGS``):

``tiny``
    unit tests only: ~30 k parameters, a few ms at 64x64, 32-d CLIP embedding (the tiny test CLIP).
``small``
    the robot's CPU / embedded-GPU network: 4 scales at 1/2..1/16 resolution (pixel-unshuffle
    stem), widths 16-128, ~0.7 M parameters, ~3 GFLOPs per 640x480 frame, < 100 ms on 2 CPU
    cores. Measured numbers are in ``docs/DESIGN.md``
    (``python -m weather_restore_ros.model.profile``).
``base``
    paper-scale GPU network: 5 scales, full-resolution first scale, widths 24-384, ~7 M
    parameters, ~46 GFLOPs at 640x480 (TransWeather: 59.5).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# Same as weather_restore_ros.DEFAULT_WEATHER_CLASSES (kept here: model/ imports only torch).
DEFAULT_WEATHER_CLASSES = ('clear', 'rain', 'snow', 'fog', 'raindrop')

UPSAMPLE_MODES = ('shuffle', 'bilinear')
_TUPLE_FIELDS = ('widths', 'enc_blocks', 'dec_blocks', 'cwp_scales', 'class_names')


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of :class:`~weather_restore_ros.model.restorer.WeatherRestorer`.

    Scales are numbered finest first: scale 0 runs at ``1/stem_factor`` of the input resolution,
    scale ``i`` at ``1/(stem_factor * 2**i)``; the last scale is the bottleneck.

    Ablation switches (the paper's ablations, Table V-style):

    * ``use_sar_gating`` -- False: the SAR residual branch is added everywhere (gate fixed to 1,
      no gate head is built, the returned gates/mask are all ones).
    * ``use_clip_prior`` -- False: the CWP attends to the ``num_learned_tokens`` learned
      (distribution-specific) tokens only, and the weather classifier sees image features only;
      the network then never reads the CLIP embedding (``forward`` accepts ``None``).
    * ``use_cwp`` -- False: no cross-attention at all (plain SAR U-Net).
    * ``use_srd`` -- training-time flag for the CLIP soft residual distillation; the projection
      head (``srd_student``) is built only when ``use_srd`` and ``srd_dim > 0``.
    """

    name: str = 'custom'
    in_channels: int = 3
    # Encoder/decoder layout, finest scale first.
    widths: tuple = (16, 32, 64, 128)
    enc_blocks: tuple = (0, 1, 2, 4)          # blocks per scale (the last entry is the bottleneck)
    dec_blocks: tuple = (0, 1, 2)             # blocks per decoder scale (len(widths) - 1)
    stem_factor: int = 2                      # 1: full-res first scale; 2: pixel-unshuffle stem
    expansion: int = 2                        # inverted-bottleneck expansion of the conv blocks
    dw_kernel: int = 5                        # depthwise kernel of the conv blocks and SAR units
    gate_hidden: int = 8                      # channels of the SAR gate head
    # Global context in every conv block (NAFNet SCA, see blocks.ChannelAttention). Off by
    # default so that checkpoints written before it existed load unchanged; on in the presets.
    channel_attention: bool = False
    # A mask head on the last decoder features (which see the whole U-Net's context, unlike
    # the finest SAR gate, whose receptive field is a few pixels) predicts where the weather is;
    # the output residual is multiplied by it and it is the published degradation mask. Off by
    # default (checkpoints written before it existed); trained by the gate loss (``loss.gate``).
    mask_head: bool = False
    # A channel LayerNorm in front of every conv block and SAR unit (NAFNet's layout). The
    # blocks' SimpleGate multiplies two activations, so without a norm a block can square its
    # input's scale: fine-tunes of the small model ran away to NaN on flat colours that no
    # validation photo contains (``weather_restore_ros.training.stress``). Off by default: checkpoints
    # written before it existed load unchanged; on in train_configs/allweather_base.yaml.
    block_norm: bool = False
    # How the decoder doubles resolution. 'shuffle': 1x1 conv to 4x the channels + pixel shuffle,
    # each output pixel of a 2x2 cell from its own weights; four such steps (plus the stem) tile
    # smooth regions into a visible 16 px grid where the network changes an image a lot (flat
    # fog dehazed). 'bilinear': 1x1 conv, then bilinear x2 (the same FLOPs / 4, no cell edges).
    # Default 'shuffle': checkpoints written before the field existed load unchanged.
    upsample: str = 'shuffle'
    # A per-pixel gain on the input's detail (``restorer.DetailGain``): in fog the scene's
    # contrast is ``t`` of what it was, and bringing it back means multiplying the detail by
    # ``1/t``; a purely additive residual has to repaint that detail from half-resolution
    # features and, in dense fog, paints a smooth dark estimate instead (real foggy photos:
    # trunks, a car, a pedestrian smoothed away). Off by default: checkpoints load unchanged.
    detail_gain: bool = False
    # Bound on SimpleGate's two factors (``clamp(-b, b)`` each, so a gate output is at most
    # ``b**2``); 0 = unbounded. Trained weights mostly keep the factors below ~100 on photos
    # (a few photos drove one model's to ~4e3); on an unlucky flat colour a fine-tune's factors
    # grew block after block to 1e34 and overflowed.
    # The bound caps that growth (and keeps fp16, max 65504, from overflowing) without touching
    # ordinary frames; training on pattern scenes (``data.train.patterns``) then teaches the
    # network to pass such frames through. Off by default: checkpoints load unchanged.
    gate_bound: float = 0.0
    # CLIP-weather prior (CWP).
    clip_dim: int = 512                       # CLIP image-embedding size (512 = ViT-B-32)
    num_prior_tokens: int = 8                 # K sample-specific tokens from the CLIP embedding
    num_learned_tokens: int = 8               # M distribution-specific learned tokens
    token_dim: int = 64
    prior_hidden: int = 128                   # hidden width of the embedding -> tokens MLP
    attn_heads: int = 2
    cwp_scales: tuple = (3, 2)                # scales with cross-attention (bottleneck + decoder)
    # Weather classifier head.
    num_classes: int = 5
    class_names: tuple = DEFAULT_WEATHER_CLASSES
    cls_hidden: int = 64
    # CLIP soft residual distillation (training only).
    srd_dim: int = 768                        # CLIP patch-token width (ViT-B-32: 768); 0 = no head
    # Ablations.
    use_sar_gating: bool = True
    use_clip_prior: bool = True
    use_cwp: bool = True
    use_srd: bool = True

    def __post_init__(self):
        # Accept lists (JSON, YAML, CLI) but store tuples: hashable, exact round trip.
        for f in _TUPLE_FIELDS:
            object.__setattr__(self, f, tuple(getattr(self, f)))
        self.validate()

    # ------------------------------------------------------------------ derived values
    @property
    def num_scales(self) -> int:
        return len(self.widths)

    @property
    def stride(self) -> int:
        """Input sides are padded to a multiple of this inside ``forward``."""
        return self.stem_factor * 2 ** (self.num_scales - 1)

    @property
    def needs_clip(self) -> bool:
        """Whether ``forward`` reads the CLIP embedding (image path or classifier)."""
        return self.use_clip_prior

    @property
    def has_srd_head(self) -> bool:
        return self.use_srd and self.srd_dim > 0

    @property
    def num_tokens(self) -> int:
        return self.num_learned_tokens + (self.num_prior_tokens if self.use_clip_prior else 0)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        def bad(msg):
            raise ValueError(f'ModelConfig {self.name!r}: {msg}')

        n = len(self.widths)
        if n < 2:
            bad('need at least 2 scales')
        if any(int(w) != w or w < 1 for w in self.widths):
            bad(f'widths must be positive ints, got {self.widths}')
        if len(self.enc_blocks) != n:
            bad(f'enc_blocks needs {n} entries (one per scale), got {self.enc_blocks}')
        if len(self.dec_blocks) != n - 1:
            bad(f'dec_blocks needs {n - 1} entries (one per decoder scale), got {self.dec_blocks}')
        if any(b < 0 for b in self.enc_blocks + self.dec_blocks):
            bad('block counts must be >= 0')
        if self.in_channels < 1:
            bad('in_channels must be >= 1')
        if self.stem_factor not in (1, 2, 4):
            bad(f'stem_factor must be 1, 2 or 4, got {self.stem_factor}')
        if self.expansion < 1 or self.dw_kernel < 1 or self.dw_kernel % 2 == 0:
            bad('expansion must be >= 1 and dw_kernel odd')
        if self.gate_hidden < 1:
            bad('gate_hidden must be >= 1')
        if self.upsample not in UPSAMPLE_MODES:
            bad(f'upsample must be one of {UPSAMPLE_MODES}, got {self.upsample!r}')
        if not self.gate_bound >= 0:
            bad(f'gate_bound must be >= 0 (0 = unbounded), got {self.gate_bound}')
        if self.num_classes < 1 or len(self.class_names) != self.num_classes:
            bad(f'num_classes={self.num_classes} does not match class_names={self.class_names}')
        if self.srd_dim < 0:
            bad('srd_dim must be >= 0')
        if self.use_cwp:
            if self.clip_dim < 1 or self.token_dim < 1 or self.prior_hidden < 1:
                bad('clip_dim, token_dim and prior_hidden must be >= 1')
            if self.num_prior_tokens < 0 or self.num_learned_tokens < 0:
                bad('token counts must be >= 0')
            if self.num_tokens < 1:
                bad('the CWP has no tokens to attend to '
                    '(num_learned_tokens=0 and no CLIP prior tokens)')
            if not self.cwp_scales:
                bad('use_cwp=True needs at least one scale in cwp_scales')
            for s in self.cwp_scales:
                if not 0 <= s < n:
                    bad(f'cwp_scales entry {s} is not a scale index in [0, {n})')
                if self.widths[s] % self.attn_heads:
                    bad(f'width {self.widths[s]} at cwp scale {s} is not divisible by '
                        f'attn_heads={self.attn_heads}')
            if len(set(self.cwp_scales)) != len(self.cwp_scales):
                bad('cwp_scales has duplicates')
        elif self.use_clip_prior and self.clip_dim < 1:
            bad('clip_dim must be >= 1')

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for f in _TUPLE_FIELDS:
            d[f] = list(d[f])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> 'ModelConfig':
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f'unknown ModelConfig key(s) {unknown}; valid keys: {sorted(known)}')
        return cls(**d)

    def to_json(self, **kw) -> str:
        kw.setdefault('indent', 2)
        return json.dumps(self.to_dict(), **kw)

    @classmethod
    def from_json(cls, s: str) -> 'ModelConfig':
        d = json.loads(s)
        if not isinstance(d, dict):
            raise ValueError('ModelConfig JSON must be an object')
        return cls.from_dict(d)

    def replace(self, **overrides: Any) -> 'ModelConfig':
        return self.from_dict({**self.to_dict(), **overrides})


CONFIGS: dict[str, ModelConfig] = {
    'tiny': ModelConfig(
        name='tiny', widths=(8, 16, 24), enc_blocks=(1, 1, 1), dec_blocks=(1, 1), stem_factor=1,
        expansion=2, dw_kernel=3, gate_hidden=4, channel_attention=True, clip_dim=32,
        num_prior_tokens=2, num_learned_tokens=2, token_dim=16, prior_hidden=32, attn_heads=2,
        cwp_scales=(2, 1), cls_hidden=16, srd_dim=32),
    # CPU budget: the half-resolution scale 0 has no plain blocks (stem conv + SAR unit + head),
    # the blocks sit at 1/4..1/16 where they are cheap; 5x5 depthwise kernels double the
    # receptive field for ~5 % more time (bottleneck RF > 300 px: long rain streaks, large drops).
    'small': ModelConfig(
        name='small', widths=(16, 32, 64, 128), enc_blocks=(0, 1, 2, 4), dec_blocks=(0, 1, 2),
        stem_factor=2, expansion=2, dw_kernel=5, gate_hidden=8, channel_attention=True,
        clip_dim=512, num_prior_tokens=8, num_learned_tokens=8, token_dim=64, prior_hidden=128,
        attn_heads=2, cwp_scales=(3, 2), cls_hidden=64, srd_dim=768),
    # GPU: full-resolution first scale, 5 scales (stride 16), CWP at the three coarsest scales.
    'base': ModelConfig(
        name='base', widths=(24, 48, 96, 192, 384), enc_blocks=(1, 2, 3, 4, 8),
        dec_blocks=(1, 2, 2, 3), stem_factor=1, expansion=2, dw_kernel=5, gate_hidden=16,
        channel_attention=True, clip_dim=512, num_prior_tokens=16, num_learned_tokens=16,
        token_dim=128, prior_hidden=256, attn_heads=4, cwp_scales=(4, 3, 2), cls_hidden=128,
        srd_dim=768),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """A preset by name, with field overrides (validated; unknown fields raise ``ValueError``)."""
    try:
        cfg = CONFIGS[name]
    except KeyError:
        raise ValueError(f'unknown model config {name!r}; choose from {sorted(CONFIGS)}') from None
    return cfg.replace(**overrides) if overrides else cfg
