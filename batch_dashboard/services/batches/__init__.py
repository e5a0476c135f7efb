"""Batches, by concern: `rules` (fields read and checked, the caller rule), `commands` (create
and the status changes a user asks for), `reads` (the public forms, list, detail, the version
caches), `exports` (conversations and the results CSV). The doors import what they use from here.
"""

from batch_dashboard.services.batches.commands import (
    cancel_batch,
    create_batch,
    pause_batch,
    resume_batch,
    retry_batch,
    stop_batch,
)
from batch_dashboard.services.batches.exports import export_results_csv, get_conversation
from batch_dashboard.services.batches.reads import (
    BATCH_STATUSES,
    LIST_LIMIT_DEFAULT,
    LIST_LIMIT_MAX,
    batch_detail,
    batch_detail_json,
    batch_detail_json_from_memory,
    batch_public,
    calls_per_minute,
    get_batch,
    list_batches,
    list_batches_from_memory,
    recipients_page,
    versions,
    workspace_marker,
)
from batch_dashboard.services.batches.rules import (
    DEFAULT_RINGING_TIMEOUT_MS,
    MAX_SCHEDULE_AHEAD,
    NAME_LENGTH,
    RINGING_TIMEOUT_RANGE,
    BatchFields,
    CallerProblem,
    caller_number,
    caller_number_id,
    caller_problem,
    check_caller,
    parse_fields,
)

__all__ = [
    "BATCH_STATUSES",
    "DEFAULT_RINGING_TIMEOUT_MS",
    "LIST_LIMIT_DEFAULT",
    "LIST_LIMIT_MAX",
    "MAX_SCHEDULE_AHEAD",
    "NAME_LENGTH",
    "RINGING_TIMEOUT_RANGE",
    "BatchFields",
    "CallerProblem",
    "batch_detail",
    "batch_detail_json",
    "batch_detail_json_from_memory",
    "batch_public",
    "caller_number",
    "caller_number_id",
    "caller_problem",
    "calls_per_minute",
    "cancel_batch",
    "check_caller",
    "create_batch",
    "export_results_csv",
    "get_batch",
    "get_conversation",
    "list_batches",
    "list_batches_from_memory",
    "parse_fields",
    "pause_batch",
    "recipients_page",
    "resume_batch",
    "retry_batch",
    "stop_batch",
    "versions",
    "workspace_marker",
]
