"""Re-ranking molgen's refined docking poses, chosen on CASF-2016's validation part.

`dock` ranks the poses its Monte-Carlo chains end in by Vina's score.  When it misses at
top-1 while one of its poses is within 2 Å, the right pose often trails by a few tenths of
a kcal/mol.  This script asks, offline, whether another ranking of the same poses does
better: it reads the `candidates` that benchmarks/docking.py records for molgen methods
(every refined pose before the ranking: Vina's score, the five unweighted intermolecular
terms, the intramolecular energy, RMSDs to the crystal and between poses) and compares

  vina          the ranking `dock` uses: Vina's score, best first
  consensus     Vina's score − λ · log(1 + the poses within c Å of this one): many chains
                ending in one pose as evidence of a broad funnel (c, λ from a grid)
  reweighted    a linear score over the terms, the intramolecular energy and the two
                consensus counts (and, in records of `docking.py --rescore`, the two
                vinardo scores), fitted as a conditional logit (the softmax over a
                complex's poses should put its mass on the poses within 2 Å), its weights
                shrunk toward Vina's own ranking with a penalty α from a grid
  vinardo       records of `docking.py --rescore`: the pose's score by Vina's other function,
                vinardo (Quiroga & Villarreal 2016), as it is or after vinardo's own local
                optimisation (the setting); the pose returned and judged stays the refined one
  blend         (1 − a) · Vina's score + a · vinardo's optimised score, a from a grid

Protocol: the rankings' settings (c, λ, α) are chosen by 5-fold cross-validation over the
validation complexes (`--fit`, a per-complex records file of `--part valid`), the chosen
setting is refitted on all of them, and only then applied to the test records (`--test`),
which took no part: top-1 and top-5 success (RMSD < 2 Å; top-5 over distinct poses, a pose
within 1 Å of a better one left out, as `dock` does) per set, paired against Vina's ranking.

    python benchmarks/docking_rerank.py --fit ../runs/dockval/cand_valid_complexes.json \\
        --test ../runs/dockval/cand_test_complexes.json --out benchmarks/results/docking_rerank.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

SUCCESS = 2.0
DISTINCT = 1.0
FOLDS = 5
CONSENSUS_RADII = (1.0, 2.0)
CONSENSUS_WEIGHTS = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5)
SHRINKAGE = (0.01, 0.1, 1.0, 10.0)
VINARDO = ("vinardo", "vinardo_opt")  # as it is, after its own local optimisation
BLEND = (0.25, 0.5, 0.75)


class Complex:
    """One complex's candidates: scores [n], features [n, F], RMSD to the crystal [n] and
    between poses [n, n]."""

    def __init__(self, key: str, record: dict):
        c = record["candidates"]
        self.key, self.set = key, record["set"]
        self.scores = np.asarray(c["scores"], dtype=float)
        self.rmsd = np.asarray(c["rmsd"], dtype=float)
        n = len(self.scores)
        self.pair = np.zeros((n, n))
        self.pair[np.triu_indices(n, 1)] = c["pair_rmsd"]
        self.pair += self.pair.T
        support = [np.log1p((self.pair < r).sum(1) - 1) for r in CONSENSUS_RADII]
        self.support = dict(zip(CONSENSUS_RADII, support))
        self.vinardo = {k: np.asarray(c[k], dtype=float) for k in VINARDO if k in c}
        self.features = np.column_stack([self.scores, np.asarray(c["inter_terms"]),
                                         np.asarray(c["intra"]), *support, *self.vinardo.values()])

    def ranked(self, value: np.ndarray) -> list[int]:
        """Distinct poses, best (lowest value) first, a pose within DISTINCT Å of a better
        one left out."""
        kept: list[int] = []
        for i in np.argsort(value, kind="stable"):
            if all(self.pair[i, j] >= DISTINCT for j in kept):
                kept.append(int(i))
        return kept

    def success(self, value: np.ndarray) -> tuple[bool, bool]:
        order = self.ranked(value)
        return bool(self.rmsd[order[0]] < SUCCESS), bool((self.rmsd[order[:5]] < SUCCESS).any())


def load(paths: list[Path]) -> list[Complex]:
    """One Complex per complex with candidates: where a file holds several runs of one
    complex (methods renamed between runs), the last one listed."""
    out: dict[str, Complex] = {}
    for path in paths:
        for key, record in json.loads(path.read_text())["complexes"].items():
            if "candidates" in record:
                out["/".join(key.split("/")[:2])] = Complex(key, record)  # set/pdb/method
    return list(out.values())


# --------------------------------------------------------------------------- the rankings

def consensus(setting):
    radius, weight = setting
    return lambda c: c.scores - weight * c.support[radius]


def fit_reweighted(complexes: list[Complex], alpha: float) -> np.ndarray:
    """Weights [F] of the linear score (lower is better) over standardised features:
    a conditional logit on the complexes with a pose within 2 Å, plus alpha · ‖w − w_vina‖²,
    w_vina the weights that reproduce Vina's ranking (its score alone)."""
    x = [torch.tensor(c.features) for c in complexes if (c.rmsd < SUCCESS).any()]
    good = [torch.tensor(c.rmsd < SUCCESS) for c in complexes if (c.rmsd < SUCCESS).any()]
    scale = torch.cat(x).std(0).clamp_min(1e-6)
    prior = torch.zeros(x[0].shape[1], dtype=torch.float64)
    prior[0] = scale[0] / 0.6  # Vina's score at a softmax temperature of 0.6 kcal/mol
    w = prior.clone().requires_grad_()
    optim = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def loss():
        optim.zero_grad()
        total = alpha * (w - prior).pow(2).sum()
        for xc, gc in zip(x, good):
            logp = torch.log_softmax(-(xc / scale) @ w, 0)
            total = total - torch.logsumexp(logp[gc], 0) / len(x)
        total.backward()
        return total

    optim.step(loss)
    return (w.detach() / scale).numpy()


