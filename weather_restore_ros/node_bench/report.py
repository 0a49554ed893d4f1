"""The node benchmark's table (what a person compares) from its JSON (what a script keeps)."""
from __future__ import annotations

COLUMNS = ('rate Hz', 'sent', 'deliv', 'deliv Hz', 'drop %', 'lost', 'repl', 'e2e p50', 'p95',
           'max',
           'node p50', 'p95', 'jitter', 'node CPU %', 'RSS MB')


def _f(v, fmt='{:.1f}') -> str:
    return '-' if v is None else fmt.format(v)


def run_row(r: dict) -> list[str]:
    e, n = r['e2e_ms'], r['node_ms']
    return [f'{r["rate_hz"]:g}', str(r['sent']), str(r['delivered']), _f(r['delivered_hz']),
            _f(r['dropped_pct']), str(r['lost_before_node']), str(r['node_counts']['dropped']),
            _f(e['p50'], '{:.0f}'), _f(e['p95'], '{:.0f}'),
            _f(e['max'], '{:.0f}'), _f(n['p50'], '{:.0f}'), _f(n['p95'], '{:.0f}'),
            _f(r['jitter_ms']), _f(r['node_cpu_pct'], '{:.0f}'), _f(r['node_rss_max_mb'],
                                                                      '{:.0f}')]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]
    lines = ['  '.join(c.rjust(w) for c, w in zip(COLUMNS, widths))]
    lines += ['  '.join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
    return '\n'.join(lines)


def format_report(report: dict) -> str:
    h = report['config']
    size = f'{h["size"][0]}x{h["size"][1]}' if h['size'] else 'compressed'
    lines = [
        f'node benchmark: {h["cameras"]} camera(s), {size}, {h["frames"]}, '
        f'sha256 {h["frames_sha256"][:12]}',
        f'  model {h["checkpoint"]} on {h["device"]}, threads {h["threads"]}; '
        + ('' if report.get('soak') else f'{h["duration_s"]:g} s per run, a fresh node each; ')
        + f'machine: {h["machine"]}',
        f'  load: {h["load_processes"]} busy-loop process(es) started by the benchmark; input '
        f'QoS {h["qos"]}' + (f', DDS profile {h["dds_profile"]}' if h['dds_profile'] else '')]
    runs = report.get('runs', []) + report.get('peak', {}).get('runs', [])
    if runs:
        others = [r['others_cores'] for r in runs if r.get('others_cores') is not None]
        if others:
            lines.append(f'  every other process kept {min(others):.2f}-{max(others):.2f} '
                         'cores busy during the runs (player, subscriber and load excluded)')
        lines.append('  e2e = player publish -> subscriber receive of the restored frame; node '
                     '= its receive -> publish (/diagnostics); jitter = std of output '
                     'intervals; all ms; rates per camera. Dropped = lost before the node '
                     '(best-effort transport) + repl (replaced: the node keeps only the newest '
                     'frame of a camera while it is busy)')
        lines.append(table([run_row(r) for r in runs]))
    peak = report.get('peak')
    if peak:
        if peak['rate_hz'] is None:
            lines.append(f'peak: no rate tried ({", ".join(f"{t:g}" for t in peak["tried_hz"])}'
                         f' Hz) had <= {peak["max_dropped_pct"]:g} % dropped')
        else:
            lines.append(f'peak throughput: {peak["rate_hz"]:g} Hz per camera with <= '
                         f'{peak["max_dropped_pct"]:g} % dropped (tried '
                         f'{", ".join(f"{t:g}" for t in peak["tried_hz"])} Hz)')
    soak = report.get('soak')
    if soak and soak['samples']:
        first, last = soak['samples'][0], soak['samples'][-1]
        lines.append(f'soak: RSS {_f(first["rss_mb"])} MB at {first["t_s"]:g} s, '
                     f'{_f(last["rss_mb"])} MB at {last["t_s"]:g} s')
    if soak:
        lines.append(
            f'soak: {soak["minutes"]:g} min at {soak["rate_hz"]:g} Hz, {len(soak["samples"])} '
            f'samples; slopes (first interval left out): RSS '
            f'{_f(soak["rss_slope_mb_per_min"], "{:+.2f}")} MB/min, e2e p50 '
            f'{_f(soak["e2e_p50_slope_ms_per_min"], "{:+.2f}")} ms/min')
    return '\n'.join(lines)
