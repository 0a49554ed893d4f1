"""The shipped model's held-out validation set: synthetic weather over photos never trained on.

``china`` (the one outdoor landscape among the shipped photos) is reserved for validation:
training configs take their clean photos from :func:`training_photo_sources`, which excludes
it, so ``weather-restore eval --holdout`` measures generalisation to an unseen scene.
"""
from __future__ import annotations

from pathlib import Path

from .. import DEFAULT_WEATHER_CLASSES

HOLDOUT_SAMPLES = ('china',)
HOLDOUT_SIZE = 60        # 12 per class on average
HOLDOUT_CROP = (256, 320)


def holdout_dataset(class_names=DEFAULT_WEATHER_CLASSES, seed: int = 1234,
                    length: int = HOLDOUT_SIZE, structures: float = 0.0, weathers=None,
                    severity_range=None):
    """The held-out photo under every weather class; ``structures``: share of frames with
    thin structures (wires, poles, a facade) drawn into the scene, the frames on which a
    derainer is most tempted to remove what is not rain; ``weathers``: only these weathers
    (names or styles as ``synth.synthesize`` takes them, e.g. ``rain:light``) instead of every
    class: the full set has about a dozen frames per class, too few to find where light rain
    over fine texture comes out below its input; ``severity_range``: ``(lo, hi)`` in [0, 1]
    instead of ``synth``'s default 0.3-1.0."""
    from .synthetic import SyntheticWeatherDataset
    from ..synth.samples import sample_images
    photos = [img for _, img in sample_images(HOLDOUT_SAMPLES)]
    return SyntheticWeatherDataset(photos, crop_size=HOLDOUT_CROP, length=length, seed=seed,
                                   classes=tuple(weathers or class_names),
                                   class_names=class_names,
                                   flip=False, structures=structures,
                                   severity_range=severity_range)


def training_photo_sources(entries) -> list:
    """Clean photos for training, decoded (RGB uint8): folders, files, and ``samples`` (the
    shipped photos except the held-out ones)."""
    from .common import list_images, read_rgb
    from ..synth.samples import SAMPLE_FILES, sample_images
    if isinstance(entries, (str, Path)):
        entries = [entries]
    out: list = []
    for entry in entries:
        if entry == 'samples':
            names = [n for n in SAMPLE_FILES if n not in HOLDOUT_SAMPLES]
            out += [img for _, img in sample_images(names)]
            continue
        path = Path(entry).expanduser()
        if path.is_dir():
            files = [path / rel for rel in list_images(path, recursive=True)]
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f'clean photo source not found: {path} (for the shipped '
                                    'model run tools/fetch_training_photos.py first)')
        # Decoded once here: re-reading PNGs for every crop starves the training loop.
        out += [read_rgb(f) for f in files]
    if not out:
        raise ValueError('no clean training photos')
    return out
