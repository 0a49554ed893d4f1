#!/usr/bin/env python3
"""Fetch the clean photos the shipped model is trained on (licences: see the model card).

Two sources, both package registries a fresh machine can reach, nothing installed:

* the scikit-image wheel on PyPI (``pip download``): public-domain / CC0 photos documented in
  ``skimage.data``;
* the Debian package ``mate-backgrounds`` (``apt-get download``, or the Debian mirror's pool when
  apt is not there; checked against its SHA-256): the GPL-2+ photos of its ``nature`` folder --
  outdoor scenes with sky, sea, meadow and a road, which the skimage set lacks. Scaled to 1024 px
  on the long side: the 2560 px originals would give 160 px training crops of pure texture.

The held-out validation photo (``china``, shipped in weather_restore_ros/assets) is not among
them.

    python tools/fetch_training_photos.py .build/photos
"""
import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
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

DEB = 'mate-backgrounds_1.26.0-1_all.deb'
DEB_URL = f'https://deb.debian.org/debian/pool/main/m/mate-backgrounds/{DEB}'
DEB_SHA256 = '7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04'
DEB_DIR = './usr/share/backgrounds/mate/nature/'
MATE_PHOTOS = {  # file in nature/ -> licence (debian/copyright of mate-backgrounds 1.26.0-1)
    'Aqua.jpg': 'GPL-2+ (Charles Barbin)',
    'Blinds.jpg': 'GPL-2+ (Lennart Poettering, Andrea Cimitan)',
    'Dune.jpg': 'GPL-2+ (Marco Cogoni, Hylke Bons)',
    'FreshFlower.jpg': 'GPL-2+ (Jens Ansorg)',
    'Garden.jpg': 'GPL-2+ (Charles Barbin)',
    'GreenMeadow.jpg': 'GPL-2+ (Timothy Schellhase, Lapo Calamandrei)',
    'LadyBird.jpg': 'GPL-2+ (Charles Barbin)',
    'RainDrops.jpg': 'GPL-2+ (blackcombwhistler07)',
    'Storm.jpg': 'GPL-2+ (Sergey Nazarov)',
    'TwoWings.jpg': 'GPL-2+ (Charles Barbin, Hylke Bons)',
    'Wood.jpg': 'GPL-2+ (mate-backgrounds authors)',
    'YellowFlower.jpg': 'GPL-2+ (Charles Barbin)',
}
MATE_LONG_SIDE = 1024


def fetch_skimage(dest: Path, tmp: Path) -> None:
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
                    '--only-binary=:all:', WHEEL, '-d', str(tmp)], check=True)
    wheel = next(tmp.glob('scikit_image-*.whl'))
    with zipfile.ZipFile(wheel) as z:
        for name in PHOTOS:
            (dest / name).write_bytes(z.read(f'skimage/data/{name}'))


def _download_deb(tmp: Path) -> bytes:
    if shutil.which('apt-get'):
        done = subprocess.run(['apt-get', 'download', 'mate-backgrounds=1.26.0-1'], cwd=tmp,
                              capture_output=True)
        if done.returncode == 0 and (tmp / DEB).is_file():
            return (tmp / DEB).read_bytes()
    with urllib.request.urlopen(DEB_URL, timeout=120) as r:
        return r.read()


def _deb_data_tar(deb: bytes) -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an ``ar`` archive), without dpkg."""
    if not deb.startswith(b'!<arch>\n'):
        raise ValueError(f'{DEB} is not a Debian package')
    pos = 8
    while pos + 60 <= len(deb):
        name = deb[pos:pos + 16].decode().strip().rstrip('/')
        size = int(deb[pos + 48:pos + 58].decode().strip())
        body = deb[pos + 60:pos + 60 + size]
        if name.startswith('data.tar'):
            return tarfile.open(fileobj=io.BytesIO(body))
        pos += 60 + size + (size % 2)
    raise ValueError(f'no data.tar in {DEB}')


def fetch_mate(dest: Path, tmp: Path) -> None:
    import cv2
    import numpy as np
    deb = _download_deb(tmp)
    digest = hashlib.sha256(deb).hexdigest()
    if digest != DEB_SHA256:
        raise RuntimeError(f'{DEB}: SHA-256 {digest}, expected {DEB_SHA256}')
    with _deb_data_tar(deb) as tar:
        for name in MATE_PHOTOS:
            data = tar.extractfile(DEB_DIR + name).read()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            scale = MATE_LONG_SIDE / max(img.shape[:2])
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dest / f'mate_{Path(name).stem}.png'), img)


def main(out: str) -> int:
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if not all((dest / f).is_file() for f in PHOTOS):
            fetch_skimage(dest, Path(tmp))
        if not all((dest / f'mate_{Path(f).stem}.png').is_file() for f in MATE_PHOTOS):
            fetch_mate(dest, Path(tmp))
    print(f'{len(PHOTOS) + len(MATE_PHOTOS)} photos in {dest}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else '.build/photos'))
