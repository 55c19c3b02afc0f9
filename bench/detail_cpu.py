"""Where a customer detail's machine time goes under load: the app or the raw endpoint served
alone, ``wrk`` sending the detail only, and the CPU time of the server's processes and of every
PostgreSQL process taken before and after, per request.

The database, reps and ids are bench/load.py's (its detail-only phase, without the mix).
``--spy FILE`` records the (first) worker with py-spy meanwhile, in its raw format, when py-spy
is installed (``uv pip install py-spy``). Interleave app and raw runs: this VM's speed drifts
within minutes.

    .venv/bin/python bench/detail_cpu.py --workers 2            # the app
    .venv/bin/python bench/detail_cpu.py --workers 2 --raw      # the raw endpoint
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load


def processes() -> list[tuple[int, int, str, float]]:
    """Every process as (pid, parent pid, name, CPU seconds so far), from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        # After the name: state, ppid, ... utime and stime are the 12th and 13th.
        found.append(
            (int(entry.name), int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
        )
    return found


def cpu_seconds(root: int) -> tuple[float, float]:
    """CPU seconds so far of ``root`` with its descendants, and of PostgreSQL's processes."""
    table = processes()
    tree, grown = {root}, True
    while grown:
        more = {pid for pid, parent, _, _ in table if parent in tree} - tree
        tree |= more
        grown = bool(more)
    server = sum(cpu for pid, _, _, cpu in table if pid in tree)
    database = sum(cpu for _, _, name, cpu in table if name.startswith("postgres"))
    return server, database


def workers_of(root: int) -> list[int]:
    return [pid for pid, parent, _, _ in processes() if parent == root]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--raw", action="store_true", help="the raw endpoint instead of the app")
    parser.add_argument("--spy", help="record a worker with py-spy into this file")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("needs wrk (apt-get install wrk)")
    env = load.server_env(load.DATABASE_URL)
    port, app_port = load.free_port(), load.free_port()
    users = load.tokens(args.users)
    # The reps' ids as the app lists them (the raw endpoint serves the same ones).
    app = load.serve(load.app_command(app_port, 1), env, app_port)
    try:
        ids = asyncio.run(load.rep_customer_ids(f"http://127.0.0.1:{app_port}", users))
    finally:
        load.stop([app])
    command = (
        load.raw_command(port, args.workers) if args.raw else load.app_command(port, args.workers)
    )
    server = load.serve(command, env, port)
    try:
        base = f"http://127.0.0.1:{port}"
        # A first pass through every rep's ids: each worker builds each rep's principal (wrk
        # sends a rep's requests together, 50 at once: a cold principal is built by each).
        load.detail_with_wrk(base, users, ids, 20, raw=args.raw)
        spy = None
        if args.spy:
            # With several workers uvicorn's children are the workers and a resource tracker.
            workers = [
                pid
                for pid in workers_of(server.pid)
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
            ]
            target = (workers or [server.pid])[0]
            spy = subprocess.Popen(  # noqa: S603 (fixed arguments)
                [str(Path(sys.executable).parent / "py-spy"), "record", "-r", "200", "-d",
                 str(args.seconds), "-f", "raw", "-o", args.spy, "-p", str(target)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
        server_before, database_before = cpu_seconds(server.pid)
        result = load.detail_with_wrk(base, users, ids, args.seconds, raw=args.raw)[0]
        server_after, database_after = cpu_seconds(server.pid)
        if spy:
            spy.wait()
        n = result["requests"]
        print(
            f"{'raw' if args.raw else 'app'}, {args.workers} worker(s): {result['per_second']}"
            f" req/s, p95 {result['p95_ms']} ms, {result['errors']} errors; per request: server"
            f" {1000 * (server_after - server_before) / n:.3f} ms CPU, PostgreSQL"
            f" {1000 * (database_after - database_before) / n:.3f} ms CPU"
        )
    finally:
        load.stop([server])


if __name__ == "__main__":
    main()
