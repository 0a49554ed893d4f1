"""``weather-restore info``: what this installation has and can do."""
from __future__ import annotations

import importlib
import platform


def register(sub) -> None:
    p = sub.add_parser('info', help='versions, devices, model configs and weights',
                       description='Print versions, the compute devices, the shipped model and '
                                   'its prior encoder, whether the encoder weights are present, and the cost of '
                                   'each model config.')
    p.add_argument('--checkpoint', help='describe this checkpoint instead of the shipped one')
    p.add_argument('--clip-model', default='ViT-B-32',
                   help='also check the weights of this open_clip model (default ViT-B-32)')
    p.add_argument('--clip-pretrained', default='openai')
    p.add_argument('--clip-cache-dir')
    p.add_argument('--no-flops', action='store_true', help='skip the GFLOPs count (faster)')
    p.set_defaults(func=run)


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - report anything that breaks the import
        return f'not available ({type(exc).__name__})'
    return getattr(mod, '__version__', 'installed')


def run(args) -> int:
    import torch

    from .. import __version__
    from ..checkpoint import CheckpointError, SHIPPED_MODEL, read_metadata
    from ..checkpoint import ClipInfo
    from ..encoders import clip_weights_status
    from ..encoders.timm_encoder import PRETRAINED_TIMM, weights_status
    from ..factory import TIMM_PREFIX
    from ..model.config import CONFIGS
    from ..model.profile import count_parameters, gflops, gflops_per_megapixel
    from ..model.restorer import WeatherRestorer

    print(f'weather_restore_ros {__version__}   Python {platform.python_version()}   '
          f'{platform.machine()}')
    for mod in ('torch', 'torchvision', 'open_clip', 'timm', 'numpy', 'cv2', 'safetensors', 'rosbags',
                'rclpy', 'vision_msgs.msg'):
        print(f'  {mod:16} {_version(mod)}')
    print('\ndevices')
    print(f'  cpu              {torch.get_num_threads()} threads')
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            print(f'  cuda:{i}           {prop.name}, {prop.total_memory / 2**30:.1f} GiB, '
                  f'CUDA {torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}')
    else:
        print(f'  cuda             not available (torch built with CUDA {torch.version.cuda})')

    path = args.checkpoint or SHIPPED_MODEL
    print(f'\ncheckpoint         {path}')
    try:
        meta = read_metadata(path)
    except CheckpointError as exc:
        print(f'  not usable: {exc}')
    else:
        clip = meta['clip'] if isinstance(meta['clip'], dict) else {}
        try:
            info = ClipInfo.from_dict(clip)
        except (TypeError, ValueError) as exc:
            info, where = None, f'unreadable encoder metadata ({exc})'
        else:
            where = (weights_status(info.model_name[len(TIMM_PREFIX):]) if info.kind == 'timm'
                     else 'weights inside the checkpoint' if info.embedded
                     else clip_weights_status(info.model_name, info.pretrained,
                                              args.clip_cache_dir))
        training = meta.get('training') or {}
        print(f'  format           {meta["format_version"]}')
        print(f'  model config     {(meta["model_config"] or {}).get("name", "?")}')
        print(f'  classes          {", ".join(map(str, meta["class_names"]))}')
        print(f'  prior encoder    {info.describe() if info else clip}: {where}')
        for key in ('steps', 'wall_time_s', 'val_psnr', 'val_ssim', 'data'):
            if key in training:
                print(f'  {key:16} {training[key]}')
    print(f'\nCLIP {args.clip_model} / {args.clip_pretrained}: '
          f'{clip_weights_status(args.clip_model, args.clip_pretrained, args.clip_cache_dir)}')
    for name in PRETRAINED_TIMM:
        print(f'encoder {TIMM_PREFIX}{name}: {weights_status(name)}')

    print('\nmodel configs   params (inference / with SRD head)' +
          ('' if args.no_flops else '   GFLOPs/MP   GFLOPs @640x480'))
    for name, cfg in CONFIGS.items():
        with torch.device('meta'):  # shapes only: no weight init, no memory
            model = WeatherRestorer(cfg)
        params = (f'{count_parameters(model, inference_only=True):>12,d} / '
                  f'{count_parameters(model):>11,d}')
        if args.no_flops:
            print(f'  {name:8} {params}')
        else:
            print(f'  {name:8} {params}   {gflops_per_megapixel(cfg):9.2f}   '
                  f'{gflops(cfg, 480, 640):15.2f}')
    print('  (TransWeather: 38 M params, 59.5 GFLOPs @640x480; '
          '`weather-restore bench` measures time)')
    return 0
