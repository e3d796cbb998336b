"""`python -m tests.soak [--jobs N --worker-kills K --bot-kills B] [--postgres | --database-url URL]`: run the soak, print its counts."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .orchestrator import soak


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--worker-kills", type=int, default=30)
    parser.add_argument("--bot-kills", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", default=None, help="default: a new SQLite file in the work folder")
    where.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server started for the soak")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pace", type=float, default=0.1, help="seconds per submission in each bot, on average (default 0.1)")
    parser.add_argument("--burst", type=int, default=3, help="jobs each bot submits back to back (default 3)")
    parser.add_argument("--deadline", type=float, default=None,
                        help="seconds the whole soak may take (default: 900, or 1.5 s per job if more)")
    parser.add_argument("--kill-wait", type=float, default=120.0,
                        help="seconds a bot kill may wait for a bot holding a running and a queued job (default 120)")
    args = parser.parse_args()
    if not args.postgres:
        return _run(args, args.database_url)
    from tests.pg_server import PostgresServer

    with PostgresServer.running() as server:
        return _run(args, server.create_database())


def _run(args: argparse.Namespace, database_url: str | None) -> int:
    deadline = args.deadline if args.deadline is not None else max(900.0, 1.5 * args.jobs)
    report = asyncio.run(soak(jobs=args.jobs, worker_kills=args.worker_kills, bot_kills=args.bot_kills,
                              database_url=database_url, workdir=args.workdir, seed=args.seed, pace=args.pace,
                              burst=args.burst, deadline=deadline, kill_wait=args.kill_wait))
    print("\n".join(report.lines()))
    return 1 if report.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
