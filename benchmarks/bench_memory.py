"""Peak memory and throughput of a backfill as the companyfacts.zip grows.

For each archive size (default 250, 500, 1000 synthetic companies; archives are generated
once with make_synthetic_archive.py and kept in ``--workdir``), one fresh SUBPROCESS runs
``run_pipeline(open_source(SourceSpec(zip)), all CIKs, fresh.duckdb)`` and exits. The parent
samples the child's RSS with psutil every ``--interval`` seconds and reads its exact peak
RSS (ru_maxrss) from ``os.wait4``. A bounded pipeline keeps the peak flat as the archive
grows and holds facts/s steady.

``--via-cli`` runs ``finloom backfill --source ZIP --db DB`` instead (the Prefect flow:
load, normalize, then the quality subflow over every company loaded; ``--no-quality``
leaves the subflow out); its peak is also reported for the whole process tree (the CLI may
start a Prefect server).

    uv run python benchmarks/bench_memory.py [--sizes 250 500 1000] [--via-cli [--no-quality]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from provenance import code_version

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out"
MiB = 1024 * 1024


def child(zip_path: str, db_path: str, result_path: str, batch_size: int) -> int:
    """Runs inside the subprocess: the core pipeline over the whole archive."""
    import resource

    from finloom_core.edgar.sources import SourceSpec, open_source
    from finloom_core.pipeline import run_pipeline
    from finloom_core.settings import load_settings

    memory_limit = load_settings().duckdb_memory_limit  # FINLOOM_DUCKDB_MEMORY_LIMIT
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    source = open_source(SourceSpec(zip_path))
    ciks = source.available_ciks()
    started = time.perf_counter()
    try:
        outcomes = run_pipeline(
            source, ciks, db_path, batch_size=batch_size, memory_limit=memory_limit
        )
    finally:
        source.close()
    seconds = time.perf_counter() - started
    by_status: dict[str, int] = {}
    for o in outcomes:
        by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
    result = {
        "companies": len(ciks),
        "facts": sum(o.facts for o in outcomes),
        "by_status": by_status,
        "pipeline_seconds": seconds,
        "rss_after_imports": baseline,
    }
    Path(result_path).write_text(json.dumps(result))
    return 0


def archive_for(size: int, seed: int, workdir: Path) -> tuple[Path, dict | None]:
    """The synthetic archive of ``size`` companies, generated on first use."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from make_synthetic_archive import build_archive

    path = workdir / f"companyfacts-{size}-seed{seed}.zip"
    if path.is_file():
        return path, None
    print(f"generating {path} ...", file=sys.stderr)
    stats = build_archive(path, size, seed)
    print(f"  {stats['facts']:,} facts, {stats['seconds']:.0f} s", file=sys.stderr)
    return path, stats


def finloom_command() -> list[str]:
    exe = Path(sys.executable).with_name("finloom")
    found = str(exe) if exe.is_file() else shutil.which("finloom")
    if not found:
        raise SystemExit("--via-cli: no `finloom` console command in this environment yet")
    return [found]


