"""A longer schemathesis pass than `make test`'s: every operation of /v1/openapi.json with a
valid key, against the API in-process on a fresh SQLite database, with the same checks
(tests/api/test_fuzz.py: no 5xx, status codes, content types, headers and bodies as documented,
strings with NUL and control characters).

    python bench/fuzz.py [--examples 200]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=200, help="cases per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as tmp:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/fuzz.db"
        os.environ["BATCH_RATE_LIMIT_PER_SECOND"] = "0"
        subprocess.run(
            [sys.executable, "-m", "batch_dashboard", "migrate"],
            check=True,
            cwd=tmp,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        import schemathesis

        from batch_dashboard.api.app import create_api
        from tests.api.test_fuzz import exercise
        from tests.conftest import make_tenant

        tenant = make_tenant()
        schema = schemathesis.openapi.from_asgi("/v1/openapi.json", create_api())
        headers = {"Authorization": f"Bearer {tenant.api_key}"}
        started, operations = time.perf_counter(), 0
        for result in schema.get_all_operations():
            operation = result.ok()
            # The checks of `make test`'s pass (tests/api/test_fuzz.py), with more cases.
            exercise(operation, headers, examples=args.examples)
            operations += 1
            print(f"{operation.method.upper():6} {operation.path}: ok")
        print(
            f"\n{operations} operations, up to {args.examples} cases each, "
            f"{time.perf_counter() - started:.0f} s: every conformance check held"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
