#!/usr/bin/env python3
"""Fetch the clean photos the shipped model is trained on (licences: see the model card).

They come from the scikit-image wheel on PyPI (downloaded, unpacked here, never installed):
public-domain / CC0 photos documented in ``skimage.data``. The held-out validation photo
(``china``, shipped in weather_restore_ros/assets) is not among them.

    python tools/fetch_training_photos.py .build/photos
"""
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = 'scikit-image==0.26.0'
PHOTOS = {  # file in skimage/data -> licence (skimage.data docstrings)
    'astronaut.png': 'public domain (NASA)',
    'coffee.png': 'CC0 (Rachel Michetti)',
    'chelsea.png': 'CC0 (Stefan van der Walt)',
    'camera.png': 'CC0 (Lav Varshney)',
    'rocket.jpg': 'public domain (SpaceX)',
    'brick.png': 'CC0 (Stefan van der Walt)',
    'grass.png': 'CC0 (Stefan van der Walt)',
    'gravel.png': 'CC0 (Stefan van der Walt)',
}


def main(out: str) -> int:
    dest = Path(out)
    if all((dest / f).is_file() for f in PHOTOS):
        print(f'photos already in {dest}')
        return 0
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
                        '--only-binary=:all:', WHEEL, '-d', tmp], check=True)
        wheel = next(Path(tmp).glob('scikit_image-*.whl'))
        with zipfile.ZipFile(wheel) as z:
            for name in PHOTOS:
                (dest / name).write_bytes(z.read(f'skimage/data/{name}'))
    print(f'{len(PHOTOS)} photos in {dest}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else '.build/photos'))
