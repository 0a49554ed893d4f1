"""``weather-restore eval``: PSNR/SSIM per weather class vs. the input and classical baselines."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        'eval', help='evaluate a checkpoint on a paired test set',
        description='PSNR and SSIM per weather class (Y channel of YCbCr by default, as the '
                    'all-weather papers report) for the model, the degraded input and two '
                    'classical baselines, plus weather-classification accuracy and confusion '
                    'matrix. Writes eval.md, eval.json and samples.png to --output.')
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--paired', metavar='DIR', help='input/ + gt/ folders (labels.csv optional)')
    src.add_argument('--list', metavar='FILE', help='AllWeather-style txt list')
    src.add_argument('--cdd11', metavar='DIR', help='CDD-11 root (test split)')
    src.add_argument('--test-set', metavar='NAME:DIR',
                     help='a standard test set, e.g. snow100k-l:/data/Snow100K-L')
    src.add_argument('--holdout', action='store_true',
                     help="the shipped model's held-out synthetic validation set")
    p.add_argument('--checkpoint', help='checkpoint (default: the shipped model)')
    p.add_argument('--output', '-o', required=True, help='report folder')
    p.add_argument('--on', choices=('y', 'rgb'), default='y', help='metric space (default y)')
    p.add_argument('--limit', type=int, help='evaluate at most N samples')
    p.add_argument('--no-baselines', action='store_true', help='skip the classical baselines')
    p.add_argument('--device', default='auto', help='auto | cpu | cuda | cuda:N')
    p.add_argument('--precision', default='auto', choices=('auto', 'fp32', 'fp16', 'bf16'),
                   help='inference precision (auto: fp16 on CUDA, as the node runs; fp32 on CPU)')
    p.add_argument('--seed', type=int, default=1234, help='holdout: synthesis seed')
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
        return D.SingleTestSet(name, root, **common)
    from ..holdout import holdout_dataset
    return holdout_dataset(class_names, seed=args.seed)


def run(args) -> int:
    from tqdm import tqdm

    from ..engine import RestorationEngine
    from ..evaluation import evaluate, write_report
    from ..metrics import to_uint8

    engine = RestorationEngine.from_checkpoint(args.checkpoint, device=args.device,
                                               precision=args.precision, warmup=False)
    names = engine.class_names
    ds = dataset_from_args(args, names)
    n = len(ds) if args.limit is None else min(args.limit, len(ds))

    def samples():
        for i in tqdm(range(n), unit='img', disable=n < 10 or None):
            s = ds[i]
            yield (s['name'], to_uint8(s['input'].permute(1, 2, 0).numpy()),
                   to_uint8(s['target'].permute(1, 2, 0).numpy()), names[int(s['label'])])

    def restore(rgb):
        engine.forget_stream('eval')  # every image is its own scene: a fresh prior
        r = engine.restore(rgb, stream='eval')
        return r.image, r.scores

    report = evaluate(samples(), restore, names, on=args.on, baselines=not args.no_baselines)
    source = 'holdout' if args.holdout else next(
        f'{k}: {v}' for k in ('paired', 'list', 'cdd11', 'test_set') if (v := getattr(args, k)))
    meta = {'checkpoint': str(engine.checkpoint.path), 'data': source, 'samples': n,
            'device': str(engine.device), 'precision': engine.precision}
    if args.holdout:
        meta['holdout_seed'] = args.seed
    paths = write_report(report, args.output, meta=meta)
    print(report.to_markdown())
    print('\n' + '\n'.join(f'{k}: {v}' for k, v in paths.items()))
    return 0
