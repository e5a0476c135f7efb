"""E.164 normalisation and validation.

`is_valid_number` is the rule (docs/api.md); this module only makes it cheap for 50,000 numbers:
- a fast path builds the PhoneNumber from "+digits" directly instead of `phonenumbers.parse`,
  and is used only where `parse` could not have read the digits differently (no national
  prefix to strip, no leading zero) and only to *accept*; everything else takes the full parse,
  so the answers are exactly those of parse + is_valid_number;
- large lists are checked on a second process while the caller stores the rows
  (`start_validity_check`).

Keep imports here light: the process pool imports this module in its children.
"""

from __future__ import annotations

import multiprocessing
import re
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberFormat, is_valid_number
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

# Characters people put in numbers for readability; docs/api.md says they are ignored.
_SEPARATORS = str.maketrans("", "", " -.()\t\u00a0\u2009\u202f\u2010\u2011\u2012\u2013")
_MAX_E164_DIGITS = 15

_national_prefix_cache: dict[int, re.Pattern[str] | None] = {}


def normalize(raw: object) -> tuple[str | None, str | None]:
    """Syntax only: `("+digits", None)` or `(None, reason)`. Validity comes from `check_valid`."""
    if not isinstance(raw, str):
        if raw is None:
            return None, "is required"
        return (
            None,
            f"must be a string in international format such as +14155552671, not {type(raw).__name__}",
        )
    text = raw.translate(_SEPARATORS)
    if not text:
        return None, "is required"
    if text[0] != "+":
        if text.isascii() and text.isdigit():
            return None, (
                "is missing the country code: write it in international format, "
                "starting with + and the country code (e.g. +14155552671)"
            )
        return None, "may contain only +, digits, spaces, dashes, dots and parentheses"
    digits = text[1:]
    if not (digits.isascii() and digits.isdigit()):
        return None, "may contain only +, digits, spaces, dashes, dots and parentheses"
    if len(digits) > _MAX_E164_DIGITS:
        return None, f"is too long: an international number has at most {_MAX_E164_DIGITS} digits"
    return text, None


def _national_prefix(country_code: int) -> re.Pattern[str] | None:
    if country_code not in _national_prefix_cache:
        region = COUNTRY_CODE_TO_REGION_CODE[country_code][0]
        metadata = (
            PhoneMetadata.metadata_for_nongeo_region(country_code)
            if region == "001"
            else PhoneMetadata.metadata_for_region(region)
        )
        pattern = metadata.national_prefix_for_parsing if metadata else None
        _national_prefix_cache[country_code] = re.compile(pattern) if pattern else None
    return _national_prefix_cache[country_code]


def _fast_accept(digits: str) -> bool:
    if digits[:1] == "0":
        return False  # no country code starts with 0; parse refuses "+0…", and so must we
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return False
    national = digits[length:]
    if not national or national[0] == "0":
        return False
    prefix = _national_prefix(country_code)
    if prefix is not None and prefix.match(national):
        return False
    return is_valid_number(PhoneNumber(country_code=country_code, national_number=int(national)))


def check_valid(e164: str) -> str | None:
    """The canonical E.164 form of a syntactically clean `+digits`, or None when invalid."""
    if _fast_accept(e164[1:]):
        return e164
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if not is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def check_many(numbers: Sequence[str]) -> list[str | None]:
    return [check_valid(number) for number in numbers]


def invalid_reason(e164: str) -> str:
    """Why `check_valid` refused a number, in words."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "is not a valid phone number: its country code is not known"
    region = phonenumbers.region_code_for_country_code(parsed.country_code)
    where = f"+{parsed.country_code}" + (f" ({region})" if region not in ("ZZ", "001") else "")
    return f"is not a valid phone number for {where}"


def for_people(e164: str) -> str:
    """`+14155552671` → `+1 415-555-2671`; anything unparsable is shown as stored."""
    try:
        return phonenumbers.format_number(
            phonenumbers.parse(e164, None), PhoneNumberFormat.INTERNATIONAL
        )
    except phonenumbers.NumberParseException:
        return e164


# --- the second core ---------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()
_POOL_WORKERS = 2


def _get_pool() -> ProcessPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            # forkserver: the server process is multi-threaded, and fork() would copy its locks.
            _pool = ProcessPoolExecutor(
                max_workers=_POOL_WORKERS, mp_context=multiprocessing.get_context("forkserver")
            )
        return _pool


def _example_numbers() -> list[str]:
    examples = (phonenumbers.example_number(region) for region in phonenumbers.SUPPORTED_REGIONS)
    return [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in examples if n]


def warm_pool() -> None:
    """Start the pool's processes ahead of the first large batch, with every region's metadata
    and patterns loaded (phonenumbers loads them lazily, which costs the first batch ~0.2 s)."""
    pool = _get_pool()
    examples = _example_numbers()
    for future in [pool.submit(check_many, examples) for _ in range(_POOL_WORKERS)]:
        future.result()


def shutdown_pool() -> None:
    global _pool
    with _pool_lock:
        if _pool is not None:
            _pool.shutdown(cancel_futures=True)
            _pool = None


class ValidityCheck:
    """The canonical forms of many numbers, in the order they were added.

    With `parallel`, each `add` goes to the pool at once (so a CSV can be checked while it is
    still being read); otherwise the numbers are checked on this core when `result` is asked.
    """

    def __init__(self, numbers: Sequence[str] = (), *, parallel: bool) -> None:
        self._numbers: list[str] = []
        self._futures: list[Future[list[str | None]]] = []
        self._parallel = parallel
        self.add(numbers)

    def add(self, numbers: Sequence[str]) -> None:
        if not numbers:
            return
        start = len(self._numbers)
        self._numbers.extend(numbers)
        if not self._parallel:
            return
        try:
            pool = _get_pool()
            step = -(-len(numbers) // _POOL_WORKERS)
            self._futures += [
                pool.submit(check_many, self._numbers[i : i + step])
                for i in range(start, len(self._numbers), step)
            ]
        except (RuntimeError, OSError):
            shutdown_pool()  # a broken pool: this core still knows the rule
            self._parallel = False

    def result(self) -> list[str | None]:
        if not self._parallel:
            return check_many(self._numbers)
        canonical: list[str | None] = []
        try:
            for future in self._futures:
                canonical.extend(future.result())
        except RuntimeError:  # BrokenProcessPool: a child died
            shutdown_pool()
            return check_many(self._numbers)
        return canonical
