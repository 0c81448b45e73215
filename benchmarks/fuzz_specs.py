"""The long spec fuzz run: mutated built-in specs through load -> checks -> generate -> compile ->
steps against the reference (the harness is tests/fuzz_specs.py), in worker processes with a
hard per-spec time limit.

    python benchmarks/fuzz_specs.py --count 5000 --seed 1 --jobs 2 --out /tmp/fuzz/report.json
    python benchmarks/fuzz_specs.py --replay /tmp/fuzz/failures/00042-step.toml

Progress goes to stderr. Every outcome is appended to REPORT.jsonl as it comes, so a killed run
resumes where it stopped when started again with the same arguments. Each failure's mutated spec
is saved to failures/ beside the report, with a .txt of what happened and the command that
replays it. REPORT (JSON) and REPORT.md summarise: outcomes, stages, time, throughput, and the
distinct failures (by stage, kind and message pattern), each with its examples.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_pool  # noqa: E402
import fuzz_specs as fz  # noqa: E402
from fuzz_mutate import mutated  # noqa: E402


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100, help="mutated specs to run")
    parser.add_argument(
        "--seed", type=int, default=0, help="the run's seed (same seed, same specs)"
    )
    parser.add_argument("--start", type=int, default=0, help="first case index (for chunks)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument("--limit", type=float, default=180.0, help="seconds before a spec hangs")
    parser.add_argument("--out", type=Path, default=Path("fuzz_report.json"), help="report file")
    parser.add_argument("--replay", type=Path, help="run one spec file in this process and exit")
    return parser.parse_args()


def replay(path: Path) -> int:
    """One spec file through the pipeline, in this process: its outcome, with any traceback."""
    fz.setup_environment()
    with tempfile.TemporaryDirectory(prefix="symopt_fuzz_") as work:
        outcome = fz.run_spec(
            path.read_text(encoding="utf-8", errors="surrogateescape"), Path(work)
        )
    print(f"{outcome.kind} at {outcome.stage} in {outcome.seconds:.1f} s")
    if outcome.detail:
        print(outcome.detail)
    return 1 if outcome.failed else 0


def _save_failure(folder: Path, index: int, base: str, applied: list, text: str, o) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"{index:05d}-{o.stage}-{o.kind.split()[0].split('/')[0]}"
    stem.with_suffix(".toml").write_text(text, encoding="utf-8", errors="surrogateescape")
    replay_cmd = f"python benchmarks/fuzz_specs.py --replay {stem.with_suffix('.toml')}"
    stem.with_suffix(".txt").write_text(
        f"case {index} of {base}, mutations {applied}\n{o.kind} at {o.stage} in {o.seconds} s\n"
        f"signature: {o.signature()}\nreplay: {replay_cmd}\n\n{o.detail}\n",
        encoding="utf-8",
    )
    return str(stem.with_suffix(".toml"))


def summarise(rows: list[dict], seconds: float, args: argparse.Namespace) -> dict:
    """Counts by outcome and stage, time per outcome, and the distinct failures."""
    kinds = collections.Counter(r["kind"] for r in rows)
    stages = collections.Counter(f"{r['kind']} at {r['stage']}" for r in rows)
    times = collections.defaultdict(list)
    for r in rows:
        times[r["kind"]].append(r["seconds"])
    distinct: dict[str, dict] = {}
    for r in rows:
        if r["kind"] in fz.FAILURES:
            d = distinct.setdefault(r["signature"], {"count": 0, "examples": []})
            d["count"] += 1
            if len(d["examples"]) < 5:
                d["examples"].append({k: r[k] for k in ("index", "base", "file")})
    return {
        "seed": args.seed,
        "specs": len(rows),
        "wall_seconds": round(seconds, 1),
        "specs_per_second": round(len(rows) / seconds, 3) if seconds else None,
        "jobs": args.jobs,
        "outcomes": dict(kinds.most_common()),
        "by_stage": dict(stages.most_common()),
        "mean_seconds": {k: round(sum(v) / len(v), 2) for k, v in times.items()},
        "max_seconds": {k: round(max(v), 2) for k, v in times.items()},
        "bases": dict(collections.Counter(r["base"] for r in rows).most_common()),
        "failures": len([r for r in rows if r["kind"] in fz.FAILURES]),
        "distinct_failures": dict(sorted(distinct.items(), key=lambda kv: -kv[1]["count"])),
    }


def markdown(summary: dict) -> str:
    lines = [
        f"# Spec fuzz run (seed {summary['seed']})",
        "",
        f"{summary['specs']} mutated specs in {summary['wall_seconds']} s "
        f"({summary['specs_per_second']} specs/s, {summary['jobs']} jobs); "
        f"{summary['failures']} failures, {len(summary['distinct_failures'])} distinct.",
        "",
        "| outcome | specs | mean s | max s |",
        "|---|---|---|---|",
    ]
    for kind, n in summary["outcomes"].items():
        lines.append(
            f"| {kind} | {n} | {summary['mean_seconds'][kind]} | {summary['max_seconds'][kind]} |"
        )
    lines += ["", "## Distinct failures", ""]
    for signature, d in summary["distinct_failures"].items():
        files = ", ".join(e["file"] for e in d["examples"][:2])
        lines.append(f"- {d['count']} x `{signature}`: {files}")
    return "\n".join(lines) + "\n"


def main() -> int:
    args = _arguments()
    if args.replay:
        return replay(args.replay)
    fz.setup_environment()
    log = args.out.with_suffix(".jsonl")
    failures = args.out.parent / "failures"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in log.open()] if log.exists() else []
    rows = [r for r in rows if r["seed"] == args.seed]
    done = {r["index"] for r in rows}
    todo = [i for i in range(args.start, args.start + args.count) if i not in done]
    cases = {i: mutated(args.seed, i) for i in todo}
    print(f"{len(done)} done before, {len(todo)} to run", file=sys.stderr)
    start = time.monotonic()
    previous = sum(r["seconds"] for r in rows) / max(1, args.jobs)  # the earlier runs' time
    tasks = ((i, args.seed, cases[i][1]) for i in todo)
    with fuzz_pool.Pool(jobs=args.jobs, limit=args.limit) as pool, log.open("a") as sink:
        for n, (task, outcome) in enumerate(pool.run(tasks), start=1):
            index = task[0]
            base, text, applied = cases[index]
            row = {"seed": args.seed, "index": index, "base": base, "mutations": applied}
            row |= {"kind": outcome.kind, "stage": outcome.stage, "seconds": outcome.seconds}
            row |= {"signature": outcome.signature() if outcome.failed else "", "file": ""}
            if outcome.failed:
                row["file"] = _save_failure(failures, index, base, applied, text, outcome)
            row["detail"], row["notes"] = outcome.detail[-600:], outcome.notes
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            rows.append(row)
            elapsed = time.monotonic() - start
            counts = collections.Counter(r["kind"] for r in rows)
            print(
                f"[{n}/{len(todo)}] #{index} {base}: {outcome.kind} at {outcome.stage} "
                f"({outcome.seconds:.1f} s) | {n / elapsed:.2f} specs/s | {dict(counts)}",
                file=sys.stderr,
            )
    summary = summarise(rows, previous + time.monotonic() - start, args)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(summary))
    print(markdown(summary))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
