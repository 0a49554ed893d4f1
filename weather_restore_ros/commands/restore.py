"""``weather-restore restore``: restore image files, folders and videos offline."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments
    p = sub.add_parser(
        'restore', help='restore images, folders or videos to PNG files',
        description='Restore weather-degraded images. Writes DIR/<stem>.png (folders keep their '
                    'relative paths; video frames go to DIR/<video stem>/<frame>.png) and '
                    'DIR/weather.jsonl with the weather label and scores of each image or video '
                    'frame. An input that cannot be read is reported and skipped; the exit code '
                    'is 1 if any input failed, 2 if nothing could be done.')
    p.add_argument('inputs', nargs='+', help='image files, folders (recursed) or videos')
    p.add_argument('--output', '-o', required=True, help='output folder')
    p.add_argument('--mask', action='store_true',
                   help='also write the degradation mask as <stem>_mask.png')
    p.add_argument('--every-n-frames', type=int, default=1, metavar='N',
                   help='videos: restore every N-th frame')
    # Offline, no first frame to make fast: no warm-up. weather.jsonl says "unsafe_output":
    # true for an image the harm guard wrote the input into.
    add_engine_arguments(p, defaults={'warmup': False})
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine_settings import settings_from_args
    settings = settings_from_args(args)
    settings.configure_threads()   # before torch is imported: it reads the wait policy once
    import cv2
    from tqdm import tqdm

    from ..checkpoint import CheckpointError
    from ..encoders import MissingWeightsError
    from ..engine import EngineError, RestorationEngine
    from ..file_frames import collect_inputs, iter_frames

    out_dir = Path(args.output)
    items = collect_inputs(args.inputs, exclude=out_dir)
    if not items:
        print('error: no inputs found', file=sys.stderr)
        return 2
    if args.every_n_frames < 1:
        print('error: --every-n-frames must be >= 1', file=sys.stderr)
        return 2
    try:
        engine = RestorationEngine.from_settings(
            settings, log=lambda line: print(line, file=sys.stderr))
    except (CheckpointError, EngineError, MissingWeightsError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    frames_done = 0
    with open(out_dir / 'weather.jsonl', 'w') as log, \
            tqdm(items, unit='file', disable=None) as bar:
        for path, rel in bar:
            bar.set_postfix_str(path.name, refresh=False)
            # Each input is its own stream: unrelated photos must not share a prior, while the
            # frames of one video do (as a camera's frames do in the node).
            stream = str(path)
            try:
                for frame_name, rgb in iter_frames(path, args.every_n_frames):
                    target = out_dir / rel / frame_name if frame_name else out_dir / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    result = engine.restore(rgb, stream=stream)
                    png = target.with_name(target.name + '.png')
                    _write(png, cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR))
                    if args.mask:
                        _write(target.with_name(target.name + '_mask.png'), result.mask)
                    entry = {'file': str(path), 'label': result.label,
                             'scores': {k: round(v, 4) for k, v in result.scores.items()},
                             'output': str(png)}
                    if frame_name:
                        entry['frame'] = int(frame_name)
                    if result.unsafe_output:   # the harm guard put the input back into part
                        entry['unsafe_output'] = True
                        entry['replaced_fraction'] = round(result.replaced_fraction, 4)
                    log.write(json.dumps(entry) + '\n')
                    log.flush()
                    frames_done += 1
            except Exception as exc:  # report, skip, keep going
                failed.append(path)
                tqdm.write(f'error: {path}: {exc}', file=sys.stderr)
            finally:
                engine.forget_stream(stream)
    done = len(items) - len(failed)
    print(f'restored {done}/{len(items)} inputs ({frames_done} images) into {out_dir} '
          f'(weather labels in {out_dir / "weather.jsonl"})')
    if failed:
        print(f'{len(failed)} input(s) failed: ' + ', '.join(map(str, failed)), file=sys.stderr)
        return 1
    return 0


def _write(path: Path, image) -> None:
    import cv2
    if not cv2.imwrite(str(path), image):
        raise OSError(f'cannot write {path}')
