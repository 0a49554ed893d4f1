"""tools/fetch_training_photos.py: the .deb reader it uses where dpkg is not installed, the pinned
sources and per-file licences (the downloads themselves need the package registries and are not
run here)."""
import hashlib
import importlib.util
import io
import re
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location('fetch_training_photos',
                                                  ROOT / 'tools' / 'fetch_training_photos.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ar_member(name: str, body: bytes) -> bytes:
    header = (f'{name + "/":<16}{0:<12}{0:<6}{0:<6}{"100644":<8}{len(body):<10}`\n').encode()
    assert len(header) == 60
    return header + body + (b'\n' if len(body) % 2 else b'')


def test_deb_data_tar_is_read_without_dpkg():
    tool = _tool()
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode='w:xz') as tar:
        data = b'not really a jpeg'
        info = tarfile.TarInfo(tool.DEB_DIR + 'Storm.jpg')
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    deb = (b'!<arch>\n' + _ar_member('debian-binary', b'2.0\n')
           + _ar_member('control.tar.xz', b'odd')          # odd size: ar pads to even
           + _ar_member('data.tar.xz', payload.getvalue()))
    with tool._deb_data_tar(deb) as tar:
        assert tar.extractfile(tool.DEB_DIR + 'Storm.jpg').read() == b'not really a jpeg'
    with pytest.raises(ValueError, match='not a Debian package'):
        tool._deb_data_tar(b'PK\x03\x04')
    with pytest.raises(ValueError, match='no data.tar'):
        tool._deb_data_tar(b'!<arch>\n' + _ar_member('debian-binary', b'2.0\n'))


LICENCE = re.compile(r'^(public domain|CC0|CC0-1\.0|CC-BY-4\.0|CC-BY-SA-4\.0|GPL-2\+|LGPL-3) '
                     r'\(.+\)$')


def test_every_source_is_pinned_and_every_photo_licensed():
    tool = _tool()
    assert [s.key for s in tool.DEBIAN_SOURCES] == ['mate', 'lomiri', 'plasma']
    assert {s.key: len(s.photos) for s in tool.DEBIAN_SOURCES} == \
        {'mate': 12, 'lomiri': 14, 'plasma': 11}
    for s in tool.DEBIAN_SOURCES:
        assert re.fullmatch(r'[0-9a-f]{64}', s.sha256), s.key
        assert s.url.startswith('https://deb.debian.org/debian/pool/main/') and \
            s.deb.endswith('_all.deb'), s.url
        assert s.folder.startswith('./usr/share/') and s.folder.endswith('/')
        for name, lic in s.photos.items():
            assert LICENCE.match(lic), (s.key, name, lic)
    for name, lic in tool.PHOTOS.items():
        assert LICENCE.match(lic), (name, lic)
    names = [s.out_name(n) for s in tool.DEBIAN_SOURCES for n in s.photos] + list(tool.PHOTOS)
    assert len(names) == len(set(names)) == 45
    # what is left out on purpose: an abstract gradient (lomiri), renders (plasma)
    assert not any(n.startswith('umang') for n in tool.LOMIRI_PHOTOS)
    assert not any(n.startswith(('Volna/', 'Altai/', 'Kay/')) for n in tool.PLASMA_PHOTOS)
    assert tool.DEBIAN_SOURCES[1].out_name('Bridge_by_Sander_Klootwijk.jpg') == \
        'lomiri_Bridge.png'
    assert tool.DEBIAN_SOURCES[2].out_name('Kite/contents/images/2560x1600.jpg') == \
        'plasma_Kite.png'
    # the names ship_model.py reads keep their meaning
    assert tool.MATE_PHOTOS is tool.DEBIAN_SOURCES[0].photos
    lines = tool.licence_lines()
    for s in tool.DEBIAN_SOURCES:
        for n, lic in s.photos.items():
            assert f'{s.out_name(n)[:-4]}: {lic}' in lines


def _fake_deb(tool, members: dict) -> bytes:
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode='w:xz') as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return (b'!<arch>\n' + _ar_member('debian-binary', b'2.0\n')
            + _ar_member('data.tar.xz', payload.getvalue()))


def test_fetch_deb_checks_the_pin_and_scales_to_1024(tmp_path, monkeypatch):
    import cv2
    import numpy as np
    tool = _tool()
    source = tool.DEBIAN_SOURCES[2]
    jpeg = cv2.imencode('.jpg', np.full((400, 640, 3), 128, np.uint8))[1].tobytes()
    deb = _fake_deb(tool, {source.folder + n: jpeg for n in source.photos})
    monkeypatch.setattr(tool, '_download_deb', lambda src, tmp: deb)
    with pytest.raises(RuntimeError, match='SHA-256'):
        tool.fetch_deb(source, tmp_path, tmp_path)
    assert not list(tmp_path.glob('*.png'))
    pinned = source._replace(sha256=hashlib.sha256(deb).hexdigest())
    tool.fetch_deb(pinned, tmp_path, tmp_path)
    out = sorted(p.name for p in tmp_path.glob('*.png'))
    assert out == sorted(source.out_name(n) for n in source.photos)
    assert cv2.imread(str(tmp_path / out[0])).shape == (640, 1024, 3)


def test_main_skips_what_is_there_and_checks_sets(tmp_path, monkeypatch, capsys):
    tool = _tool()
    for name in tool.PHOTOS:
        (tmp_path / name).write_bytes(b'x')
    for s in tool.DEBIAN_SOURCES[:2]:
        for n in s.photos:
            (tmp_path / s.out_name(n)).write_bytes(b'x')

    def no_network(*a, **k):
        raise AssertionError('nothing should be downloaded')
    monkeypatch.setattr(tool, 'fetch_skimage', no_network)
    monkeypatch.setattr(tool, 'fetch_deb', no_network)
    assert tool.main([str(tmp_path), '--only', 'skimage,mate,lomiri']) == 0
    assert '34 photos' in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path), '--only', 'mate,flickr'])
