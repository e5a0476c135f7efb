"""One vocabulary of call outcomes for every provider, the recipient's `failure_reason`, a retry
policy's `retry_on`, the console, the export, the wall and the webhooks.

Adapters translate what their platform says into an `Outcome`; everything after them reads
these values and their words, never a string of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    # A call that connected and ended: the recipient is completed, a conversation is stored.
    completed = "completed"
    # Calls that reached the network and did not connect (failure reasons).
    voicemail = "voicemail"
    no_answer = "no_answer"
    busy = "busy"
    declined = "declined"
    invalid_number = "invalid_number"
    provider_error = "provider_error"
    # The simulator's and the HTTP runtime's generic failure; retried like provider_error.
    call_failed = "call_failed"
    hung_up = "hung_up"
    outcome_unknown = "outcome_unknown"
    # Never placed: decided by Batch calls itself at the moment of dialing.
    do_not_call = "do_not_call"
    timezone_unknown = "timezone_unknown"
    no_calling_window = "no_calling_window"
    batch_failed = "batch_failed"

    @property
    def words(self) -> str:
        """How the console, the export and the wall say it."""
        return _RULES[self].words

    @property
    def retry_on(self) -> RetryOn | None:
        """The `retry_policy.retry_on` entry that covers this outcome, if any."""
        return _RULES[self].retry_on

    @property
    def redialled_by_retry(self) -> bool:
        """Whether `POST …/retry` dials a recipient that ended with it again."""
        return _RULES[self].redial


class RetryOn(StrEnum):
    """What a batch's retry policy may name in `retry_on`."""

    no_answer = "no_answer"
    busy = "busy"
    voicemail = "voicemail"
    declined = "declined"
    provider_error = "provider_error"


@dataclass(frozen=True)
class _Rule:
    words: str
    retry_on: RetryOn | None = None
    # Redialled by POST …/retry: what a retry policy may cover, and calls whose end is unknown
    # or that we hung up. Never: the number is listed, invalid, or could not be dialed at all.
    redial: bool = False


_RULES: dict[Outcome, _Rule] = {
    Outcome.completed: _Rule("Connected"),
    Outcome.voicemail: _Rule("Voicemail", RetryOn.voicemail, redial=True),
    Outcome.no_answer: _Rule("No answer", RetryOn.no_answer, redial=True),
    Outcome.busy: _Rule("Busy", RetryOn.busy, redial=True),
    Outcome.declined: _Rule("Declined", RetryOn.declined, redial=True),
    Outcome.invalid_number: _Rule("Invalid number"),
    Outcome.provider_error: _Rule("Telephony error", RetryOn.provider_error, redial=True),
    Outcome.call_failed: _Rule("Call failed", RetryOn.provider_error, redial=True),
    Outcome.hung_up: _Rule("Hung up", redial=True),
    Outcome.outcome_unknown: _Rule("Outcome unknown", redial=True),
    Outcome.do_not_call: _Rule("On do-not-call list"),
    Outcome.timezone_unknown: _Rule("Time zone unknown"),
    Outcome.no_calling_window: _Rule("No calling window"),
    Outcome.batch_failed: _Rule("Batch failed"),
}
assert set(_RULES) == set(Outcome), "every outcome has its rule"

RETRY_ON = tuple(RetryOn)
REDIALLED_BY_RETRY = tuple(outcome.value for outcome in Outcome if outcome.redialled_by_retry)
RETRY_ON_WORDS = {
    RetryOn.no_answer: "No answer",
    RetryOn.busy: "Busy",
    RetryOn.voicemail: "Voicemail",
    RetryOn.declined: "Declined",
    RetryOn.provider_error: "Call failed",
}


_BY_VALUE = {outcome.value: outcome for outcome in Outcome}


def parse(value: str | None) -> Outcome | None:
    """A stored or reported reason as an Outcome; None for none or one outside the vocabulary.
    (A dict, not `Outcome(value)`: it runs for every failed call, and the enum's lookup costs
    ten times more.)"""
    return _BY_VALUE.get(value) if value else None


def words(reason: str | None) -> str:
    """A failure reason for people (never a code alone); empty for none."""
    if not reason:
        return ""
    outcome = parse(reason)
    return outcome.words if outcome else reason.replace("_", " ").capitalize()