def reweighted(weights: np.ndarray):
    return lambda c: c.features @ weights


def rate(complexes: list[Complex], rank) -> tuple[int, int]:
    hits = [c.success(rank(c)) for c in complexes]
    return sum(h[0] for h in hits), sum(h[1] for h in hits)


def cross_validated(complexes: list[Complex], family: str, seed: int = 0) -> dict:
    """Top-1 successes of the family when its setting is chosen on 4/5 of the complexes and
    applied to the fifth, over 5 folds (the settings chosen in each fold listed)."""
    folds = np.random.default_rng(seed).permutation(len(complexes)) % FOLDS
    hits, chosen = 0, []
    for k in range(FOLDS):
        train = [c for c, f in zip(complexes, folds) if f != k]
        held = [c for c, f in zip(complexes, folds) if f == k]
        setting = choose(train, family)
        chosen.append(setting if family != "reweighted" else setting[0])
        hits += rate(held, ranking(family, setting))[0]
    return {"top1": hits, "n": len(complexes), "settings_per_fold": chosen}


def choose(complexes: list[Complex], family: str):
    """The family's setting with the most top-1 successes on complexes (ties: the first)."""
    if family == "vina":
        return None
    if family == "consensus":
        grid = [(r, w) for r in CONSENSUS_RADII for w in CONSENSUS_WEIGHTS]
        return max(grid, key=lambda s: rate(complexes, consensus(s))[0])
    if family in ("vinardo", "blend"):
        grid = VINARDO if family == "vinardo" else BLEND
        return max(grid, key=lambda s: rate(complexes, ranking(family, s))[0])
    fits = [(a, fit_reweighted(complexes, a)) for a in SHRINKAGE]
    return max(fits, key=lambda s: rate(complexes, reweighted(s[1]))[0])


def ranking(family: str, setting):
    """The ranking value (lower is better) per complex of a family at a setting."""
    if family == "vina":
        return lambda c: c.scores
    if family == "consensus":
        return consensus(setting)
    if family == "vinardo":
        return lambda c: c.vinardo[setting]
    if family == "blend":
        return lambda c: (1 - setting) * c.scores + setting * c.vinardo["vinardo_opt"]
    return reweighted(setting[1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fit", type=Path, nargs="+", required=True, help="validation records")
    p.add_argument("--test", type=Path, nargs="*", default=[], help="test records (applied once)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    valid = load(args.fit)
    rescored = all(len(c.vinardo) == len(VINARDO) for c in valid)
    families = ("vina", "consensus", "reweighted") + (("vinardo", "blend") if rescored else ())
    report = {"validation": {"n": len(valid)}, "cross_validated": {}, "chosen": {}, "test": {}}
    for family in families:
        report["validation"][family] = cv = cross_validated(valid, family)
        print(f"validation, 5-fold: {family:10s} top-1 {cv['top1']}/{cv['n']}  settings {cv['settings_per_fold']}")
    chosen = {family: choose(valid, family) for family in families}  # refitted on all of valid
    for family, setting in chosen.items():
        report["chosen"][family] = (setting if family != "reweighted" else
                                    {"alpha": setting[0], "weights": setting[1].tolist()})
    test = load(args.test)
    for set_ in sorted({c.set for c in test}):
        members = [c for c in test if c.set == set_]
        rows = {}
        for family in families:
            hits = [c.success(ranking(family, chosen[family])(c)) for c in members]
            rows[family] = {"top1": sum(h[0] for h in hits), "top5": sum(h[1] for h in hits),
                            "per_complex": [h[0] for h in hits]}
        base = rows["vina"]["per_complex"]
        for family in families:
            mine = rows[family]["per_complex"]
            rows[family]["wins_vs_vina_ranking"] = sum(a and not b for a, b in zip(mine, base))
            rows[family]["losses_vs_vina_ranking"] = sum(b and not a for a, b in zip(mine, base))
            print(f"test {set_} (n = {len(members)}): {family:10s} top-1 {rows[family]['top1']}, "
                  f"top-5 {rows[family]['top5']}; against Vina's ranking +{rows[family]['wins_vs_vina_ranking']} "
                  f"−{rows[family]['losses_vs_vina_ranking']}")
        report["test"][set_] = {"n": len(members), "names": [c.key for c in members], **rows}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
