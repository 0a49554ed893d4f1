#!/usr/bin/env python3
"""Fetch the clean photos the shipped model is trained on (licences: see the model card).

Two kinds of source, both package registries a fresh machine can reach, nothing installed:

* the scikit-image wheel on PyPI (``pip download``): public-domain / CC0 photos documented in
  ``skimage.data``;
* Debian packages (``apt-get download``, or the Debian mirror's pool when apt is not there; each
  checked against its pinned SHA-256, read without dpkg), every file's licence and author taken
  from the package's copyright file (``DEBIAN_SOURCES``):
  - ``mate-backgrounds``: the GPL-2+ photos of its ``nature`` folder -- outdoor scenes with sky,
    sea, meadow and a road, which the skimage set lacks;
  - ``lomiri-wallpapers-16.04`` (the 16.04 set of lomiri-wallpapers): 14 CC-BY-4.0 /
    CC-BY-SA-4.0 / CC0-1.0 photos (mountains, a river, a bridge, plants, dogs, a room); its 15th
    file (umang, an abstract colour gradient) is left out;
  - ``plasma-workspace-wallpapers``: the 11 photographs among KDE's 30 wallpapers (a jetty,
    boats, a forest path, leaves, sky, ...); the 19 renders and illustrations are left out.
  Scaled to 1024 px on the long side: the 2560-5312 px originals would give 160 px training crops
  of pure texture.

The held-out validation photo (``china``, shipped in weather_restore_ros/assets) is not among
them.

    python tools/fetch_training_photos.py .build/photos
    python tools/fetch_training_photos.py .build/photos --only skimage,mate   # a subset
    python tools/fetch_training_photos.py --licences   # the model card's licence lines
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
from typing import NamedTuple

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
MATE_LONG_SIDE = 1024  # every Debian photo is scaled to this long side


class DebSource(NamedTuple):
    """Photos in one Debian binary package, pinned by the package's SHA-256."""
    key: str          # short name: output prefix, --only
    package: str      # apt package name
    version: str      # apt version (with epoch)
    url: str          # the file in the Debian mirror's pool (apt-get download's fallback)
    sha256: str
    folder: str       # data.tar member folder the photos are in
    photos: dict      # member (relative to folder) -> licence (authors), from the copyright file
    copyright: str    # where the licences come from

    @property
    def deb(self) -> str:
        return self.url.rsplit('/', 1)[1]

    def out_name(self, member: str) -> str:
        """lomiri_Bridge.png for Bridge_by_Sander_Klootwijk.jpg, plasma_Kite.png for
        Kite/contents/images/2560x1600.jpg."""
        stem = Path(member.split('/')[0]).stem.split('_by_')[0]
        return f'{self.key}_{stem}.png'


LOMIRI_PHOTOS = {  # file -> licence (debian/copyright of lomiri-wallpapers 20.04.0-2, "16.04/")
    'aitzgorri_by_Aitzol_Berasategi.jpg': 'CC-BY-4.0 (Aitzol Berasategi)',
    'analogpattern_by_Peter_Nerlich.jpg': 'CC-BY-SA-4.0 (Peter Nerlich)',
    'Bridge_by_Sander_Klootwijk.jpg': 'CC-BY-SA-4.0 (Sander Klootwijk)',
    'Dragonfly_by_Bolly.jpg': 'CC-BY-SA-4.0 (Bolly)',
    'free_by_Peter_Nerlich.jpg': 'CC-BY-SA-4.0 (Peter Nerlich)',
    'friends_by_Aitzol_Berasategi.jpg': 'CC-BY-4.0 (Aitzol Berasategi)',
    'greentock_by_Peter_Nerlich.jpg': 'CC-BY-SA-4.0 (Peter Nerlich)',
    'life_by_Aitzol_Berasategi.jpg': 'CC-BY-4.0 (Aitzol Berasategi)',
    'picosdeeuropa_by_Aitzol_Berasategi.jpg': 'CC-BY-4.0 (Aitzol Berasategi)',
    'Picture_0B_by_freespace.jpg': 'CC-BY-4.0 (Trevor "Freespace")',
    'Picture_1A_by_freespace.jpg': 'CC-BY-4.0 (Trevor "Freespace")',
    'seeding_by_Clements_Engelhardt.jpg': 'CC0-1.0 (Clemens Engelhardt)',
    'sunset_by_Aitzol_Berasategi.jpg': 'CC-BY-4.0 (Aitzol Berasategi)',
    'Wine_by_Jakkub_Mede.jpg': 'CC-BY-4.0 (Jakub Mede)',
    # not taken: umang_by_Abhishek_Mudgal.jpg (CC-BY-4.0), an abstract colour gradient
}

