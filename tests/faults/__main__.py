"""`python -m tests.faults --seed 7 --size 200`: a longer fault run, its figures printed.

Without `--size` it is the bounded run of the test suite. The exit code is 0 when every
promise held. The data folder (logs of every service, the broker and PostgreSQL) is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

from tests.faults.suite import Size, run_suite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="makes the run reproducible")
    parser.add_argument(
        "--size", type=int, default=0, help="health projects (0: the bounded run of `make test`)"
    )
    parser.add_argument("--data-dir", type=Path, default=None, help="where pmo up keeps its data")
    parser.add_argument("--kills", type=int, default=None, help="kill -9s of services")
    parser.add_argument("--database-restarts", type=int, default=None, help="immediate restarts")
    parser.add_argument("--freeze-s", type=float, default=None, help="seconds the broker is frozen")
    parser.add_argument("--stream-s", type=float, default=None, help="seconds the stream lasts")
    args = parser.parse_args()
    size = Size.scaled(args.size) if args.size else Size()
    chosen = {
        name: getattr(args, name)
        for name in ("kills", "database_restarts", "freeze_s", "stream_s")
        if getattr(args, name) is not None
    }
    size = dataclasses.replace(size, **chosen)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix=f"pmo-faults-{args.seed}-"))
    report = run_suite(args.seed, size, data_dir)
    print(report.render(), flush=True)
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
