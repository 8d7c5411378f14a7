"""``actviz tcav``: is the model's answer for a class sensitive to a concept shown by examples
(``actviz.tcav``, TCAV)? Writes ``tcav.json`` (``score``, ``p_value``, ``runs``, ``words``, see
``actviz.concepts.result``) and ``tcav.png`` (the runs' scores against random directions)."""

from __future__ import annotations

import argparse

from .common import model_options, open_chosen_model, say
from .concepts import common_settings, images_options, progress_bar, run_options


def add(commands) -> None:
    sub = commands.add_parser("tcav", help="test whether the model's answer for a class depends on a concept you show by examples (TCAV)")
    model_options(sub)
    images_options(sub)
    sub.add_argument("--concept", required=True, help="a folder of images showing the concept")
    sub.add_argument("--random", required=True, help="a folder of other images (random counterexamples)")
    sub.add_argument("--name", help="the concept's name in the words (default: the concept folder's name)")
    sub.add_argument("--runs", type=int, default=10, help="random sets, and as many random-vs-random tests (default 10)")
    sub.add_argument("--examples", type=int, default=100, help="concept images used at most (default 100)")
    sub.add_argument("--alpha", type=float, default=0.05, help="significance level of the test (default 0.05)")
    run_options(sub)


def run(args: argparse.Namespace) -> int:
    from ..concepts.tcav import tcav
    from ..dataset.sources import open_source
    from ..draw.export import OutputFolder

    settings = common_settings(args)
    concept, random = open_source(args.concept, labels="none"), open_source(args.random, labels="none")  # checked before the model is loaded
    opened = open_chosen_model(args)
    progress, close = progress_bar("tcav")
    try:
        result = tcav(opened, concept=concept, random=random, concept_name=args.name or _folder_name(args.concept), runs=args.runs,
                      examples=args.examples, alpha=args.alpha, labels=args.labels, trust=args.trust_model, progress=progress, **settings)
    finally:
        close()
    with OutputFolder(args.out) as out:
        for name, data in result.files().items():
            out.write(name, data)
    for note in result.notes:
        say(f"note: {note}")
    say(result.words)
    say(f"tcav.json and tcav.png written to {args.out}")
    return 0


def _folder_name(path: str) -> str:
    from pathlib import Path

    return Path(path).resolve().name or str(path)
