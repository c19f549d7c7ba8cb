"""How the protocol chooses a winner: a search trial's score, the ranking, and the selection entries it records.

Pure functions of stored summaries; the stages (stages.py) call them and protocol.json records what
they return. RULES holds each rule as the sentence the record and the dry run print.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

RULES = {
    "score": "a search trial's score is the mean over its tuning seeds of each seed's final evaluation return "
    "(the mean parameters, or PPO's actor, evaluated at the last log point: summary final_eval_return)",
    "diverged": "a search trial with a diverged seed, a seed without a final return, or a program that could not "
    "fit the device even at its smallest split ranks below every other (counted in n_diverged and n_failed); if "
    "all did, the first in search order is re-run",
    "ties": "equal scores: the trial sampled first (search order) wins; the others are listed in tied_with",
    "reselect": "with reselect_top m: the m search trials ranked best by the rules above re-run on the "
    "re-selection seeds (fresh: neither tuning nor final seeds); the winner is the one with the best mean final "
    "evaluation return over those seeds (diverged last; ties: the better search rank)",
    "matched": "matched stage: per env, EGGROLL re-run with every hyperparameter of OpenES's final trial that "
    "EGGROLL has (its rank stays the budget's) and OpenES with EGGROLL's, on the final seeds",
}

Pair = tuple[str, str]  # (env, algorithm)


@dataclass(frozen=True)
class Candidate:
    """A finished (or failed) search trial and its score (None: diverged, no final return, or failed)."""

    point: dict
    trial_id: str
    score: float | None
    failed: str | None = None  # why it could not run (a memory failure), when it did not


def score(summary: dict) -> float | None:
    """A search trial's score (RULES['score']); None when a seed diverged or has no final return."""
    finals = list(summary["final_eval_return"].values())
    if "diverged" in summary.get("seed_status", {}).values() or any(v is None for v in finals) or not finals:
        return None
    return sum(finals) / len(finals)


def ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """`candidates` best first (RULES): by score, those without one last, ties in the given order."""
    return sorted(candidates, key=lambda c: (c.score is None, -(c.score or 0.0)))


def select(
    pair: Pair, candidates: Sequence[Candidate], seeds: str = "tuning seeds", order: str = "search order"
) -> dict[str, Any]:
    """The selection entry of one pair (RULES): the winner among `candidates` (in `order`), scored on `seeds`."""
    env, algo = pair
    scored = [c for c in candidates if c.score is not None]
    n_unscored = len(candidates) - len(scored)
    n_failed = sum(c.failed is not None for c in candidates)
    if not scored:
        winner, best = candidates[0], None
        tied, note = [], f"all {len(candidates)} trials diverged or failed: the first in {order} is re-run"
    else:
        best = max(c.score for c in scored)
        winners = [c for c in scored if c.score == best]
        winner, tied = winners[0], [c.trial_id for c in winners[1:]]
        note = f"best of {len(candidates)} by mean final return over the {seeds}"
        if tied:
            note += f"; tied with {len(tied)} other(s): the first in {order} wins"
        if n_unscored - n_failed:
            note += f"; {n_unscored - n_failed} diverged trial(s) ranked last"
        if n_failed:
            note += f"; {n_failed} trial(s) that could not fit the device ranked last"
    return {
        "env": env,
        "algo": algo,
        "trial_id": winner.trial_id,
        "score": best,
        "n_candidates": len(candidates),
        "n_diverged": n_unscored - n_failed,
        "n_failed": n_failed,
        "tied_with": tied,
        "note": note,
        "point": winner.point,
    }


def reselect(pair: Pair, top: Sequence[Candidate], again: Sequence[Candidate]) -> dict[str, Any]:
    """The selection entry after re-selection: `top`, the best search candidates (best first), re-run as `again`.

    The winner is the best of `again` (RULES['reselect']); the entry names its search trial and tuning
    score like a plain selection, and `reselect` holds every re-run's scores.
    """
    best = select(pair, again, "re-selection seeds", "search rank")
    ids = [c.trial_id for c in again]
    winner = top[ids.index(best["trial_id"])]
    note = f"the {len(top)} best search trials re-run on fresh seeds: {best['note']}"
    return {
        **best,
        "trial_id": winner.trial_id,
        "score": winner.score,
        "note": note,
        "point": winner.point,
        "tied_with": [top[ids.index(t)].trial_id for t in best["tied_with"]],
        "reselect": {
            "trial_id": best["trial_id"],
            "score": best["score"],
            "candidates": [
                {
                    "search_trial_id": t.trial_id,
                    "tuning_score": t.score,
                    "trial_id": a.trial_id,
                    "score": a.score,
                }
                for t, a in zip(top, again)
            ],
        },
    }


def selection_entry(
    pair: Pair, history: list[Candidate], top: list[Candidate], again: list[Candidate] | None
):
    """A pair's selection entry: by tuning score, or by re-selection score; with every search trial's score."""
    entry = select(pair, history) if again is None else reselect(pair, top, again)
    return {
        **entry,
        "n_candidates": len(history),
        "n_diverged": sum(c.score is None and c.failed is None for c in history),
        "n_failed": sum(c.failed is not None for c in history),
        "search": [
            {"trial_id": c.trial_id, "score": c.score, **({"failed": c.failed} if c.failed else {})}
            for c in history
        ],
    }
