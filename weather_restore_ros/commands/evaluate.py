"""``weather-restore eval``: PSNR/SSIM per weather class vs. the input and classical baselines;
per-image worst cases and do-no-harm; real photos; a suite of every set found under a folder."""
from __future__ import annotations

import sys


#: The names --test-set knows (data.testsets.TEST_SETS and REAL_PHOTO_SETS; a test checks they
#: agree), spelled out so that building the parser does not import torch.
SET_NAMES = ('snow100k-s, snow100k-l, outdoor-rain-test1, raindrop-test-a, sots-outdoor, '
             'sots-indoor, rain100l, rain100h; real photos without ground truth: real-rain, '
             'real-fog')


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments
    from .synth import severity_range_arg
    p = sub.add_parser(
        'eval', help='evaluate a checkpoint on paired test sets and real photos',
        description='PSNR and SSIM per weather class (Y channel of YCbCr by default, video '
                    "range as the papers' MATLAB rgb2ycbcr; --y full for OpenCV's full range) "
                    'for the model, the degraded input and two classical baselines; per image '
                    'the worst cases (model - input PSNR) and the do-no-harm speckle measure; '
                    'weather-classification accuracy and confusion matrix. Real-photo sets '
                    '(real-rain, real-fog: no ground truth) get harm and classification only. '
                    'Writes eval.md, eval.json, samples.png, worst.png (and harmed.png) to '
                    '--output; --suite writes one folder per set plus suite.md/suite.json.')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--paired', metavar='DIR', help='input/ + gt/ folders (labels.csv optional)')
    src.add_argument('--list', metavar='FILE', help='AllWeather-style txt list')
    src.add_argument('--cdd11', metavar='DIR', help='CDD-11 root (test split)')
    src.add_argument('--test-set', metavar='NAME:DIR',
                     help='a standard test set, e.g. snow100k-l:/data/Snow100K-L, '
                          'rain100l:/data/rain100l_test, real-fog:/data/real_photos (names: '
                          f'{SET_NAMES})')
    src.add_argument('--suite', metavar='ROOT',
                     help='every known set found in the subfolders of ROOT (e.g. '
                          'rain100l_test/, rain100h_test/, real_photos/real_rain/, '
                          'real_photos/dawn_fog/), one combined report')
    src.add_argument('--holdout', action='store_true',
                     help="the shipped model's held-out synthetic validation set")
    p.add_argument('--output', '-o', required=True, help='report folder')
    p.add_argument('--on', choices=('y', 'rgb'), default='y', help='metric space (default y)')
    p.add_argument('--y', choices=('video', 'full'), default='video', dest='y_range',
                   help="which Y: video (16-235, MATLAB's rgb2ycbcr as the papers; default) or "
                        "full (0-255, OpenCV's COLOR_RGB2YCrCb); the other is reported beside")
    p.add_argument('--worst', type=int, default=8, metavar='N',
                   help='list (and show in worst.png) the N worst images per set (default 8)')
    p.add_argument('--limit', type=int, help='evaluate at most N samples (per set)')
    p.add_argument('--no-baselines', action='store_true', help='skip the classical baselines')
    p.add_argument('--seed', type=int, default=1234, help='holdout: synthesis seed')
    p.add_argument('--structures', type=float, default=0.0, metavar='P',
                   help='holdout: share of frames with thin structures drawn into the scene '
                        '(wires, poles, a facade grid; default 0)')
    p.add_argument('--weather', nargs='+', metavar='W',
                   help='holdout: only these weathers, e.g. rain:light (default: every class)')
    p.add_argument('--severity', type=severity_range_arg, metavar='LO:HI',
                   help='holdout: weather severity range in [0, 1] (default 0.3:1.0, as '
                        'training draws by default); 0:0.3 are the light frames a restorer is '
                        'most tempted to over-correct')
    # Evaluation measures the raw model: harm guard off unless --harm-guard. One image at a
    # time, no live first frame: no warm-up.
    add_engine_arguments(p, defaults={'harm_guard': False, 'warmup': False})
    p.set_defaults(func=run)