def run_one(zip_path: Path, tmp: Path, args: argparse.Namespace) -> dict:
    import duckdb
    import psutil

    db = tmp / f"{zip_path.stem}.duckdb"
    result_file = tmp / f"{zip_path.stem}.json"
    for stale in (db, db.with_name(db.name + ".wal"), result_file):
        stale.unlink(missing_ok=True)
    env = dict(os.environ)
    env.setdefault("PREFECT_HOME", str(tmp / "prefect-home"))
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    if args.via_cli:
        cmd = [*finloom_command(), "backfill", "--source", str(zip_path), "--db", str(db)]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        if args.no_quality:
            cmd.append("--no-quality")
    else:
        cmd = [sys.executable, __file__, "--child", str(zip_path), str(db), str(result_file),
               "--batch-size", str(args.batch_size or 25)]  # fmt: skip
    log = tmp / f"{zip_path.stem}.log"
    started = time.perf_counter()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        handle = psutil.Process(proc.pid)
        samples: list[tuple[float, int, int]] = []  # (seconds, own RSS, tree RSS)
        while True:
            try:
                own = handle.memory_info().rss
                tree = own + sum(
                    c.memory_info().rss for c in handle.children(recursive=True) if c.is_running()
                )
                samples.append((time.perf_counter() - started, own, tree))
            except psutil.Error:
                pass
            done, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if done:
                break
            time.sleep(args.interval)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    child_result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    with duckdb.connect(str(db), read_only=True) as con:
        facts, companies = con.execute(
            "SELECT count(*), count(DISTINCT cik) FROM facts"
        ).fetchall()[0]
    db_bytes = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
    if not args.keep_db:
        for p in db.parent.glob(db.name + "*"):  # the file, its WAL, its metrics folder
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    def rss_at(fraction: float) -> int:
        cutoff = wall * fraction
        return max((s[1] for s in samples if s[0] <= cutoff), default=0)

    # the CLI reports no inner timing: its facts/s include interpreter and Prefect start-up
    seconds = child_result.get("pipeline_seconds")
    with zipfile.ZipFile(zip_path) as zf:
        json_bytes = sum(i.file_size for i in zf.infolist())
    return {
        "archive": str(zip_path),
        "archive_bytes": zip_path.stat().st_size,
        "json_bytes": json_bytes,
        "companies": companies,
        "facts": facts,
        "by_status": child_result.get("by_status"),
        "wall_seconds": wall,
        "pipeline_seconds": seconds,
        "facts_per_s": facts / (seconds or wall),
        "peak_rss": usage.ru_maxrss * 1024,
        "peak_rss_sampled": max((s[1] for s in samples), default=0),
        "peak_tree_rss_sampled": max((s[2] for s in samples), default=0),
        "rss_after_imports": child_result.get("rss_after_imports"),
        "peak_rss_by_quarter_of_run": [rss_at(f) for f in (0.25, 0.5, 0.75, 1.0)],
        "db_bytes": db_bytes,
        "samples": [
            (round(t, 2), own, tree) for t, own, tree in samples[:: max(1, len(samples) // 200)]
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=OUT / "synthetic")
    parser.add_argument("--via-cli", action="store_true", help="run `finloom backfill` instead")
    parser.add_argument(
        "--no-quality", action="store_true", help="--via-cli without the quality subflow"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="default: the pipeline's")
    parser.add_argument("--interval", type=float, default=0.1, help="RSS sampling period (s)")
    parser.add_argument("--keep-db", action="store_true")
    parser.add_argument("--out", type=Path, default=OUT / "memory.json")
    parser.add_argument("--child", nargs=3, metavar=("ZIP", "DB", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, batch_size=args.batch_size or 25)

    args.workdir.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="finloom-mem-", dir=args.workdir) as tmpname:
        for size in args.sizes:
            zip_path, generated = archive_for(size, args.seed, args.workdir)
            print(f"running {'finloom backfill' if args.via_cli else 'run_pipeline'}"
                  f" over {zip_path.name} ...", file=sys.stderr)  # fmt: skip
            result = run_one(zip_path, Path(tmpname), args)
            result["size"] = size
            result["generated"] = generated
            results.append(result)
            print(f"  peak RSS {result['peak_rss'] / MiB:,.0f} MiB,"
                  f" {result['facts_per_s']:,.0f} facts/s", file=sys.stderr)  # fmt: skip

    report = {
        "mode": ("cli, no quality" if args.no_quality else "cli") if args.via_cli else "core",
        "seed": args.seed,
        "code": code_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    tree = args.via_cli
    command = "`finloom backfill" + (" --no-quality`" if args.no_quality else "` (with quality)")
    lines = [
        f"{command if args.via_cli else 'run_pipeline'} over synthetic"
        f" companyfacts.zip archives (seed {args.seed}), one fresh subprocess and DuckDB file each;"
        f" code {report['code']}, load average {report['load_average'][0]:.2f}"
        f" on {report['cpus']} CPUs",
        "",
        "| companies | facts | zip MiB | JSON/company MiB | wall s | pipeline s | facts/s"
        " | peak RSS MiB | RSS at 25/50/75/100% of run MiB"
        + (" | tree peak MiB" if tree else "")
        + " | DB MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|" if tree else "") + "---:|",
    ]
    for r in results:
        quarters = " / ".join(f"{v / MiB:,.0f}" for v in r["peak_rss_by_quarter_of_run"])
        lines.append(
            f"| {r['companies']:,} | {r['facts']:,} | {r['archive_bytes'] / MiB:,.0f}"
            f" | {r['json_bytes'] / r['companies'] / MiB:.2f}"
            f" | {r['wall_seconds']:,.1f}"
            + (f" | {r['pipeline_seconds']:,.1f}" if r["pipeline_seconds"] else " | -")
            + f" | {r['facts_per_s']:,.0f} | {r['peak_rss'] / MiB:,.0f} | {quarters}"
            + (f" | {r['peak_tree_rss_sampled'] / MiB:,.0f}" if tree else "")
            + f" | {r['db_bytes'] / MiB:,.0f} |"
        )
    lines.append(f"-> {args.out}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
