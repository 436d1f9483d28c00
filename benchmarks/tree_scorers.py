"""Tree scorers for the request path: LightGBM, our QuickScorer, lleaves and treelite.

Compares, on the same inputs and in the same run (issue 12, item 8; ADR 0007):

- ``lightgbm``: ``Booster.predict(X, raw_score=True, num_threads=1)``, the reference;
- ``quickscorer``: ``serving.scoring.trees.CompiledTrees.predict`` on the full matrix (numpy);
- ``partial``: ``serving.scoring.trees.PartialScorer.score``, what the service runs per request:
  the static splits' masks are prepared once per candidate at model load, a request
  evaluates only the splits on request-time features (numba);
- ``lleaves``: the LightGBM model compiled to native code with LLVM (``lleaves.Model``);
- ``treelite-gtil``: treelite's own tree-walking runtime (``treelite.gtil.predict``);
- ``tl2cgen``: the treelite model compiled to C, built into a shared library with gcc and
  loaded with ``tl2cgen.Predictor``.

Every scorer but ``partial`` needs the full ``(rows, features)`` matrix per request; the
``assemble`` row times the least a request would add for it (a copy of a cached static
matrix with the request-time columns written in), so "full-matrix scorer + assemble"
is comparable with ``partial``.

Measured: exactness against ``Booster.predict`` (max absolute difference, bit-identity)
on real candidate matrices and on an adversarial matrix (NaN, zeros, values far outside
training, negative and unknown categories), for the champion and for a same-shaped
model trained to split on the categorical columns (the champion has none); latency of
one call for batches of 1, 150 and 10,000 rows (median and p99, every scorer in turn in
a shuffled order each repeat, the garbage collector off); the time to get from a
LightGBM model file to the first score, each in a fresh process; the packages each adds.

Usage (from the repository root, on a data dir holding a champion, e.g. after ``make run``)::

    .venv/bin/python benchmarks/tree_scorers.py --data-dir data \
        --lleaves-python /path/to/python3.11 \
        --out design_docs/results/tree_scorers.json \
        --markdown design_docs/results/tree_scorers.md

lleaves, treelite and tl2cgen are optional: a scorer whose library is missing is skipped
with a message (``pip install lleaves treelite tl2cgen``; tl2cgen also needs gcc).
lleaves 1.3.0 cannot compile with the llvmlite (0.50) that the locked numba needs; give
``--lleaves-python`` an interpreter with lleaves, lightgbm and llvmlite 0.44 (and, for the
head-to-head rows, numba 0.61 with numpy < 2.3), e.g.::

    python3.11 -m venv /tmp/lleaves-venv
    /tmp/lleaves-venv/bin/pip install numpy==2.2.6 lightgbm==4.7.0 llvmlite==0.44.0 \
        lleaves==1.3.0 numba==0.61.2

and lleaves is measured there, on the same inputs, beside that interpreter's LightGBM and
our partial scorer. ``--render FILE.json`` rewrites ``--markdown`` from an earlier
``--out`` without measuring.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata as md
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCHES = (1, 150, 10_000)
ELSEWHERE = " (lleaves venv)"  # suffix of the scorers measured in the lleaves interpreter
CATEGORICAL = ("user_gender", "user_occupation", "user_zip_region")
# Packages a scorer needs beyond numpy and what it was imported with (pip distributions).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "lightgbm": ("lightgbm",),
    "quickscorer": ("numba", "llvmlite"),
    "partial": ("numba", "llvmlite"),
    "lleaves": ("lleaves", "llvmlite"),
    "treelite-gtil": ("treelite",),
    "tl2cgen": ("tl2cgen", "treelite"),
}


# --------------------------------------------------------------------------- inputs


def load_champion(data_dir: Path) -> Any:
    os.environ["REELRANK_DATA_DIR"] = str(data_dir)
    from reelrank.config import Settings
    from reelrank.registry.models import load_recommender

    recommender, _ = load_recommender(Settings(data_dir=data_dir))
    return recommender


def candidate_matrices(recommender: Any, n_users: int, seed: int) -> list[np.ndarray]:
    """Real ranker inputs: each sampled user's retrieved candidates, featurised exactly as
    ``Recommender.rank`` does (float32, one matrix per user)."""
    from reelrank.models.recommender import feature_matrix
    from reelrank.models.retrieval import retrieve_block

    ids_all = recommender.interactions_.user_ids
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(ids_all, size=min(n_users, len(ids_all)), replace=False))
    block = retrieve_block(
        recommender.sources_, recommender.interactions_, ids, recommender.n_candidates
    )
    X = feature_matrix(
        recommender.layout_,
        block,
        ids,
        recommender.interactions_,
        recommender.feature_provider_,
        recommender.trained_until_,
    )
    X = np.asarray(X, dtype=np.float32)
    cuts = np.flatnonzero(np.diff(block.rows)) + 1
    return [np.ascontiguousarray(part) for part in np.split(X, cuts)]


def adversarial_matrix(X: np.ndarray, categorical: list[int], rows: int, seed: int) -> np.ndarray:
    """Rows the real data rarely holds: NaN (20%), exact zeros (10%), values scaled far
    outside training, and in the categorical columns NaN, negative, fractional and
    unseen codes."""
    rng = np.random.default_rng(seed)
    base = X[rng.integers(0, len(X), rows)].astype(np.float64)
    noise = rng.normal(0.0, 50.0, size=base.shape)
    out = np.where(rng.random(base.shape) < 0.5, base, noise)
    out[rng.random(out.shape) < 0.2] = np.nan
    out[rng.random(out.shape) < 0.1] = 0.0
    for c in categorical:
        out[:, c] = rng.choice(
            [np.nan, -1.0, -0.5, 0.0, 0.7, 1.0, 2.0, 3.0, 5.5, 20.0, 999.0], rows
        )
    return out.astype(np.float32)


def categorical_model(recommender: Any, X: np.ndarray, groups: list[int], seed: int) -> Any:
    """A ranker shaped like the champion (100 trees, 7 leaves, the same 69 features and
    categorical columns) whose labels depend on the categorical columns, so its trees
    split on them (binary objective: lambdarank barely splits on per-user features)."""
    from reelrank.models.rankers import LGBMRanker

    names = list(recommender.layout_.names)
    rng = np.random.default_rng(seed)
    occupation = np.nan_to_num(X[:, names.index("user_occupation")], nan=-1)
    gender = np.nan_to_num(X[:, names.index("user_gender")], nan=-1)
    signal = (
        np.isin(occupation, [1, 4, 7, 11, 18]).astype(float)
        + (gender == 1) * 0.7
        + np.nan_to_num(X[:, names.index("ease_score")], nan=0.0)
        + rng.normal(0, 0.5, len(X))
    )
    y = np.digitize(signal, np.quantile(signal, [0.7, 0.9]))
    ranker = LGBMRanker(objective="binary", min_child_samples=50)
    ranker.fit(X, y, np.asarray(groups), names, [c for c in CATEGORICAL if c in names])
    return ranker.booster_


# --------------------------------------------------------------------------- scorers


@dataclass
class Scorer:
    name: str
    predict: Callable[[np.ndarray], np.ndarray] | None = None  # full matrix -> scores
    skipped: str | None = None
    build_seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def build_scorers(booster: Any, workdir: Path) -> dict[str, Scorer]:
    """Every full-matrix scorer of ``booster`` (``partial`` is built separately)."""
    from serving.scoring.trees import CompiledTrees

    scorers: dict[str, Scorer] = {}
    scorers["lightgbm"] = Scorer(
        "lightgbm", lambda X: booster.predict(X, raw_score=True, num_threads=1)
    )
    started = time.perf_counter()
    compiled = CompiledTrees.from_booster(booster)
    if compiled is None:
        scorers["quickscorer"] = Scorer("quickscorer", skipped="model not compilable")
    else:
        scorers["quickscorer"] = Scorer(
            "quickscorer", compiled.predict, build_seconds=time.perf_counter() - started
        )
    model_file = workdir / f"model-{id(booster)}.txt"
    booster.save_model(str(model_file))

    why_not = lleaves_works()
    if why_not is not None:
        scorers["lleaves"] = Scorer("lleaves", skipped=why_not)
    else:
        import lleaves

        for name, blocksize in lleaves_variants(booster.num_trees()).items():
            started = time.perf_counter()
            model = lleaves.Model(model_file=str(model_file))
            model.compile(raw_score=True, fblocksize=blocksize)
            scorers[name] = Scorer(
                name,
                lambda X, m=model: m.predict(X, n_jobs=1),
                build_seconds=time.perf_counter() - started,
                info={"fblocksize": blocksize},
            )

    try:
        import treelite
        import treelite.gtil
    except ImportError as error:
        scorers["treelite-gtil"] = Scorer("treelite-gtil", skipped=f"not installed ({error})")
        scorers["tl2cgen"] = Scorer("tl2cgen", skipped="treelite not installed")
        return scorers
    started = time.perf_counter()
    tl_model = treelite.frontend.from_lightgbm(booster)
    scorers["treelite-gtil"] = Scorer(
        "treelite-gtil",
        lambda X, m=tl_model: treelite.gtil.predict(m, X, nthread=1, pred_margin=True).ravel(),
        build_seconds=time.perf_counter() - started,
        info={"input_type": tl_model.input_type, "output_type": tl_model.output_type},
    )
    try:
        import tl2cgen
    except ImportError as error:
        scorers["tl2cgen"] = Scorer("tl2cgen", skipped=f"not installed ({error})")
        return scorers
    started = time.perf_counter()
    libpath = workdir / f"model-{id(booster)}.so"
    try:
        tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=str(libpath), params={}, nthread=1)
    except Exception as error:  # no compiler, or a build failure
        scorers["tl2cgen"] = Scorer("tl2cgen", skipped=f"export_lib failed ({error})")
        return scorers
    predictor = tl2cgen.Predictor(str(libpath), nthread=1)
    dtype = predictor.threshold_type

    def tl2cgen_predict(X: np.ndarray, p: Any = predictor, dtype: str = dtype) -> np.ndarray:
        # DMatrix refuses to copy (numpy 2: copy=False), so the input must already be of
        # the model's threshold type.
        dmat = tl2cgen.DMatrix(np.asarray(X, dtype=dtype), dtype=dtype)
        return p.predict(dmat, pred_margin=True).ravel()

    scorers["tl2cgen"] = Scorer(
        "tl2cgen",
        tl2cgen_predict,
        build_seconds=time.perf_counter() - started,
        info={"threshold_type": dtype, "leaf_output_type": predictor.leaf_output_type},
    )
    return scorers


def dynamic_features(recommender: Any) -> np.ndarray:
    return np.asarray(recommender.layout_.request_time)


# --------------------------------------------------------------------------- exactness


def compare(input_name: str, scorer: str, got: np.ndarray, reference: np.ndarray) -> dict:
    diff = np.abs(got - reference)
    return {
        "input": input_name,
        "scorer": scorer,
        "rows": len(got),
        "max_abs_diff": float(np.nanmax(diff)) if len(diff) else 0.0,
        "rows_differing": int((got != reference).sum()),
        "bit_identical": bool(np.array_equal(got, reference)),
        "order_identical": bool(
            np.array_equal(np.argsort(-got, kind="stable"), np.argsort(-reference, kind="stable"))
        ),
    }


def exactness(
    scorers: dict[str, Scorer], partial: Any, dynamic: np.ndarray, inputs: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for input_name, X in inputs.items():
        reference = np.asarray(scorers["lightgbm"].predict(X), dtype=np.float64)  # type: ignore[misc]
        candidates: dict[str, Callable[[np.ndarray], np.ndarray] | None] = {
            n: s.predict for n, s in scorers.items() if n != "lightgbm"
        }
        if partial is not None:
            candidates["partial"] = lambda X: partial.score(
                partial.static_reach(X), np.ascontiguousarray(X[:, dynamic].T)
            )
        for name, predict in candidates.items():
            if predict is None:
                continue
            got = np.asarray(predict(X), dtype=np.float64)
            rows.append(compare(input_name, name, got, reference))
    return rows


# --------------------------------------------------------------------------- latency


def make_requests(
    pool: np.ndarray,
    starts: np.ndarray,
    batch: int,
    seed: int,
    dynamic: np.ndarray,
    static_pool: np.ndarray | None = None,
    n_requests: int = 64,
) -> list[dict[str, np.ndarray]]:
    """Up to ``n_requests`` inputs of ``batch`` rows, each starting at a user's first
    candidate (150 rows ~ one user's candidates); the same for a given seed."""
    offsets = [int(s) for s in starts if s + batch <= len(pool)] or [0]
    rng = np.random.default_rng([seed, batch])
    offsets = [offsets[i] for i in rng.permutation(len(offsets))[:n_requests]]
    requests = []
    for at in offsets:
        X = np.ascontiguousarray(pool[at : at + batch])
        request = {
            "X": X,
            "dynamic": np.ascontiguousarray(X[:, dynamic].T),
            # what a full-matrix scorer would keep per candidate instead of masks
            "static_X": X.copy(),
        }
        if static_pool is not None:
            request["static"] = np.ascontiguousarray(static_pool[:, at : at + batch])
        requests.append(request)
    return requests


def time_calls(
    calls: dict[str, Callable[[dict[str, np.ndarray]], Any]],
    requests: list[dict[str, np.ndarray]],
    repeats: int,
    seed: int,
) -> dict[str, np.ndarray]:
    """Nanoseconds per call; each repeat calls every scorer once, in a shuffled order, on
    the same request; the garbage collector is off while timing."""
    names = list(calls)
    for name in names:  # warm-up (first calls allocate, compiled code is resolved)
        for r in requests[:3]:
            calls[name](r)
    rng = np.random.default_rng([seed, repeats, len(names)])
    times = {n: np.empty(repeats, dtype=np.int64) for n in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for rep in range(repeats):
            request = requests[rep % len(requests)]
            for i in rng.permutation(len(names)):
                name = names[i]
                started = time.perf_counter_ns()
                calls[name](request)
                times[name][rep] = time.perf_counter_ns() - started
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


def summarise(batch: int, times: dict[str, np.ndarray], reference: str = "lightgbm") -> list[dict]:
    ref = float(np.median(times[reference]))
    return [
        {
            "batch": batch,
            "scorer": name,
            "repeats": len(ns),
            "median_us": float(np.median(ns)) / 1e3,
            "p99_us": float(np.percentile(ns, 99)) / 1e3,
            "vs_lightgbm": float(np.median(ns)) / ref,
        }
        for name, ns in times.items()
    ]


def latency(
    scorers: dict[str, Scorer],
    partial: Any,
    dynamic: np.ndarray,
    matrices: list[np.ndarray],
    repeats: dict[int, int],
    seed: int,
) -> list[dict[str, Any]]:
    """Median and p99 of one call per batch size; scorers interleaved in a shuffled order."""
    pool = np.concatenate(matrices)
    starts = np.concatenate([[0], np.cumsum([len(m) for m in matrices])[:-1]])
    static_pool = partial.static_reach(pool) if partial is not None else None

    def assemble(r: dict[str, np.ndarray]) -> np.ndarray:
        X = r["static_X"].copy()
        X[:, dynamic] = r["dynamic"].T
        return X

    calls: dict[str, Callable[[dict[str, np.ndarray]], Any]] = {
        n: (lambda r, p=s.predict: p(r["X"])) for n, s in scorers.items() if s.predict is not None
    }
    if partial is not None:
        calls["partial"] = lambda r: partial.score(r["static"], r["dynamic"])
    calls["assemble"] = assemble
    results: list[dict[str, Any]] = []
    for batch in BATCHES:
        requests = make_requests(pool, starts, batch, seed, dynamic, static_pool)
        results += summarise(batch, time_calls(calls, requests, repeats[batch], seed))
    return results


# --------------------------------------------------------------------------- lleaves elsewhere


def lleaves_variants(n_trees: int) -> dict[str, int]:
    """lleaves' default cache blocking (34 trees per block, which changes the order in
    which tree outputs are added) and one block of every tree (the order LightGBM adds)."""
    return {"lleaves": 34, "lleaves-1block": n_trees}


def lleaves_works() -> str | None:
    """None when lleaves imports and compiles here; else why not."""
    try:
        import lleaves  # noqa: F401
        import llvmlite.binding as llvm
    except ImportError as error:
        return f"not installed ({error})"
    if not hasattr(llvm, "PassManagerBuilder"):
        import llvmlite

        return (
            f"with llvmlite {llvmlite.__version__} lleaves fails to compile (it calls the legacy "
            "PassManagerBuilder, removed in llvmlite 0.45; numba >= 0.62 needs llvmlite >= 0.45)"
        )
    return None


def lleaves_child(job: dict[str, Any]) -> dict[str, Any]:
    """In another interpreter (one whose llvmlite lleaves supports): exactness and latency
    of lleaves against LightGBM, on the inputs the main process wrote."""
    import lightgbm as lgb
    import lleaves

    data = np.load(job["inputs"])
    pool, starts, dynamic = data["pool"], data["starts"], data["dynamic"]
    exact = []
    for model_name, model_file in job["models"].items():
        booster = lgb.Booster(model_file=model_file)
        variants = {}
        for name, blocksize in lleaves_variants(booster.num_trees()).items():
            variants[name] = lleaves.Model(model_file=model_file)
            variants[name].compile(raw_score=True, fblocksize=blocksize)
        for input_name in ("candidates", "adversarial", "adversarial-no-(-1,0)"):
            X = pool if input_name == "candidates" else data[input_name]
            reference = booster.predict(X, raw_score=True, num_threads=1)
            for name, model in variants.items():
                got = np.asarray(model.predict(X, n_jobs=1), dtype=np.float64)
                exact.append({"model": model_name, **compare(input_name, name, got, reference)})
        if model_name == "champion":
            champion, compiled = booster, variants
    calls: dict[str, Callable[[dict[str, np.ndarray]], Any]] = {
        "lightgbm": lambda r: champion.predict(r["X"], raw_score=True, num_threads=1),
    }
    for name, model in compiled.items():
        calls[name] = lambda r, m=model: m.predict(r["X"], n_jobs=1)
    # Our partial scorer beside lleaves in the same process, when this interpreter has a
    # numba (another version than the lock's: one built on lleaves' llvmlite).
    static_pool = None
    try:
        from serving.scoring.trees import CompiledTrees
    except ImportError:
        pass
    else:
        partial = CompiledTrees.from_booster(champion).partial(dynamic)  # type: ignore[union-attr]
        static_pool = partial.static_reach(pool)

        def assemble(r: dict[str, np.ndarray]) -> np.ndarray:
            X = r["static_X"].copy()
            X[:, dynamic] = r["dynamic"].T
            return X

        calls["partial"] = lambda r: partial.score(r["static"], r["dynamic"])
        calls["assemble"] = assemble
        got = partial.score(partial.static_reach(pool), np.ascontiguousarray(pool[:, dynamic].T))
        reference = champion.predict(pool, raw_score=True, num_threads=1)
        exact.append({"model": "champion", **compare("candidates", "partial", got, reference)})
    timings: list[dict[str, Any]] = []
    for batch in BATCHES:
        requests = make_requests(pool, starts, batch, job["seed"], dynamic, static_pool)
        times = time_calls(calls, requests, job["repeats"][str(batch)], job["seed"])
        timings += summarise(batch, times)
    versions = {}
    for name in ("lleaves", "llvmlite", "lightgbm", "numpy", "numba"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = "not installed"
    sizes = [
        {**row, "package": f"{row['package']} (lleaves venv)"}
        for row in packages()
        if row["package"] in {"lleaves", "llvmlite"}
    ]
    return {"exactness": exact, "latency": timings, "versions": versions, "packages": sizes}


def run_lleaves_elsewhere(
    python: str,
    workdir: Path,
    model_files: dict[str, Path],
    matrices: list[np.ndarray],
    adversarial: dict[str, np.ndarray],
    dynamic: np.ndarray,
    repeats: dict[int, int],
    seed: int,
) -> dict[str, Any]:
    inputs = workdir / "inputs.npz"
    pool = np.concatenate(matrices)
    starts = np.concatenate([[0], np.cumsum([len(m) for m in matrices])[:-1]])
    np.savez(
        inputs,
        pool=pool,
        starts=starts,
        dynamic=dynamic,
        **adversarial,
    )
    job = {
        "inputs": str(inputs),
        "models": {k: str(v) for k, v in model_files.items()},
        "repeats": {str(k): v for k, v in repeats.items()},
        "seed": seed,
    }
    command = [python, str(Path(__file__).resolve()), "--lleaves-child", json.dumps(job)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"lleaves child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- load time


def load_time_child(library: str, model_file: str, dynamic: list[int], n_features: int) -> dict:
    """In a fresh process: import, build from the model file, first score of 150 rows."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, size=(150, n_features)).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = np.nan
    import lightgbm as lgb

    t_lgb = time.perf_counter()
    booster = lgb.Booster(model_file=model_file)
    t_booster = time.perf_counter()
    out: dict[str, float] = {"lightgbm_import_s": t_lgb - t0, "booster_load_s": t_booster - t_lgb}
    if library == "lightgbm":
        out.update(import_s=t_lgb - t0, build_s=t_booster - t_lgb)
        booster.predict(X, raw_score=True, num_threads=1)
    elif library in {"quickscorer", "partial"}:
        from serving.scoring.trees import CompiledTrees

        t_import = time.perf_counter()
        compiled = CompiledTrees.from_booster(booster)
        assert compiled is not None
        if library == "quickscorer":
            t_build = time.perf_counter()
            compiled.predict(X)
        else:
            scorer = compiled.partial(np.asarray(dynamic))
            t_build = time.perf_counter()
            dyn = np.asarray(dynamic)
            scorer.score(scorer.static_reach(X), np.ascontiguousarray(X[:, dyn].T))
        out.update(import_s=t_import - t_booster, build_s=t_build - t_import)
    elif library in {"lleaves", "lleaves-cached"}:
        import lleaves

        t_import = time.perf_counter()
        model = lleaves.Model(model_file=model_file)
        cache = model_file + ".lleaves.o"
        model.compile(
            raw_score=True,
            fblocksize=model.num_trees(),  # the bit-identical variant
            cache=cache if library == "lleaves-cached" else None,
        )
        t_build = time.perf_counter()
        model.predict(X, n_jobs=1)
        out.update(import_s=t_import - t_booster, build_s=t_build - t_import)
    elif library == "treelite-gtil":
        import treelite
        import treelite.gtil

        t_import = time.perf_counter()
        model = treelite.frontend.load_lightgbm_model(model_file)
        t_build = time.perf_counter()
        treelite.gtil.predict(model, X, nthread=1, pred_margin=True)
        out.update(import_s=t_import - t_booster, build_s=t_build - t_import)
    elif library in {"tl2cgen", "tl2cgen-prebuilt"}:
        import tl2cgen
        import treelite

        t_import = time.perf_counter()
        libpath = model_file + ".so"
        if library == "tl2cgen":
            model = treelite.frontend.load_lightgbm_model(model_file)
            tl2cgen.export_lib(model, toolchain="gcc", libpath=libpath, params={}, nthread=1)
        predictor = tl2cgen.Predictor(libpath, nthread=1)
        t_build = time.perf_counter()
        dtype = predictor.threshold_type
        predictor.predict(tl2cgen.DMatrix(X.astype(dtype), dtype=dtype), pred_margin=True)
        out.update(import_s=t_import - t_booster, build_s=t_build - t_import)
    else:
        raise SystemExit(f"unknown library {library}")
    t_end = time.perf_counter()
    out["first_call_s"] = t_end - (t_booster if library == "lightgbm" else t_build)
    out["total_s"] = t_end - t0
    return out


def load_times(
    model_file: Path,
    dynamic: np.ndarray,
    n_features: int,
    available: set[str],
    runs: int,
    pythons: dict[str, str],
) -> list[dict[str, Any]]:
    order = [
        ("lightgbm", "lightgbm"),
        ("quickscorer", "quickscorer"),
        ("partial", "partial"),
        ("lleaves", "lleaves"),
        ("lleaves-cached", "lleaves"),
        ("treelite-gtil", "treelite-gtil"),
        ("tl2cgen", "tl2cgen"),
        ("tl2cgen-prebuilt", "tl2cgen"),
    ]
    rows = []
    if "lleaves" in available:  # write the cache once so "lleaves-cached" loads it
        _child("lleaves-cached", model_file, dynamic, n_features, pythons.get("lleaves"))
    if "tl2cgen" in available:  # build the .so once so "tl2cgen-prebuilt" loads it
        _child("tl2cgen", model_file, dynamic, n_features, None)
    for library, needs in order:
        if needs not in available:
            continue
        python = pythons.get(needs)
        samples = [_child(library, model_file, dynamic, n_features, python) for _ in range(runs)]
        row: dict[str, Any] = {"library": library, "runs": runs}
        if python:
            row["python"] = python
        for key in samples[0]:
            row[key] = float(np.median([s[key] for s in samples]))
        rows.append(row)
    return rows


def _child(
    library: str, model_file: Path, dynamic: np.ndarray, n_features: int, python: str | None
) -> dict:
    command = [
        python or sys.executable,
        str(Path(__file__).resolve()),
        "--load-time-child",
        json.dumps([library, str(model_file), [int(d) for d in dynamic], n_features]),
    ]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"load-time child {library} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- packages


def _dist_size_mb(name: str) -> float | None:
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        return None
    total = 0
    for file in dist.files or []:
        path = Path(str(dist.locate_file(file)))
        if path.is_file():
            total += path.stat().st_size
    return total / 1e6


def packages() -> list[dict[str, Any]]:
    rows = []
    for name in ("lightgbm", "numba", "llvmlite", "lleaves", "treelite", "tl2cgen"):
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            rows.append({"package": name, "version": None})
            continue
        requires = [r.split(";")[0].strip() for r in (dist.requires or []) if "extra ==" not in r]
        rows.append(
            {
                "package": name,
                "version": dist.version,
                "installed_mb": _dist_size_mb(name),
                "requires": requires,
            }
        )
    return rows


# --------------------------------------------------------------------------- report


def _elsewhere_note(result: dict[str, Any]) -> list[str]:
    other = result.get("lleaves_elsewhere")
    if not other:
        return []
    versions = ", ".join(f"{k} {v}" for k, v in other["versions"].items())
    return [
        f"lleaves could not compile in this interpreter: {result['lleaves_reason']}. Its rows "
        f"come from `{other['python']}` ({versions}), run by this script on the same inputs "
        "(`--lleaves-python`), interleaved with that interpreter's LightGBM and, when it has "
        f"numba, our partial scorer and the assemble step (rows marked `{ELSEWHERE.strip()}`): "
        "compare lleaves with those, not with the rows of this process. Every call is slower "
        "when more scorers are interleaved (each evicts the others from the caches; this "
        "process interleaves eight, that one five), so microseconds differ between the two.",
        "",
    ]


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def markdown(result: dict[str, Any], command: str) -> str:
    lines = [
        "# Results: tree scorers on the request path",
        "",
        "Written by `benchmarks/tree_scorers.py --markdown` (raw figures with `--out`); not "
        "typed by hand. Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Model: the champion of `{result['data_dir']}` ({result['model']}); "
        f"{result['machine']}. Inputs: the candidate matrices of {result['users']} sampled "
        f"users ({result['pool_rows']:,} rows, {result['features']} features, "
        f"{result['dynamic']} of them request-time), and an adversarial matrix "
        f"({result['adversarial_rows']:,} rows). ADR: `design_docs/adr/0007-tree-scoring.md`.",
        "",
        *_elsewhere_note(result),
        "## Exactness against `Booster.predict(raw_score=True)`",
        "",
        "| model | input | scorer | rows | max abs diff | rows differing | bit-identical "
        "| same order |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["exactness"]:
        lines.append(
            f"| {row['model']} | {row['input']} | {row['scorer']} | {row['rows']:,} | "
            f"{row['max_abs_diff']:.3g} | {row['rows_differing']:,} | "
            f"{'yes' if row['bit_identical'] else 'no'} | "
            f"{'yes' if row['order_identical'] else 'no'} |"
        )
    lines += [
        "",
        "## Latency of one call (champion, one thread)",
        "",
        "`partial` takes the static masks prepared at load and the request-time columns; every "
        "other scorer takes the full float32 matrix, which a request would first have to "
        "build: `assemble` is the least that costs (copy a cached static matrix, write the "
        "request-time columns). The ratio is each median over LightGBM's median in the same "
        "batch of the same run.",
        "",
        "| batch | scorer | repeats | median us | p99 us | median / LightGBM |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["latency"]:
        lines.append(
            f"| {row['batch']:,} | {row['scorer']} | {row['repeats']:,} | "
            f"{_fmt(row['median_us'])} | {_fmt(row['p99_us'])} | {row['vs_lightgbm']:.3f} |"
        )
    lines += [
        "",
        "What a request of 150 candidates would pay per scorer (sum of medians: the scorer, "
        "plus `assemble` for the full-matrix scorers; the partial scorer's static masks were "
        "prepared at load). Ratios are to LightGBM + assemble and to the partial scorer of "
        "the same process (lleaves rows: the lleaves interpreter's).",
        "",
        "| scorer | per request us | / LightGBM + assemble | / partial |",
        "|---|---|---|---|",
    ]
    lines += _per_request_rows(result["latency"], 150)
    lines += [
        "",
        "## From a LightGBM model file to the first score (fresh process each, median)",
        "",
        "`build` is compile/convert/load after the library's import; `first call` is the "
        "first 150-row score (numba compiles the partial scorer's loop there). "
        "`lleaves` is the one-block (bit-identical) variant, `lleaves-cached` reloads its "
        "object file; `tl2cgen` converts and builds with gcc, `tl2cgen-prebuilt` loads an "
        "existing `.so`. Every library starts from `lightgbm.Booster(model_file=...)` "
        "(LightGBM's import and the model load are their own columns); for `lightgbm` itself "
        "`import` and `build` are those two. `total` is the sum from the first import on.",
        "",
        "| library | runs | LightGBM import + model load s | import s | build s "
        "| first call s | total s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["load"]:
        lines.append(
            f"| {row['library']} | {row['runs']} | "
            f"{row['lightgbm_import_s'] + row['booster_load_s']:.3f} | "
            f"{row.get('import_s', 0.0):.3f} | {row.get('build_s', 0.0):.3f} | "
            f"{row['first_call_s']:.3f} | {row['total_s']:.3f} |"
        )
    lines += [
        "",
        "## Packages",
        "",
        "| package | version | installed MB | requires |",
        "|---|---|---|---|",
    ]
    for row in result["packages"]:
        if row["version"] is None:
            lines.append(f"| {row['package']} | not installed | | |")
            continue
        lines.append(
            f"| {row['package']} | {row['version']} | {row['installed_mb']:.1f} | "
            f"{', '.join(row['requires']) or '-'} |"
        )
    if result["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in result["skipped"].items())]
    return "\n".join(lines) + "\n"


def per_request(
    latency_rows: list[dict[str, Any]], batch: int
) -> list[tuple[str, float, float, float]]:
    """(scorer, us per request, / LightGBM + assemble, / partial) for one batch size; each
    scorer against the LightGBM, assemble and partial of its own process."""
    rows = [r for r in latency_rows if r["batch"] == batch]
    median = {r["scorer"]: r["median_us"] for r in rows}
    out = []
    for r in rows:
        name = r["scorer"]
        suffix = ELSEWHERE if name.startswith("lleaves") or name.endswith(ELSEWHERE) else ""
        base = name.removesuffix(ELSEWHERE)
        if base == "assemble":
            continue
        assemble = median.get("assemble" + suffix, median.get("assemble", 0.0))
        partial = median.get("partial" + suffix)
        cost = r["median_us"] + (0.0 if base == "partial" else assemble)
        reference = median["lightgbm" + suffix] + assemble
        out.append((name, cost, cost / reference, cost / partial if partial else float("nan")))
    return out


def _per_request_rows(latency_rows: list[dict[str, Any]], batch: int) -> list[str]:
    return [
        f"| {name} | {cost:,.1f} | {vs_lgb:.3f} | {vs_partial:.2f} |"
        for name, cost, vs_lgb, vs_partial in per_request(latency_rows, batch)
    ]


def print_summary(result: dict[str, Any]) -> None:
    print(f"\nexactness against Booster.predict ({result['model']})")
    for row in result["exactness"]:
        print(
            f"  {row['model']:<12} {row['input']:<12} {row['scorer']:<14} "
            f"max|diff| {row['max_abs_diff']:.3g}  differing {row['rows_differing']:>6}  "
            f"bit-identical {row['bit_identical']}  same order {row['order_identical']}"
        )
    print("\nlatency of one call (us; ratio = median / LightGBM median, same batch)")
    for row in result["latency"]:
        print(
            f"  batch {row['batch']:>6}  {row['scorer']:<14} median {row['median_us']:>10.1f}"
            f"  p99 {row['p99_us']:>10.1f}  x{row['vs_lightgbm']:.3f}"
        )
    print("\nper request of 150 candidates (us; scorer + assemble, partial alone)")
    for name, cost, vs_lgb, vs_partial in per_request(result["latency"], 150):
        print(f"  {name:<24} {cost:>9.1f}  x{vs_lgb:.3f} of LightGBM  x{vs_partial:.2f} of partial")
    print("\nmodel file -> first score (s, fresh process, median)")
    for row in result["load"]:
        print(
            f"  {row['library']:<18} build {row.get('build_s', 0.0):7.3f}  first call "
            f"{row['first_call_s']:7.3f}  total {row['total_s']:7.3f}"
        )
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--users", type=int, default=300, help="users whose candidates are inputs")
    parser.add_argument("--repeats-1", type=int, default=3000)
    parser.add_argument("--repeats-150", type=int, default=2000)
    parser.add_argument("--repeats-10000", type=int, default=60)
    parser.add_argument("--load-runs", type=int, default=3, help="fresh processes per library")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the raw figures as JSON")
    parser.add_argument("--markdown", type=Path, help="write the results page")
    parser.add_argument(
        "--lleaves-python",
        help="an interpreter with lleaves, lightgbm and an llvmlite lleaves supports (< 0.45), "
        "used when lleaves cannot compile in this one",
    )
    parser.add_argument(
        "--render", type=Path, help="only write --markdown from the JSON of an earlier --out"
    )
    parser.add_argument("--load-time-child", help=argparse.SUPPRESS)
    parser.add_argument("--lleaves-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_time_child:
        library, model_file, dynamic, n_features = json.loads(args.load_time_child)
        print(json.dumps(load_time_child(library, model_file, dynamic, n_features)))
        return
    if args.lleaves_child:
        print(json.dumps(lleaves_child(json.loads(args.lleaves_child))))
        return
    if args.render:
        result = json.loads(args.render.read_text())
        print_summary(result)
        if args.markdown:
            args.markdown.write_text(markdown(result, result["command"]))
            print(f"wrote {args.markdown}")
        return

    recommender = load_champion(args.data_dir)
    booster = recommender.ranker_.booster_
    matrices = candidate_matrices(recommender, args.users, args.seed)
    pool = np.concatenate(matrices)
    names = list(recommender.layout_.names)
    categorical = [names.index(c) for c in CATEGORICAL if c in names]
    adversarial = adversarial_matrix(pool, categorical, 20_000, args.seed)
    # LightGBM reads a categorical value in (-1, 0) as category 0 (a C cast truncates);
    # treelite sends every negative value right: the same rows without such values.
    no_negative_fraction = adversarial.copy()
    for c in categorical:
        column = no_negative_fraction[:, c]
        column[(column > -1) & (column < 0)] = -1.0
    adversarial_inputs = {
        "adversarial": adversarial,
        "adversarial-no-(-1,0)": no_negative_fraction,
    }
    dynamic = dynamic_features(recommender)
    print(
        f"champion: {booster.num_trees()} trees, {booster.num_feature()} features "
        f"({len(dynamic)} request-time); {len(matrices)} users, {len(pool):,} candidate rows"
    )

    skipped: dict[str, str] = {}
    exact: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="reelrank-trees-") as tmp:
        workdir = Path(tmp)
        models = {"champion": booster}
        cat_booster = categorical_model(recommender, pool, [len(m) for m in matrices], args.seed)
        models["categorical"] = cat_booster
        champion_scorers: dict[str, Scorer] = {}
        champion_partial = None
        for model_name, model in models.items():
            scorers = build_scorers(model, workdir)
            for n, s in scorers.items():
                if s.skipped:
                    skipped[n] = s.skipped
            compiled = scorers["quickscorer"].predict
            partial = None
            if compiled is not None:
                from serving.scoring.trees import CompiledTrees

                partial = CompiledTrees.from_booster(model).partial(dynamic)  # type: ignore[union-attr]
            inputs = {"candidates": pool, **adversarial_inputs}
            for row in exactness(scorers, partial, dynamic, inputs):
                exact.append({"model": model_name, **row})
            if model_name == "champion":
                champion_scorers, champion_partial = scorers, partial
        splits = _split_counts(booster, dynamic)
        cat_splits = _split_counts(cat_booster, dynamic)
        print(f"splits: champion {splits}; categorical model {cat_splits}")
        repeats = {1: args.repeats_1, 150: args.repeats_150, 10_000: args.repeats_10000}
        timings = latency(champion_scorers, champion_partial, dynamic, matrices, repeats, args.seed)
        model_files = {"champion": workdir / "champion.txt", "categorical": workdir / "cat.txt"}
        booster.save_model(str(model_files["champion"]))
        cat_booster.save_model(str(model_files["categorical"]))
        available = {n for n, s in champion_scorers.items() if s.predict is not None} | {"partial"}
        pythons: dict[str, str] = {}
        elsewhere = None
        lleaves_reason = skipped.get("lleaves")
        if "lleaves" not in available and args.lleaves_python:
            print(f"lleaves: {skipped.pop('lleaves', '')}; measuring it in {args.lleaves_python}")
            elsewhere = run_lleaves_elsewhere(
                args.lleaves_python,
                workdir,
                model_files,
                matrices,
                adversarial_inputs,
                dynamic,
                repeats,
                args.seed,
            )
            for row in elsewhere["exactness"]:
                if not row["scorer"].startswith("lleaves"):
                    row["scorer"] += ELSEWHERE
                exact.append(row)
            for row in elsewhere["latency"]:
                if not row["scorer"].startswith("lleaves"):
                    row["scorer"] += ELSEWHERE
                timings.append(row)
            timings.sort(key=lambda r: r["batch"])  # stable: each batch's rows together
            available.add("lleaves")
            pythons["lleaves"] = args.lleaves_python
        loads = load_times(
            model_files["champion"],
            dynamic,
            booster.num_feature(),
            available,
            args.load_runs,
            pythons,
        )

    result = {
        "data_dir": str(args.data_dir),
        "model": f"{booster.num_trees()} trees, {splits['leaves']} leaves, "
        f"{splits['splits']} splits of which {splits['dynamic']} on request-time features, "
        f"{splits['categorical']} categorical; the categorical model: "
        f"{cat_splits['categorical']} categorical splits of {cat_splits['splits']}",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "users": len(matrices),
        "pool_rows": len(pool),
        "features": booster.num_feature(),
        "dynamic": len(dynamic),
        "adversarial_rows": len(adversarial),
        "exactness": exact,
        "latency": timings,
        "load": loads,
        "packages": packages() + (elsewhere["packages"] if elsewhere else []),
        "skipped": skipped,
        "lleaves_reason": lleaves_reason,
        "lleaves_elsewhere": None
        if elsewhere is None
        else {"python": args.lleaves_python, "versions": elsewhere["versions"]},
    }
    command = "python benchmarks/tree_scorers.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result["command"] = command
    print_summary(result)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(result, command))
        print(f"wrote {args.markdown}")


def _split_counts(booster: Any, dynamic: np.ndarray) -> dict[str, int]:
    dump = booster.dump_model()
    counts = {"splits": 0, "dynamic": 0, "categorical": 0, "leaves": 0}
    dyn = {int(d) for d in dynamic}

    def walk(node: dict[str, Any]) -> None:
        if "split_index" not in node:
            return
        counts["splits"] += 1
        counts["dynamic"] += int(node["split_feature"]) in dyn
        counts["categorical"] += node.get("decision_type") == "=="
        walk(node["left_child"])
        walk(node["right_child"])

    for tree in dump["tree_info"]:
        counts["leaves"] = max(counts["leaves"], tree["num_leaves"])
        walk(tree["tree_structure"])
    return counts


if __name__ == "__main__":
    importlib.invalidate_caches()
    main()