# The package's debian/copyright gives "Files: * ... GPL-2+" (KDE Visual Design Group); each
# wallpaper's own metadata.json says LGPLv3 and names its author. Both allow redistribution;
# the per-file licence recorded is the metadata's.
PLASMA_PHOTOS = {  # member -> licence (authors), from <name>/metadata.json
    'BytheWater/contents/images/2560x1600.jpg': 'LGPL-3 (Maciej Wiklo)',
    'ColdRipple/contents/images/2560x1600.jpg': 'LGPL-3 (Risto Saukonpää)',
    'ColorfulCups/contents/images/2560x1600.jpg': 'LGPL-3 (Dmitri Popov)',
    'DarkestHour/contents/images/2560x1600.jpg': 'LGPL-3 (Risto Saukonpää)',
    'EveningGlow/contents/images/2560x1600.jpg': 'LGPL-3 (Ian Hex)',
    'FallenLeaf/contents/images/2560x1600.jpg': 'LGPL-3 (Martin Klapetek)',
    'Grey/contents/images/2560x1600.jpg': 'LGPL-3 (Sigi Sagi)',
    'Kite/contents/images/2560x1600.jpg': 'LGPL-3 (Risto Saukonpää)',
    'OneStandsOut/contents/images/2560x1600.jpg': 'LGPL-3 (Risto Saukonpää)',
    'Path/contents/images/2560x1600.jpg': 'LGPL-3 (Risto Saukonpää)',
    'summer_1am/contents/images/2560x1600.jpg': 'LGPL-3 (Risto Saukonpää)',
    # not taken, renders/illustrations: Altai, Autumn, Canopee, Cascade, Cluster, Elarun, Flow,
    # FlyingKonqui, Honeywave, IceCold, Kay, Kokkini, MilkyWay, Opal, PastelHills, Patak,
    # SafeLanding, Shell, Volna
}

_POOL = 'https://deb.debian.org/debian/pool/main'
DEBIAN_SOURCES = (
    DebSource('mate', 'mate-backgrounds', '1.26.0-1', DEB_URL, DEB_SHA256, DEB_DIR, MATE_PHOTOS,
              'debian/copyright of mate-backgrounds 1.26.0-1'),
    DebSource('lomiri', 'lomiri-wallpapers-16.04', '20.04.0-2',
              f'{_POOL}/l/lomiri-wallpapers/lomiri-wallpapers-16.04_20.04.0-2_all.deb',
              'a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab',
              './usr/share/backgrounds/', LOMIRI_PHOTOS,
              'debian/copyright of lomiri-wallpapers 20.04.0-2 (its 16.04/ files)'),
    DebSource('plasma', 'plasma-workspace-wallpapers', '4:5.27.5-2',
              f'{_POOL}/p/plasma-workspace-wallpapers/plasma-workspace-wallpapers_5.27.5-2_all.deb',
              '32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b',
              './usr/share/wallpapers/', PLASMA_PHOTOS,
              "each wallpaper's metadata.json in plasma-workspace-wallpapers 4:5.27.5-2 "
              '(debian/copyright: GPL-2+ for all files)'),
)
SETS = ('skimage',) + tuple(s.key for s in DEBIAN_SOURCES)


def fetch_skimage(dest: Path, tmp: Path) -> None:
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--quiet', '--no-deps',
                    '--only-binary=:all:', WHEEL, '-d', str(tmp)], check=True)
    wheel = next(tmp.glob('scikit_image-*.whl'))
    with zipfile.ZipFile(wheel) as z:
        for name in PHOTOS:
            (dest / name).write_bytes(z.read(f'skimage/data/{name}'))


