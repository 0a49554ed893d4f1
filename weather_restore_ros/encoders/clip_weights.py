"""Where open_clip weights are on this machine, and why they are missing when they are.

Loading never hangs on a missing network: a pretrained tag's weights are looked up in the local
cache first and, when they are absent and downloading is not allowed (``HF_HUB_OFFLINE`` set,
or ``allow_download=False``), :class:`MissingWeightsError` says at once what was looked for,
where, and how to provide it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

_WEIGHT_SUFFIXES = ('.safetensors', '.bin', '.pth', '.pt', '.npz', '.ckpt')
_PREFERRED_DIR_WEIGHTS = (
    'open_clip_model.safetensors', 'open_clip_pytorch_model.safetensors',
    'open_clip_pytorch_model.bin', 'open_clip_pytorch_model.pth',
    'model.safetensors', 'pytorch_model.bin', 'pytorch_model.pth', 'model.pth',
)


class MissingWeightsError(RuntimeError):
    """CLIP weights are not available locally (and may not or could not be downloaded)."""


def hf_hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set now, or was when huggingface_hub was imported (its
    downloader then refuses the network anyway)."""
    if os.environ.get('HF_HUB_OFFLINE', '').strip().upper() in ('1', 'ON', 'YES', 'TRUE'):
        return True
    import sys
    hub_constants = sys.modules.get('huggingface_hub.constants')
    return bool(getattr(hub_constants, 'HF_HUB_OFFLINE', False))


def _find_weights_in_dir(path: Path) -> Path | None:
    files = [p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES]
    for name in _PREFERRED_DIR_WEIGHTS:
        for p in files:
            if p.name == name:
                return p
    files.sort(key=lambda p: (p.suffix != '.safetensors', p.name))
    return files[0] if files else None


_HOW_TO_PROVIDE = (
    'To provide the weights offline: copy the weights file to this machine and pass its path '
    "as pretrained='/path/to/open_clip_pytorch_model.bin' (or .safetensors); or use "
    "model_name='local-dir:/path/to/folder' with a folder holding open_clip_config.json and "
    'the weights file; or copy the Hugging Face cache folder (models--<org>--<name>) from a '
    'machine that downloaded it into the cache directory above; or allow the download '
    '(network access, HF_HUB_OFFLINE unset).')


def _hf_cache_root() -> str:
    try:
        from huggingface_hub import constants
        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover
        return '~/.cache/huggingface/hub'


def _hf_cached(repo_id: str, filename: str, cache_dir) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return None
    found = try_to_load_from_cache(repo_id, filename,
                                   cache_dir=str(cache_dir) if cache_dir else None)
    return found if isinstance(found, str) and os.path.isfile(found) else None


