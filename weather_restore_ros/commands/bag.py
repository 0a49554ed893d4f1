"""``weather-restore bag IN OUT``: restore every camera of a rosbag2 offline (no ROS needed)."""
from __future__ import annotations

import sys

from . import add_backend_arguments


def register(sub) -> None:
    from ..cpu_threads import add_threads_argument
    p = sub.add_parser(
        'bag', help='restore the camera topics of a rosbag2 into a new bag (offline)',
        description=(
            'Read a rosbag2 (sqlite3 or MCAP, detected) and write a new one in which every '
            'image topic (sensor_msgs/Image or CompressedImage; all, or --topics) gets the '
            "node's outputs beside it: <ns>/image_restored, <ns>/weather (vision_msgs/"
            'Classification), <ns>/weather/label, <ns>/weather/label_info and with --mask '
            '<ns>/degradation_mask, each with the input header at the input bag timestamp. '
            'All other topics (and the input images, unless --drop-input-images) are copied '
            'byte for byte with their QoS and type hash. The prior is refreshed on the bag '
            'clock, so the result does not depend on how fast this machine is. A per-topic '
            'table accounts for every message; a JSON summary goes to <OUT>_summary.json '
            'beside OUT (a rosbag2 folder holds only bag files).'),
        epilog='example: weather-restore bag recorded_bag restored_bag --mask --storage mcap')
    p.add_argument('input', metavar='IN', help='input bag folder (or a .mcap/.db3 file)')
    p.add_argument('output', metavar='OUT', help='output bag folder (must not exist)')
    p.add_argument('--topics', nargs='+', metavar='TOPIC',
                   help='image topics to restore (default: every image topic)')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap',
                   help='output storage (default mcap)')
    p.add_argument('--checkpoint', help='checkpoint (.safetensors); default: the shipped model')
    p.add_argument('--device', default='auto', help='auto | cpu | cuda | cuda:N')
    p.add_argument('--precision', default='auto', choices=('auto', 'fp32', 'fp16', 'bf16'))
    p.add_argument('--classifier', default='head', choices=('head', 'zero_shot'))
    p.add_argument('--skip-clear-threshold', type=float, default=0.0, metavar='P',
                   help='pass frames through when the prior says clear with confidence >= P '
                        '(0 = never; node parameter skip_clear_threshold)')
    p.add_argument('--no-harm-guard', action='store_true',
                   help='write the raw model output even where it sprayed colour speckle '
                        '(default: the input is written there, and the frame is counted as '
                        'unsafe; node parameter harm_guard)')
    p.add_argument('--refresh-frames', type=int, default=30, metavar='N',
                   help='re-run CLIP every N frames per camera (0 = off)')
    p.add_argument('--refresh-seconds', type=float, default=2.0, metavar='S',
                   help='re-run CLIP when the prior is S seconds old, in bag time (0 = off)')
    p.add_argument('--scene-cut', type=float, default=0.12, metavar='D',
                   help='re-run CLIP when the scene changes by D (0 = off)')
    p.add_argument('--ema', type=float, default=0.0, help='prior smoothing (node prior.ema)')
    p.add_argument('--max-pixels', type=int, default=1920 * 1080,
                   help='larger frames are tiled or downscaled')
    p.add_argument('--oversize', choices=('tile', 'downscale'), default='tile')
    p.add_argument('--output-encoding', choices=('same', 'rgb8', 'bgr8'), default='same',
                   help="image_restored encoding (same: the input's; bgr8 for compressed input)")
    p.add_argument('--mask', action='store_true', help='also write <ns>/degradation_mask')
    p.add_argument('--compressed', action='store_true',
                   help='also write <ns>/image_restored/compressed (JPEG)')
    p.add_argument('--jpeg-quality', type=int, default=90)
    p.add_argument('--drop-input-images', action='store_true',
                   help='leave the restored input image topics out of the output bag')
    p.add_argument('--summary', metavar='JSON', help='summary path (default <OUT>_summary.json)')
    p.add_argument('--overwrite', action='store_true', help='replace an existing OUT bag')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    add_threads_argument(p)
    add_backend_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cpu_threads import configure
    configure(args.threads)   # before torch is imported: it reads the wait policy once
    from ..rosbag.accounting import AccountingError
    from ..rosbag.restore_bag import BagError, RestoreOptions, restore_bag
    from ..rosbag.topics import TopicPlanError

    options = RestoreOptions(
        topics=args.topics, storage=args.storage, checkpoint=args.checkpoint,
        device=args.device, precision=args.precision, classifier=args.classifier,
        backend=args.backend, onnx_dir=args.onnx_dir,
        skip_clear_threshold=args.skip_clear_threshold, harm_guard=not args.no_harm_guard,
        refresh_frames=args.refresh_frames,
        refresh_seconds=args.refresh_seconds, scene_cut=args.scene_cut, ema=args.ema,
        max_pixels=args.max_pixels, oversize=args.oversize,
        output_encoding=args.output_encoding, mask=args.mask, compressed=args.compressed,
        jpeg_quality=args.jpeg_quality, keep_input_images=not args.drop_input_images,
        overwrite=args.overwrite, summary=args.summary, progress=not args.no_progress)
    try:
        summary = restore_bag(args.input, args.output, options)
    except (BagError, TopicPlanError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    except AccountingError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(summary.accounting.table())
    fps = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    print(f'\n{summary.frames} frames restored in {summary.seconds:.1f} s ({fps:.1f} frames/s) '
          f'-> {summary.output} ({summary.output_storage}); summary: {summary.summary_path}')
    return 0
