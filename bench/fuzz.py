"""A longer schemathesis pass than `make test`'s: every operation of /v1/openapi.json with a
valid key, against the API in-process on a fresh SQLite database; no 5xx and every response
conforming to its documented schema.

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
        from hypothesis import HealthCheck, given, settings
        from schemathesis.checks import not_a_server_error
        from schemathesis.specs.openapi.checks import response_schema_conformance

        from batch_dashboard.api.app import create_api
        from tests.conftest import make_tenant

        tenant = make_tenant()
        schema = schemathesis.openapi.from_asgi("/v1/openapi.json", create_api())
        headers = {"Authorization": f"Bearer {tenant.api_key}"}
        started, operations, calls = time.perf_counter(), 0, 0
        for result in schema.get_all_operations():
            operation = result.ok()

            @given(case=operation.as_strategy())
            @settings(
                max_examples=args.examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case) -> None:
                nonlocal calls
                calls += 1
                response = case.call(headers=headers)
                case.validate_response(
                    response, checks=(not_a_server_error, response_schema_conformance)
                )

            exercise()
            operations += 1
            print(f"{operation.method.upper():6} {operation.path}: ok")
        print(
            f"\n{operations} operations, {calls} cases, {time.perf_counter() - started:.0f} s: "
            "no server error, every response matched its schema"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