def _hf_repo_and_files(hf_hub: str) -> tuple[str, list[str]]:
    """open_clip's ``'org/repo/'`` or ``'org/repo/file.bin'`` -> repo id and candidate files
    (safetensors alternatives first, as open_clip's downloader prefers them)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    files = []
    if filename == HF_WEIGHTS_NAME:
        files.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith(('.bin', '.pth')):
        files.append(filename[:-4] + '.safetensors')
    files.append(filename)
    return repo, files


def _resolve_weights(model_name: str, pretrained: str | None, cache_dir,
                     allow_download: bool) -> tuple[str | None, dict]:
    """The local weights file for ``model_name``/``pretrained`` (a tag or a path), and the
    ``create_model`` overrides the tag implies (QuickGELU, preprocessing). Downloads only when
    allowed; otherwise a missing file raises :class:`MissingWeightsError` without any network
    access."""
    import open_clip

    if pretrained is None:
        return None, {}
    tag_cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not tag_cfg:
        weights = Path(pretrained).expanduser()
        if weights.is_file():
            return str(weights), {}
        if os.sep in pretrained or pretrained.startswith('.') or weights.suffix in _WEIGHT_SUFFIXES:
            what = f'CLIP weights file {weights} does not exist'
        else:
            tags = ', '.join(open_clip.list_pretrained_tags_by_model(model_name)) or 'none'
            what = (f'{pretrained!r} is neither a pretrained tag of {model_name!r} (tags: {tags}) '
                    'nor an existing file')
        raise MissingWeightsError(f'CLIP {model_name!r}: {what}. ' + _HOW_TO_PROVIDE)

    kwargs = {
        'force_quick_gelu': bool(tag_cfg.get('quick_gelu', False)),
        'force_preprocess_cfg': {k: tag_cfg[k] for k in ('mean', 'std', 'interpolation',
                                                         'resize_mode', 'fill_color')
                                 if k in tag_cfg},
    }
    checkpoint = _cached_tag_weights(tag_cfg, cache_dir)
    if checkpoint is not None:
        return checkpoint, kwargs
    if not allow_download:
        raise MissingWeightsError(
            f'CLIP weights for model {model_name!r}, pretrained tag {pretrained!r} are not cached '
            f'and downloading is disabled (HF_HUB_OFFLINE='
            f'{os.environ.get("HF_HUB_OFFLINE", "")!r}, allow_download=False). Looked for '
            f'{_tag_locations(tag_cfg, cache_dir)}. ' + _HOW_TO_PROVIDE)
    return _download_tag(tag_cfg, cache_dir, model_name, pretrained), kwargs


def _cached_tag_weights(tag_cfg: Mapping, cache_dir) -> str | None:
    """The local path of a pretrained tag's weights, without touching the network."""
    if tag_cfg.get('file'):
        return tag_cfg['file'] if os.path.isfile(tag_cfg['file']) else None
    if tag_cfg.get('hf_hub'):
        repo, files = _hf_repo_and_files(tag_cfg['hf_hub'])
        for f in files:
            found = _hf_cached(repo, f, cache_dir)
            if found:
                return found
    if tag_cfg.get('url'):
        root = Path(cache_dir).expanduser() if cache_dir else Path('~/.cache/clip').expanduser()
        path = root / os.path.basename(tag_cfg['url'])
        if path.is_file():
            return str(path)
    return None


def _tag_locations(tag_cfg: Mapping, cache_dir) -> str:
    """Where the weights of a tag were looked for, in words, for error messages."""
    places = []
    if tag_cfg.get('file'):
        places.append(f"the file {tag_cfg['file']}")
    if tag_cfg.get('hf_hub'):
        repo, files = _hf_repo_and_files(tag_cfg['hf_hub'])
        places.append(f'{" or ".join(files)} of Hugging Face repo {repo} in the Hugging Face '
                      f'cache {cache_dir or _hf_cache_root()}')
    if tag_cfg.get('url'):
        root = Path(cache_dir).expanduser() if cache_dir else Path('~/.cache/clip').expanduser()
        places.append(f"{os.path.basename(tag_cfg['url'])} in {root}")
    return '; '.join(places) or '(no source configured)'


def _download_tag(tag_cfg: Mapping, cache_dir, model_name: str, tag: str) -> str:
    from open_clip.pretrained import download_pretrained

    try:
        path = download_pretrained(dict(tag_cfg), cache_dir=str(cache_dir) if cache_dir else None)
    except Exception as exc:
        raise MissingWeightsError(
            f'CLIP weights for model {model_name!r}, pretrained tag {tag!r} could not be '
            f'downloaded ({type(exc).__name__}: {exc}). Looked for '
            f'{_tag_locations(tag_cfg, cache_dir)}. '
            + _HOW_TO_PROVIDE) from exc
    if not path:
        raise MissingWeightsError(f'CLIP tag {tag!r} of {model_name!r} names no weights source')
    return path


def clip_weights_status(model_name: str, pretrained: str | None, cache_dir=None) -> str:
    """One line for ``weather-restore info``: where the weights are, or why they are missing."""
    if model_name.startswith('local-dir:'):
        folder = Path(model_name[len('local-dir:'):]).expanduser()
        found = _find_weights_in_dir(folder) if folder.is_dir() else None
        return f'present ({found})' if found else f'missing (no weights in {folder})'
    try:
        path, _ = _resolve_weights(model_name, pretrained, cache_dir, allow_download=False)
    except MissingWeightsError as exc:
        return f'missing: {exc}'
    except Exception as exc:  # unknown model name, broken open_clip install
        return f'unknown ({exc})'
    return 'random weights (no pretrained tag)' if path is None else f'present ({path})'