def dataset_from_args(args, class_names):
    from .. import data as D
    common = dict(crop_size=None, class_names=class_names)
    if args.paired:
        return D.PairedFolderDataset(args.paired, **common)
    if args.list:
        return D.AllWeatherListDataset(args.list, **common)
    if args.cdd11:
        return D.CDD11Dataset(args.cdd11, split='test', **common)
    if args.test_set:
        name, _, root = args.test_set.partition(':')
        if not root:
            raise D.DatasetError(f'--test-set takes NAME:DIR, got {args.test_set!r}')
        return D.open_test_set(name, root, class_names)
    from ..data.holdout import holdout_dataset
    return holdout_dataset(class_names, seed=args.seed, structures=args.structures,
                           weathers=args.weather, severity_range=args.severity)


def run(args) -> int:
    from ..engine_settings import settings_from_args
    settings = settings_from_args(args)
    settings.configure_threads()   # before torch is imported: it reads the wait policy once
    from ..data import DatasetError, RealPhotoSet, find_test_sets
    from ..engine import EngineError, RestorationEngine
    from ..synth.compose import DEFAULT_SEVERITY_RANGE
    from ..training.evaluation import dataset_samples, evaluate, write_report
    from ..training.suite import (SuiteReport, evaluate_photos, write_photo_report,
                                  write_suite_report)

    try:
        engine = RestorationEngine.from_settings(settings)
    except EngineError as exc:
        print(f'weather-restore eval: {exc}', file=sys.stderr)
        return 2
    names = engine.class_names
    on = 'y_full' if args.on == 'y' and args.y_range == 'full' else args.on
    try:
        if args.suite:
            sets = [(ds.name, ds) for ds in find_test_sets(args.suite, names)]
            if not sets:
                raise DatasetError(f'--suite: no known test set in the subfolders of '
                                   f'{args.suite} (known: {SET_NAMES}); for one set in a '
                                   f'folder of its own use --test-set NAME:DIR')
        else:
            sets = [(None, dataset_from_args(args, names))]
    except DatasetError as exc:
        print(f'weather-restore eval: {exc}', file=sys.stderr)
        return 2

    def restore(rgb):
        engine.forget_stream('eval')  # every image is its own scene: a fresh prior
        r = engine.restore(rgb, stream='eval')
        return r.image, r.scores

    meta = {'checkpoint': str(engine.checkpoint.path), 'device': str(engine.device),
            'precision': engine.precision, 'harm_guard': engine.harm_guard,
            'metric_space': on, 'limit': args.limit}
    reports = []
    for set_name, ds in sets:
        n = len(ds) if args.limit is None else min(args.limit, len(ds))
        if isinstance(ds, RealPhotoSet):
            report = evaluate_photos(dataset_samples(ds, n, names, set_name, target=False),
                                     restore, names, worst=args.worst, on=on)
        else:
            report = evaluate(dataset_samples(ds, n, names, set_name), restore, names, on=on,
                              baselines=not args.no_baselines, worst=args.worst)
        reports.append((set_name, ds, n, report))

    if args.suite:
        suite = SuiteReport([(name, r) for name, _, _, r in reports], names)
        meta = {**meta, 'data': f'suite: {args.suite}',
                'sets': {name: {'root': ds.root, 'samples': n} for name, ds, n, _ in reports}}
        paths = write_suite_report(suite, args.output, meta=meta)
        print(suite.to_markdown())
    else:
        _, ds, n, report = reports[0]
        source = 'holdout' if args.holdout else next(
            f'{k}: {v}' for k in ('paired', 'list', 'cdd11', 'test_set') if (v := getattr(args, k)))
        meta = {**meta, 'data': source, 'samples': n}
        if args.holdout:
            meta['holdout_seed'] = args.seed
            meta['holdout_structures'] = args.structures
            meta['holdout_weathers'] = list(ds.classes)
            meta['holdout_severity'] = list(args.severity or DEFAULT_SEVERITY_RANGE)
        writer = write_photo_report if isinstance(ds, RealPhotoSet) else write_report
        paths = writer(report, args.output, meta=meta)
        print(report.to_markdown())
    print('\n' + '\n'.join(f'{k}: {v}' for k, v in paths.items()))
    return 0
