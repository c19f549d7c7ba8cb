"""`esbench render`: a video of a stored trial's policy."""

from __future__ import annotations


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add("render", help="a video (GIF or MP4) of a stored trial's policy")
    p.add_argument("results", help="a results folder")
    p.add_argument("trial_id")
    p.add_argument("--seed", type=int, default=None, help="which seed's policy (default: the trial's first)")
    p.add_argument("--out", default="clip.gif", help="a .gif or .mp4 path")
    p.add_argument("--episode", type=int, default=0, help="which evaluation episode (its key), default 0")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--fps", type=float, default=25)
    p.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    p.set_defaults(func=handle)


def handle(args) -> int:
    from esbench import video

    video.main(
        args.results,
        args.trial_id,
        seed=args.seed,
        out=args.out,
        max_steps=args.max_steps,
        fps=args.fps,
        episode=args.episode,
        every=args.every,
    )
    return 0
