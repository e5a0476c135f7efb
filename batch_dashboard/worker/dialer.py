"""The dialer loop: claim recipients, place their calls, record how each call ended.

Database work is batched (one claim, one placement, one recording transaction for many calls)
and runs in threads so the event loop — which in the embedded shape also serves the console's
websockets — never blocks. Outcomes are recorded in small groups as calls end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from batch_dashboard.clock import Clock, system_clock
from batch_dashboard.db import session_scope
from batch_dashboard.providers.base import (
    CallResult,
    CallStatus,
    NotPlaced,
    Provider,
    ProviderError,
)
from batch_dashboard.providers.registry import Registry
from batch_dashboard.services import breaker, dialing, platform_calls, transitions
from batch_dashboard.services.dialing import Claim
from batch_dashboard.services.outcomes import Outcome
from batch_dashboard.settings import Settings, get_settings
from batch_dashboard.telemetry import dial_latency
from batch_dashboard.worker.faults import AFTER_CLAIM, AFTER_PLACE, AFTER_RECORD, crash_point
from batch_dashboard.worker.outage import DatabaseWatch

log = logging.getLogger(__name__)

IDLE_SECONDS = 0.2  # how long an idle dialer waits before looking for work again
RECORD_GROUP = 500
RECORD_LINGER_SECONDS = 0.01


def _failed(reason: str, *, message: str | None = None) -> CallResult:
    return CallResult(status=CallStatus.failed, failure_reason=reason, message=message)


class Dialer:
    def __init__(
        self,
        *,
        settings: Settings | None = None,
        clock: Clock = system_clock,
        registry: Registry | None = None,
        watch: DatabaseWatch | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        # Shared with the sender and the scheduler: the claim loop below is what probes.
        self.watch = watch or DatabaseWatch()
        self.clock = clock
        self.registry = registry or Registry(settings=self.settings, clock=clock)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.live: dict[str, str] = {}  # attempt id → the registry's key of its provider
        # attempt id → workspace, for the calls this dialer claimed (its share of each cap)
        self.workspaces: dict[str, str] = {}
        self.call_ids: dict[str, str] = {}  # attempt id → the platform's call id
        self.stats: Counter[str] = Counter()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._ended: list[tuple[str, CallResult]] = []
        self._ended_signal = asyncio.Event()
        self._capacity_signal = asyncio.Event()
        self.claiming = True

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    # --- the loops ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        recorder = asyncio.create_task(self._record_loop(), name="dialer-recorder")
        renewer = asyncio.create_task(self._renew_loop(), name="dialer-leases")
        try:
            while not stop.is_set():
                # Cleared before claiming, not before sleeping: a call recorded while the claim
                # runs must wake the sleep below, or this dialer idles with room in its share.
                self._capacity_signal.clear()
                capacity = self.settings.worker_max_calls - len(self.live)
                try:
                    # Counted here: the event loop changes `workspaces` while the claim runs.
                    held = Counter(self.workspaces.values())
                    claims = (
                        await asyncio.to_thread(self._claim, capacity, held) if capacity > 0 else []
                    )
                except DBAPIError as error:
                    # The claim rolled back whole, so nothing is lost by looking again: after
                    # the idle pause for a deadlock victim, after a growing wait for a
                    # database that cannot be reached.
                    if (wait := self.watch.failed(error)) is not None:
                        await self.watch.pause(stop, wait)
                        continue
                    log.exception("claiming calls failed; trying again")
                    claims = []
                else:
                    self.watch.reached()
                if claims:
                    crash_point(AFTER_CLAIM)
                    await self._place(claims)
                # Even after a claim: it took what room it had (its share, the cap, the pacing
                # slice), so the next look is worth it once a call has ended (the capacity
                # signal) or after the idle pause. At once it would almost always be a claim
                # transaction for nothing, competing with the recording for the GIL.
                await self._sleep_until(stop, IDLE_SECONDS)
        finally:
            self.claiming = False
            await self._drain()
            recorder.cancel()
            renewer.cancel()
            await self._flush()

    async def _sleep_until(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._capacity_signal.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _claim(self, capacity: int, held: Counter[str]) -> list[Claim]:
        settings = self.settings
        with session_scope(write=True) as session:
            return dialing.claim_calls(
                session,
                limit=capacity,
                now=self.clock.now(),
                lease=self.lease,
                max_concurrent_calls=settings.max_concurrent_calls,
                calls_per_second=settings.calls_per_second,
                default_provider=settings.provider,
                worker_id=self.worker_id,
                held=held,
            )

    async def _place(self, claims: Sequence[Claim]) -> None:
        by_provider: dict[str, list[Claim]] = defaultdict(list)
        for claim in claims:
            self.live[claim.attempt_id] = claim.provider
            self.workspaces[claim.attempt_id] = claim.workspace_id
            by_provider[claim.provider].append(claim)
        for name, group in by_provider.items():
            try:
                provider = await self.registry.provider(name)
                started = time.perf_counter()
                results = await provider.place_calls([claim.request() for claim in group])
                dial_latency.observe(time.perf_counter() - started)
            except ProviderError as error:
                log.warning("provider %s refused %d calls: %s", name, len(group), error)
                results = [error] * len(group)
            crash_point(AFTER_PLACE)
            call_ids = [
                (claim.attempt_id, result.call_id)
                for claim, result in zip(group, results, strict=True)
                if isinstance(result, CallResult) and result.call_id
            ]
            if call_ids:
                # Before anything else: events, hang-up and settlement find the call by it.
                await asyncio.to_thread(self._store_call_ids, call_ids)
                self.call_ids.update(call_ids)
            refused: list[tuple[Claim, ProviderError]] = []
            for claim, result in zip(group, results, strict=True):
                self.stats["placed"] += 1
                if isinstance(result, NotPlaced):
                    await self._not_placed(claim, result)
                elif isinstance(result, ProviderError) and result.account and claim.connection_id:
                    refused.append((claim, result))
                elif isinstance(result, ProviderError) and result.retryable:
                    # The call may exist after all (an answer lost on the way): let the lease
                    # lapse so recovery settles the attempt with the provider's own answer.
                    self._forget(claim.attempt_id)
                    self._capacity_signal.set()
                elif isinstance(result, ProviderError):
                    self._ended_call(
                        claim.attempt_id, _failed(Outcome.provider_error, message=str(result))
                    )
                elif result.terminal:
                    self._ended_call(claim.attempt_id, result)
                else:
                    self._watch(provider, claim.attempt_id, result)
            if refused:
                await self._refused_account(refused)

    async def _refused_account(self, refused: list[tuple[Claim, ProviderError]]) -> None:
        """The platform refused the account itself (nothing was created): its batches pause
        and these recipients go back in line, unless a batch's breaker is off."""
        claim, error = refused[0]
        log.warning(
            "connection %s refused by its platform (%s): pausing its batches",
            claim.connection_id,
            error.account,
            extra={"connection_id": claim.connection_id},
        )
        failed = set(await asyncio.to_thread(self._pause_connection, refused))
        for claim, error in refused:
            if claim.attempt_id in failed:
                self._ended_call(
                    claim.attempt_id, _failed(Outcome.provider_error, message=str(error))
                )
            else:
                self._forget(claim.attempt_id)
        self._capacity_signal.set()

    def _pause_connection(self, refused: list[tuple[Claim, ProviderError]]) -> list[str]:
        claim, error = refused[0]
        assert claim.connection_id is not None and error.account is not None
        with session_scope(write=True) as session:
            return breaker.refused_account(
                session,
                connection_id=claim.connection_id,
                reason=breaker.TripReason(error.account),
                message=str(error),
                attempts=[(c.attempt_id, c.batch_id) for c, _ in refused],
                now=self.clock.now(),
            )

    async def _not_placed(self, claim: Claim, refusal: NotPlaced) -> None:
        """The platform created nothing and asked us to wait: the recipient goes back in line
        (its attempt not spent) and its account takes no call until the wait is over."""
        wait = refusal.retry_after if refusal.retry_after is not None else 1.0
        until = self.clock.now() + timedelta(seconds=min(max(wait, 0.5), 300))
        log.warning("provider %s asked to slow down until %s", claim.provider, until)
        await asyncio.to_thread(self._release_and_slow_down, claim, until)
        self._forget(claim.attempt_id)
        self._capacity_signal.set()

    def _release_and_slow_down(self, claim: Claim, until: datetime) -> None:
        with session_scope(write=True) as session:
            transitions.release_unplaced(session, attempt_id=claim.attempt_id, now=self.clock.now())
            if claim.connection_id:
                platform_calls.slow_down(session, connection_id=claim.connection_id, until=until)

    def _store_call_ids(self, call_ids: list[tuple[str, str]]) -> None:
        with session_scope(write=True) as session:
            platform_calls.store_call_ids(session, call_ids=call_ids)

    def _forget(self, attempt_id: str) -> None:
        self.live.pop(attempt_id, None)
        self.workspaces.pop(attempt_id, None)
        self.call_ids.pop(attempt_id, None)

    def _watch(self, provider: Provider, attempt_id: str, placed: CallResult) -> None:
        async def watch() -> None:
            try:
                result = await provider.wait(attempt_id, placed)
            except ProviderError as error:
                log.warning("lost track of attempt %s: %s", attempt_id, error)
                result = _failed("outcome_unknown")
            self._ended_call(attempt_id, result)

        task = asyncio.create_task(watch(), name=f"call-{attempt_id}")
        self._watchers[attempt_id] = task
        task.add_done_callback(lambda _t: self._watchers.pop(attempt_id, None))

    def _ended_call(self, attempt_id: str, result: CallResult) -> None:
        self._ended.append((attempt_id, result))
        self._ended_signal.set()

    async def _record_loop(self) -> None:
        while True:
            await self._ended_signal.wait()
            if len(self._ended) < min(RECORD_GROUP, len(self.live)):
                await asyncio.sleep(RECORD_LINGER_SECONDS)  # calls still live: let a few more end
            await self._flush()

    async def _flush(self) -> None:
        while self._ended:
            group, self._ended = self._ended[:RECORD_GROUP], self._ended[RECORD_GROUP:]
            if not self._ended:
                self._ended_signal.clear()
            try:
                recorded = await asyncio.to_thread(self._record, group)
            except Exception as error:
                # Keep the outcomes: the database may be back in a moment, and the lease keeps
                # every attempt ours until then.
                wait = self.watch.failed(error)
                if wait is None:
                    log.exception("recording %d call outcomes failed; retrying", len(group))
                self._ended[:0] = group
                self._ended_signal.set()
                await asyncio.sleep(1 if wait is None else wait)
                return
            crash_point(AFTER_RECORD)
            self.stats["recorded"] += recorded
            for attempt_id, _ in group:
                self._forget(attempt_id)
            self._capacity_signal.set()

    def _record(self, outcomes: Sequence[tuple[str, CallResult]]) -> int:
        with session_scope(write=True) as session:
            return len(dialing.record_outcomes(session, outcomes=outcomes, now=self.clock.now()))

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_seconds / 3)
            if self.live:
                attempts = list(self.live)
                until = self.clock.now() + self.lease
                try:
                    stopped = await asyncio.to_thread(self._renew, attempts, until)
                except Exception as error:
                    if self.watch.failed(error) is None:
                        log.exception("renewing %d leases failed", len(attempts))
                    continue
                if stopped:
                    await self._hang_up(stopped)

    def _renew(self, attempts: list[str], until: datetime) -> list[str]:
        """Renew the leases; answer the attempts whose batch was stopped with `hang_up`."""
        with session_scope(write=True) as session:
            dialing.renew_leases(session, attempt_ids=attempts, until=until)
            return dialing.attempts_to_hang_up(session, attempt_ids=attempts)

    async def _hang_up(self, attempt_ids: list[str]) -> None:
        for attempt_id in attempt_ids:
            name = self.live.get(attempt_id)
            if name is None:
                continue
            try:
                provider = await self.registry.provider(name)
                await provider.hang_up(attempt_id, self.call_ids.get(attempt_id))
            except ProviderError as error:
                log.warning("could not hang up %s: %s", attempt_id, error)

    async def _drain(self) -> None:
        """Let live calls finish for the grace period, then hand the rest to other workers."""
        deadline = asyncio.get_running_loop().time() + self.settings.shutdown_grace_seconds
        while self.live and asyncio.get_running_loop().time() < deadline:
            await self._flush()
            await asyncio.sleep(0.05)
        if not self.live:
            return
        remaining = list(self.live)
        for task in list(self._watchers.values()):
            task.cancel()
        log.info("handing %d live calls over to other workers", len(remaining))
        try:
            await asyncio.to_thread(self._hand_over, remaining)
        except DBAPIError:
            log.exception("could not hand the calls over; their leases lapse by themselves")
        self.live.clear()
        self.workspaces.clear()

    # --- recovery ----------------------------------------------------------------------------

    async def recover_expired(self) -> int:
        """Settle attempts whose worker died, with the provider's answer for each attempt."""
        attempts = await asyncio.to_thread(self._expired, self.clock.now())
        settled = 0
        for attempt in attempts:
            if attempt.attempt_id in self.live:
                continue
            try:
                provider = await self.registry.provider(attempt.provider)
                status = await provider.call_status(attempt.attempt_id, attempt.call_id)
            except ProviderError as error:
                log.warning("provider cannot say what became of %s: %s", attempt.attempt_id, error)
                status = _failed("outcome_unknown")
            if status is None:
                await asyncio.to_thread(self._release, attempt.attempt_id)
            elif status.terminal:
                await asyncio.to_thread(self._record, [(attempt.attempt_id, status)])
            elif self.claiming and await asyncio.to_thread(self._adopt, attempt.attempt_id):
                self.live[attempt.attempt_id] = attempt.provider
                if attempt.call_id:
                    self.call_ids[attempt.attempt_id] = attempt.call_id
                self._watch(provider, attempt.attempt_id, status)
            settled += 1
        return settled

    def _hand_over(self, attempt_ids: list[str]) -> None:
        with session_scope(write=True) as session:
            dialing.expire_leases(session, attempt_ids=attempt_ids, now=self.clock.now())

    def _expired(self, now: datetime) -> list[dialing.Attempt]:
        with session_scope() as session:
            return dialing.expired_attempts(
                session, now=now, limit=200, default_provider=self.settings.provider
            )

    def _release(self, attempt_id: str) -> None:
        with session_scope(write=True) as session:
            transitions.release_unplaced(session, attempt_id=attempt_id, now=self.clock.now())

    def _adopt(self, attempt_id: str) -> bool:
        now = self.clock.now()
        with session_scope(write=True) as session:
            return dialing.adopt(session, attempt_id=attempt_id, now=now, until=now + self.lease)
