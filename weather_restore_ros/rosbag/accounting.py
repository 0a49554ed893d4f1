"""Per-topic counters for ``weather-restore bag``: every input message is accounted for.

Why: a tool that silently drops frames it cannot decode produces a bag that *looks* complete.
Each input message gets exactly one fate per role, and the run fails when the numbers do not add
up (against the input's own message counts, and against what was actually written):

* a restored image topic: ``restored + skipped == read``; restored frames with an input
  warning or after a conversion (``frame_input``: zero stamp, greyscale JPEG, ...) are counted
  by key as well, beside the count; ``copied`` is ``read`` when the input
  images are kept in the output (the default) and 0 with ``--drop-input-images``;
* any other topic: ``copied + skipped == read``;
* ``read`` equals the message count in the input's metadata;
* every output topic holds as many messages as its input produced.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..imaging import REASONS as IMAGE_REASONS


class AccountingError(RuntimeError):
    """The counts do not add up: something was lost or invented. The message lists what."""


# Skip reasons, a short key (table, JSON) each: imaging's (the node counts the same ones) plus
# the bag-only ones.
REASONS = {
    **IMAGE_REASONS,
    'undeserializable': 'the serialized message does not deserialize',
    'no_definition': 'no message definition in the bag and the type is unknown here',
}


@dataclass
class TopicAccount:
    topic: str
    msgtype: str
    role: str                      # 'restore' or 'copy'
    expected: int                  # message count in the input's metadata
    read: int = 0
    copied: int = 0
    restored: int = 0
    clear_passthrough: int = 0     # restored frames passed through (skip-when-clear)
    invalid_output: int = 0        # restored frames written unrestored: non-finite model output
    unsafe_output: int = 0         # restored frames with the input in part (the harm guard)
    skipped: Counter = field(default_factory=Counter)
    input_warnings: Counter = field(default_factory=Counter)   # frame_input.WARNINGS keys
    conversions: Counter = field(default_factory=Counter)      # frame_input.CONVERSIONS keys
    examples: dict[str, str] = field(default_factory=dict)   # reason -> first error message
    weather: Counter = field(default_factory=Counter)
    prior_refreshes: Counter = field(default_factory=Counter)  # why CLIP ran -> frames
    outputs: dict[str, int] = field(default_factory=dict)    # output topic -> expected count

    def skip(self, reason: str, detail: str = '', n: int = 1) -> None:
        self.skipped[reason] += n
        if detail and reason not in self.examples:
            self.examples[reason] = detail

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def problems(self, keep_input: bool = True) -> list[str]:
        p = []
        if self.read != self.expected:
            p.append(f'{self.topic}: read {self.read} messages, the input metadata says '
                     f'{self.expected}')
        if self.role == 'restore':
            if self.restored + self.skipped_total != self.read:
                p.append(f'{self.topic}: restored {self.restored} + skipped '
                         f'{self.skipped_total} != read {self.read}')
            want = self.read if keep_input else 0
            if self.copied != want:
                p.append(f'{self.topic}: copied {self.copied}, expected {want}')
        elif self.copied + self.skipped_total != self.read:
            p.append(f'{self.topic}: copied {self.copied} + skipped {self.skipped_total} '
                     f'!= read {self.read}')
        return p

    def to_dict(self) -> dict:
        return {'type': self.msgtype, 'role': self.role, 'expected': self.expected,
                'read': self.read, 'copied': self.copied, 'restored': self.restored,
                'clear_passthrough': self.clear_passthrough,
                'invalid_output': self.invalid_output, 'unsafe_output': self.unsafe_output,
                'skipped': self.skipped_total, 'skipped_reasons': dict(self.skipped),
                'skip_examples': dict(self.examples),
                'input_warnings': dict(self.input_warnings),
                'conversions': dict(self.conversions), 'weather': dict(self.weather),
                'prior_refreshes': dict(self.prior_refreshes),
                'outputs': dict(self.outputs)}


class Accounting:
    """All topics of one run, in input order."""

    def __init__(self, keep_input: bool = True):
        self.keep_input = keep_input
        self.topics: dict[str, TopicAccount] = {}

    def add(self, account: TopicAccount) -> TopicAccount:
        self.topics[account.topic] = account
        return account

    def __getitem__(self, topic: str) -> TopicAccount:
        return self.topics[topic]

    def problems(self, written: dict[str, int] | None = None) -> list[str]:
        """Every mismatch; ``written`` (output topic -> messages in the output bag) is checked
        against what the inputs say should be there."""
        p = [msg for a in self.topics.values() for msg in a.problems(self.keep_input)]
        if written is not None:
            expected: Counter = Counter()
            for a in self.topics.values():
                if a.copied:
                    expected[a.topic] += a.copied
                for topic, n in a.outputs.items():
                    expected[topic] += n
            for topic in sorted(set(expected) | set(written)):
                if expected[topic] != written.get(topic, 0):
                    p.append(f'output {topic}: wrote {written.get(topic, 0)} messages, '
                             f'expected {expected[topic]}')
        return p

    def check(self, written: dict[str, int] | None = None) -> None:
        problems = self.problems(written)
        if problems:
            raise AccountingError('message accounting does not add up:\n  '
                                  + '\n  '.join(problems))

    def totals(self) -> dict[str, int]:
        t = Counter()
        for a in self.topics.values():
            t.update(read=a.read, copied=a.copied, restored=a.restored,
                     skipped=a.skipped_total, expected=a.expected)
        return dict(t)

    def model_failures(self) -> dict[str, int]:
        """Restored frames the model failed on, over all topics: ``invalid_output`` (written
        unrestored) and ``unsafe_output`` (the harm guard put the input back into part)."""
        return {k: sum(getattr(a, k) for a in self.topics.values())
                for k in ('invalid_output', 'unsafe_output')}

    def table(self) -> str:
        """Plain-text table, one row per input topic, and a total row. ``invalid``: frames
        written unrestored (non-finite model output); ``unsafe``: frames written partly
        unrestored by the harm guard (both are among ``restored``); ``input notes``: restored
        frames a consumer may trip on and those converted, by key (frame_input.WARNINGS,
        CONVERSIONS)."""
        head = ('topic', 'type', 'read', 'copied', 'restored', 'skipped', 'invalid', 'unsafe',
                'why skipped', 'input notes')
        rows = []
        for a in self.topics.values():
            why = ', '.join(f'{k} {v}' for k, v in sorted(a.skipped.items()))
            notes = [f'{k} {v}' for k, v in sorted(a.input_warnings.items())]
            notes += [f'converted: {k} {v}' for k, v in sorted(a.conversions.items())]
            rows.append((a.topic, a.msgtype.split('/')[-1], a.read, a.copied,
                         *((a.restored, a.skipped_total, a.invalid_output, a.unsafe_output)
                           if a.role == 'restore' else ('-', a.skipped_total, '-', '-')),
                         why or '-', ', '.join(notes)))
        t, f = self.totals(), self.model_failures()
        rows.append(('total', '', t.get('read', 0), t.get('copied', 0), t.get('restored', 0),
                     t.get('skipped', 0), f['invalid_output'], f['unsafe_output'], '', ''))
        widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        numeric = {2, 3, 4, 5, 6, 7}

        def fmt(row):
            cells = [str(c).rjust(w) if i in numeric else str(c).ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths))]
            return '  '.join(cells).rstrip()

        rule = '  '.join('-' * w for w in widths)
        return '\n'.join([fmt(head), rule] + [fmt(r) for r in rows[:-1]] + [rule, fmt(rows[-1])])

    def to_dict(self) -> dict:
        return {t: a.to_dict() for t, a in self.topics.items()}
