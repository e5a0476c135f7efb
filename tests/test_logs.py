"""BATCH_LOG_FORMAT=json: one JSON object a line, with the ids a record carries."""

from __future__ import annotations

import json
import logging

from batch_dashboard.logs import JsonFormatter


def test_json_lines_carry_the_ids():
    record = logging.LogRecord(
        "batch_dashboard.worker", logging.INFO, __file__, 1, "call ended", None, None
    )
    record.batch_id, record.attempt_id = "batch_1", "att_1"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "call ended" and line["level"] == "INFO"
    assert line["batch_id"] == "batch_1" and line["attempt_id"] == "att_1"
