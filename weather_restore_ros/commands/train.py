"""``weather-restore train CONFIG.yaml``: train a restorer (CPU, one GPU, or torchrun)."""


def register(sub) -> None:
    from ..cpu_threads import add_threads_argument

    p = sub.add_parser(
        'train', help='train a model from a YAML config',
        description='Train the restorer with reconstruction + CLIP-SRD + weather-head losses. '
                    'Multi-GPU (or several CPU processes, gloo): torchrun --nproc_per_node=N '
                    '$(which weather-restore) train CONFIG.yaml. Checkpoints (safetensors + JSON)'
                    ' go to out_dir/last.safetensors, losses to out_dir/metrics.jsonl (and '
                    'TensorBoard when installed). Example configs: train_configs/*.yaml in the '
                    'source tree.')
    p.add_argument('config', help='training config (YAML)')
    p.add_argument('--out-dir', help='override out_dir')
    p.add_argument('--steps', type=int,
                   help='override the total number of steps (also the LR schedule length)')
    p.add_argument('--max-steps', type=int,
                   help='stop after this many steps in this invocation (checkpointed; the LR '
                        'schedule still spans --steps): train in chunks with --resume')
    p.add_argument('--batch-size', type=int, help='override batch_size (per process)')
    p.add_argument('--device', help='cpu | cuda | cuda:N (default: cuda when available)')
    p.add_argument('--resume', action='store_true',
                   help='continue from out_dir/last.safetensors + train_state.pt (same step, '
                        'optimizer state, LR schedule and data order)')
    p.add_argument('--init-from', metavar='CHECKPOINT',
                   help="start from this checkpoint's weights ('shipped' = the packaged model): "
                        'fine-tune instead of training from scratch (overrides init_from)')
    p.add_argument('--num-workers', type=int, help='override data loader workers')
    add_threads_argument(p, training=True)
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import os
    import sys

    if args.threads:   # before torch is imported (by training): it reads the wait policy once
        from ..cpu_threads import configure
        configure(args.threads)
    from ..devices import training_device
    from ..training.config import TrainConfig
    from ..training.trainer import train
    try:   # a bad config or device is the user's to fix: say so, no traceback
        cfg = TrainConfig.from_yaml(args.config, out_dir=args.out_dir, steps=args.steps,
                                    batch_size=args.batch_size, num_workers=args.num_workers,
                                    init_from=args.init_from)
        device = str(training_device(args.device))
    except (ValueError, RuntimeError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    summary = train(cfg, resume=args.resume, device=device, max_steps=args.max_steps,
                    progress=not args.no_progress)
    if int(os.environ.get('RANK', '0')) == 0:
        print(json.dumps(summary, indent=2, default=str))
        print(f'checkpoint: {cfg.out_dir}/last.safetensors')
    return 0