def _download_deb(source: DebSource, tmp: Path) -> bytes:
    if shutil.which('apt-get'):
        done = subprocess.run(['apt-get', 'download', f'{source.package}={source.version}'],
                              cwd=tmp, capture_output=True)
        # apt names the file with the epoch escaped (4%3a5.27.5-2); the pool without it.
        found = sorted(tmp.glob(f'{source.package}_*.deb'))
        if done.returncode == 0 and found:
            return found[0].read_bytes()
    with urllib.request.urlopen(source.url, timeout=300) as r:
        return r.read()


def _deb_data_tar(deb: bytes, name: str = 'the package') -> tarfile.TarFile:
    """The data.tar.* member of a .deb (an ``ar`` archive), without dpkg."""
    if not deb.startswith(b'!<arch>\n'):
        raise ValueError(f'{name} is not a Debian package')
    pos = 8
    while pos + 60 <= len(deb):
        member = deb[pos:pos + 16].decode().strip().rstrip('/')
        size = int(deb[pos + 48:pos + 58].decode().strip())
        body = deb[pos + 60:pos + 60 + size]
        if member.startswith('data.tar'):
            return tarfile.open(fileobj=io.BytesIO(body))
        pos += 60 + size + (size % 2)
    raise ValueError(f'no data.tar in {name}')


def fetch_deb(source: DebSource, dest: Path, tmp: Path) -> None:
    """Every photo of ``source``, checked, scaled to MATE_LONG_SIDE, as PNG in ``dest``."""
    import cv2
    import numpy as np
    deb = _download_deb(source, tmp)
    digest = hashlib.sha256(deb).hexdigest()
    if digest != source.sha256:
        raise RuntimeError(f'{source.deb}: SHA-256 {digest}, expected {source.sha256}')
    with _deb_data_tar(deb, source.deb) as tar:
        for name in source.photos:
            data = tar.extractfile(source.folder + name).read()
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise RuntimeError(f'{source.deb}: cannot decode {name}')
            scale = MATE_LONG_SIDE / max(img.shape[:2])
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(dest / source.out_name(name)), img)


def fetch_mate(dest: Path, tmp: Path) -> None:
    fetch_deb(DEBIAN_SOURCES[0], dest, tmp)


def licence_lines() -> str:
    """The photo licences, one Markdown line per source (for the model card's Data section)."""
    lines = [f'- scikit-image {WHEEL.split("==")[1]} wheel (PyPI), `skimage/data`: '
             + '; '.join(f'{Path(n).stem}: {lic}' for n, lic in PHOTOS.items())]
    for s in DEBIAN_SOURCES:
        lines.append(f'- Debian package {s.package} {s.version} (licences: {s.copyright}), '
                     f'scaled to {MATE_LONG_SIDE} px: '
                     + '; '.join(f'{s.out_name(n)[:-4]}: {lic}' for n, lic in s.photos.items()))
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    import argparse
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('out', nargs='?', default='.build/photos')
    p.add_argument('--only', default=','.join(SETS),
                   help=f'comma-separated sets to fetch (default: all of {",".join(SETS)})')
    p.add_argument('--licences', action='store_true',
                   help='print the licence lines (Markdown) and exit')
    args = p.parse_args([argv] if isinstance(argv, str) else argv)
    if args.licences:
        print(licence_lines(), end='')
        return 0
    only = [s.strip() for s in args.only.split(',') if s.strip()]
    unknown = sorted(set(only) - set(SETS))
    if unknown:
        p.error(f'unknown set(s) {", ".join(unknown)}; known: {", ".join(SETS)}')
    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        if 'skimage' in only:
            if not all((dest / f).is_file() for f in PHOTOS):
                fetch_skimage(dest, Path(tmp))
            count += len(PHOTOS)
        for source in DEBIAN_SOURCES:
            if source.key not in only:
                continue
            if not all((dest / source.out_name(n)).is_file() for n in source.photos):
                fetch_deb(source, dest, Path(tmp))
            count += len(source.photos)
    print(f'{count} photos in {dest}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
