"""tools/fetch_training_photos.py: the .deb reader it uses where dpkg is not installed (the
downloads themselves need the package registries and are not run here)."""
import importlib.util
import io
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
