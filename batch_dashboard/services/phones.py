"""E.164 normalisation and validation.

`is_valid_number` is the rule (docs/api.md); this module only makes it cheap for 50,000 numbers:
- a fast path reads the country code and national number from "+digits" directly instead of
  `phonenumbers.parse`, and is used only where `parse` could not have read the digits
  differently (no national prefix to strip, no leading zero) and only to *accept*; everything
  else takes the full parse, so the answers are exactly those of parse + is_valid_number;
- on that path `is_valid_number` itself is `_valid_national`: the library's own steps
  (region from the country code, then the number-type patterns of the region's metadata) over
  the same metadata, with the patterns compiled once and the steps that cannot change the
  answer left out (tests/services/test_phones.py compares the two on every region's examples
  and on random numbers of every country code);
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
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberFormat, is_valid_number
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, REGION_CODE_FOR_NON_GEO_ENTITY

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


# A number description (`PhoneNumberDesc`): the lengths it allows (empty: any) and its pattern.
_Desc = tuple[tuple[int, ...], re.Pattern[str]]
# A region: its leading-digits pattern, whether its metadata's country code is the number's,
# its general description, and the descriptions of the number types that make a number valid.
_Region = tuple[re.Pattern[str] | None, bool, _Desc | None, tuple[_Desc, ...]]
_regions_cache: dict[int, list[_Region]] = {}


def _desc(desc: Any) -> _Desc | None:
    """`_is_number_matching_desc` is False for a missing description or an empty pattern."""
    if desc is None or not desc.national_number_pattern:
        return None
    return tuple(desc.possible_length), re.compile(desc.national_number_pattern)


def _region(region_code: str, metadata: Any, country_code: int) -> _Region:
    # The types `_number_type_helper` tries; any match means "not UNKNOWN", i.e. valid. Mobile
    # is tried only when its pattern is not the fixed line's.
    types = [
        metadata.premium_rate,
        metadata.toll_free,
        metadata.shared_cost,
        metadata.voip,
        metadata.personal_number,
        metadata.pager,
        metadata.uan,
        metadata.voicemail,
        metadata.fixed_line,
    ]
    if not metadata.same_mobile_and_fixed_line_pattern:
        types.append(metadata.mobile)
    leading = re.compile(metadata.leading_digits) if metadata.leading_digits is not None else None
    same_code = region_code == REGION_CODE_FOR_NON_GEO_ENTITY or (
        metadata.country_code == country_code
    )
    described = tuple(d for d in map(_desc, types) if d is not None)
    return leading, same_code, _desc(metadata.general_desc), described


def _regions(country_code: int) -> list[_Region]:
    """The regions of a country code in the library's order, with their metadata compiled."""
    regions = _regions_cache.get(country_code)
    if regions is None:
        regions = []
        codes = COUNTRY_CODE_TO_REGION_CODE[country_code]
        for region_code in codes:
            if region_code == REGION_CODE_FOR_NON_GEO_ENTITY:
                metadata = PhoneMetadata.metadata_for_nongeo_region(country_code)
            else:
                metadata = PhoneMetadata.metadata_for_region(region_code.upper(), None)
            if metadata is not None:
                regions.append(_region(region_code, metadata, country_code))
            elif len(codes) == 1:  # is_valid_number_for_region: no metadata, not valid
                regions.append((None, False, None, ()))
        _regions_cache[country_code] = regions
    return regions


def _of_some_type(national: str, region: _Region) -> bool:
    """`_number_type_helper(national, metadata) != UNKNOWN`."""
    _leading, _same_code, general, types = region
    if general is None:
        return False
    length = len(national)
    lengths, pattern = general
    if (lengths and length not in lengths) or pattern.fullmatch(national) is None:
        return False
    for lengths, pattern in types:
        if (not lengths or length in lengths) and pattern.fullmatch(national) is not None:
            return True
    return False


def _valid_national(country_code: int, national: str) -> bool:
    """`is_valid_number` of a known country code and a national number without leading zeros
    (so the national significant number is `national` itself)."""
    regions = _regions(country_code)
    if len(COUNTRY_CODE_TO_REGION_CODE[country_code]) == 1:
        return bool(regions) and regions[0][1] and _of_some_type(national, regions[0])
    # region_code_for_number: the first region whose leading digits match, or (regions without
    # leading digits) for which the number has a type; then that region's validity.
    for region in regions:
        leading, same_code = region[0], region[1]
        if leading is not None:
            if leading.match(national):
                return same_code and _of_some_type(national, region)
        elif _of_some_type(national, region):
            return same_code  # the same type check again, for the same metadata
    return False


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
    return _valid_national(country_code, national)


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
