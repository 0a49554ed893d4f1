"""``weather-restore bag IN OUT``: restore every camera of a rosbag2 offline (no ROS needed)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from ..engine_settings import add_engine_arguments
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
    add_engine_arguments(p, defaults={'warmup': False})   # offline: no first frame to make fast
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engine_settings import settings_from_args
    settings = settings_from_args(args)
    settings.configure_threads()   # before torch is imported: it reads the wait policy once
    from ..rosbag.accounting import AccountingError
    from ..rosbag.restore_bag import BagError, RestoreOptions, restore_bag
    from ..rosbag.topics import TopicPlanError

    options = RestoreOptions(
        engine=settings, topics=args.topics, storage=args.storage,
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
