"""phones: syntax rules of `normalize`, `check_valid` == parse + is_valid_number, `for_people`.

Pure functions: no database.
"""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from batch_dashboard.services import phones

SEED = 20240611


def naive(number: str) -> str | None:
    """The rule of docs/api.md, written the slow obvious way."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def example_numbers() -> list[str]:
    """Every region's example numbers (general, mobile, toll free) and the non-geo entities'."""
    found: set[str] = set()
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        candidates = [
            phonenumbers.example_number(region),
            phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE),
            phonenumbers.example_number_for_type(region, PhoneNumberType.TOLL_FREE),
        ]
        found.update(e164(n) for n in candidates if n is not None)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            found.add(e164(example))
    return sorted(found)


def variations(numbers: list[str], rng: random.Random) -> list[str]:
    """Digit edits of each example behind its (unchanged) country code, plus random numbers."""
    out: set[str] = set()
    for number in numbers:
        code = str(phonenumbers.parse(number, None).country_code)
        national = number[1 + len(code) :]
        edits = [
            "0" + national,  # a national trunk prefix written after the country code
            national[:-1],
            national + str(rng.randrange(10)),
        ]
        for _ in range(5):
            i = rng.randrange(len(national))
            edits.append(national[:i] + str(rng.randrange(10)) + national[i + 1 :])
            edits.append("".join(str(rng.randrange(10)) for _ in national))
        for edit in edits:
            candidate = f"+{code}{edit}"
            if 2 <= len(candidate) - 1 <= 15:
                out.add(candidate)
    for _ in range(1500):
        length = rng.randint(2, 15)
        out.add(
            "+"
            + str(rng.randint(1, 9))
            + "".join(str(rng.randrange(10)) for _ in range(length - 1))
        )
    return sorted(out)


EXAMPLES = example_numbers()
GENERATED = variations(EXAMPLES, random.Random(SEED))


# --- normalize ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "+14155552671",
        "+1 415 555 2671",
        "+1-415-555-2671",
        "+1.415.555.2671",
        "+1 (415) 555-2671",
        "(+1) 415 555 2671",
        " +1 415\t555 2671 ",
        "+1\u00a0415\u00a0555\u00a02671",  # no-break spaces, as spreadsheets paste them
        "+1 415 555\u20132671",  # en dash
    ],
)
def test_normalize_ignores_spaces_dashes_dots_and_parentheses(raw: str) -> None:
    assert phones.normalize(raw) == ("+14155552671", None)


@pytest.mark.parametrize(
    "raw", ["14155552671", "4155552671", "(415) 555-2671", "0044 20 7946 0958"]
)
def test_normalize_without_plus_says_the_country_code_is_missing(raw: str) -> None:
    number, reason = phones.normalize(raw)
    assert number is None
    assert reason is not None and "country code" in reason


@pytest.mark.parametrize(
    "raw",
    [
        "+1415555CALL",
        "+1 415 555 267l",
        "1-800-FLOWERS",
        "+1/415/555/2671",
        "++14155552671",
        "+1 415 555 2671 ext 3",
        "+1415555#2671",
        "+\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff12\uff16\uff17\uff11",  # full-width digits
        "+\u0661\u0664\u0661\u0665",  # Arabic-Indic digits
        "+",
    ],
)
def test_normalize_refuses_letters_and_other_characters(raw: str) -> None:
    number, reason = phones.normalize(raw)
    assert number is None
    assert reason is not None
    assert "country code" not in reason or not raw.startswith("+")


def test_normalize_accepts_fifteen_digits_and_refuses_sixteen() -> None:
    assert phones.normalize("+" + "1" * 15) == ("+" + "1" * 15, None)
    number, reason = phones.normalize("+" + "1" * 16)
    assert number is None
    assert reason is not None and "too long" in reason and "15" in reason
    number, reason = phones.normalize("+1 415 555 2671 1234 5")  # 16 digits after separators go
    assert number is None and reason is not None and "too long" in reason


@pytest.mark.parametrize("raw", [None, "", "   ", " - . ( ) "])
def test_normalize_empty_is_required(raw: object) -> None:
    assert phones.normalize(raw) == (None, "is required")


@pytest.mark.parametrize("raw", [14155552671, 1.5, True, ["+14155552671"], {"n": 1}])
def test_normalize_refuses_non_strings_naming_the_type(raw: object) -> None:
    number, reason = phones.normalize(raw)
    assert number is None
    assert reason is not None and type(raw).__name__ in reason


# --- check_valid == parse + is_valid_number + E.164 ---------------------------------------


def test_example_pool_is_broad() -> None:
    regions = {phonenumbers.region_code_for_number(phonenumbers.parse(n, None)) for n in EXAMPLES}
    assert len(regions) > 200
    assert len(GENERATED) > 3000
    # Both answers are well represented, so "equal" is not trivially "all None".
    valid = sum(1 for n in GENERATED if naive(n) is not None)
    assert 500 < valid < len(GENERATED) - 500


def test_check_valid_accepts_every_region_example() -> None:
    mismatches = [(n, phones.check_valid(n)) for n in EXAMPLES if phones.check_valid(n) != n]
    assert mismatches == []


def test_check_valid_equals_parse_and_is_valid_number_on_generated_numbers() -> None:
    mismatches = []
    for number in GENERATED:
        clean, reason = phones.normalize(number)
        assert reason is None and clean == number
        if phones.check_valid(number) != naive(number):
            mismatches.append((number, phones.check_valid(number), naive(number)))
    assert mismatches == []


def national_cases(rng: random.Random) -> list[tuple[int, str]]:
    """(country code, national number without a leading zero): every example and its edits, and
    for every country code numbers of every length up to 15 digits in all, 40 random each, plus
    numbers that keep an example's first digits (mostly valid) so both answers are frequent."""
    cases: set[tuple[int, str]] = set()
    for number in [*EXAMPLES, *GENERATED]:
        for length in (1, 2, 3):
            code, national = int(number[1 : 1 + length]), number[1 + length :]
            if code in COUNTRY_CODE_TO_REGION_CODE:
                if national and national[0] != "0":
                    cases.add((code, national))
                break
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        for length in range(2, 16 - len(str(code))):
            for _ in range(40 // length + 1):
                digits = str(rng.randint(1, 9)) + "".join(
                    str(rng.randrange(10)) for _ in range(length - 1)
                )
                cases.add((code, digits))
    for number in EXAMPLES:
        code = phonenumbers.parse(number, None).country_code
        national = number[1 + len(str(code)) :]
        for keep in range(1, len(national)):
            for _ in range(3):
                tail = "".join(str(rng.randrange(10)) for _ in national[keep:])
                if national[0] != "0":
                    cases.add((code, national[:keep] + tail))
    return sorted(cases)


def test_valid_national_equals_is_valid_number() -> None:
    """The fast path's validity is the library's, in both directions (not only to accept)."""
    cases = national_cases(random.Random(SEED))
    answers = [
        phonenumbers.is_valid_number(
            phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
        )
        for code, national in cases
    ]
    assert len(cases) > 20_000 and 3_000 < sum(answers) < len(cases) - 3_000
    mismatches = [
        (code, national, expected)
        for (code, national), expected in zip(cases, answers, strict=True)
        if phones._valid_national(code, national) != expected
    ]
    assert mismatches == []


def test_check_many_equals_check_valid() -> None:
    sample = GENERATED[::7]
    assert phones.check_many(sample) == [phones.check_valid(n) for n in sample]


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("+1 415 555 2671", "+14155552671"),
        ("+1 1 415 555 2671", "+14155552671"),  # the US trunk prefix written after +1
        ("+390612345678", "+390612345678"),  # Italian leading zero is part of the number
        ("+39 06 1234 5678", "+390612345678"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+44 (0) 20 7946 0958", "+442079460958"),  # UK trunk 0 in parentheses
        ("+49 30 901820", "+4930901820"),
        ("+33 6 12 34 56 78", "+33612345678"),
        ("+7 912 345 67 89", "+79123456789"),
        ("+800 1234 5678", "+80012345678"),  # non-geographic (international freephone)
    ],
)
def test_check_valid_tricky_valid_numbers(raw: str, canonical: str) -> None:
    clean, reason = phones.normalize(raw)
    assert reason is None and clean is not None
    assert phones.check_valid(clean) == canonical == naive(clean)


@pytest.mark.parametrize(
    "raw",
    [
        "+1 415 555",  # too short
        "+1 415 555 26711",  # too long for the US
        "+1 000 555 2671",  # area code 000
        "+999 123 4567",  # unknown country code
        "+0 415 555 2671",
        "+44 20 7946 09",
        "+12",
        "+00",
    ],
)
def test_check_valid_refuses_invalid_numbers(raw: str) -> None:
    clean, reason = phones.normalize(raw)
    assert reason is None and clean is not None
    assert phones.check_valid(clean) is None
    assert naive(clean) is None


@pytest.mark.parametrize("raw", ["+01 415 555 2671", "+001 415 555 2671", "+0821133034515"])
def test_check_valid_refuses_a_leading_zero_before_the_country_code(raw: str) -> None:
    clean, reason = phones.normalize(raw)
    assert reason is None and clean is not None
    assert naive(clean) is None  # phonenumbers: "Could not interpret numbers after plus-sign"
    assert phones.check_valid(clean) is None


def test_validity_check_inline_equals_check_many() -> None:
    sample = GENERATED[:200]
    check = phones.ValidityCheck(sample, parallel=False)
    assert check.result() == phones.check_many(sample)


def test_invalid_reason_names_the_country_or_the_unknown_code() -> None:
    assert phones.invalid_reason("+1415555") == "is not a valid phone number for +1 (US)"
    assert "+44 (GB)" in phones.invalid_reason("+44207946")
    assert "country code is not known" in phones.invalid_reason("+999123456")


# --- for_people ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("+14155552671", "+1 415-555-2671"),
        ("+442079460958", "+44 20 7946 0958"),
        ("+390612345678", "+39 06 1234 5678"),
        ("+33612345678", "+33 6 12 34 56 78"),
        ("+80012345678", "+800 1234 5678"),
    ],
)
def test_for_people_formats_internationally(stored: str, shown: str) -> None:
    assert phones.for_people(stored) == shown


@pytest.mark.parametrize("stored", ["+999", "garbage", "", "+"])
def test_for_people_shows_unparsable_values_as_stored(stored: str) -> None:
    assert phones.for_people(stored) == stored


def test_for_people_round_trips_through_normalize_for_examples() -> None:
    for number in EXAMPLES[::5]:
        clean, reason = phones.normalize(phones.for_people(number))
        assert reason is None, (number, phones.for_people(number))
        assert phones.check_valid(clean or "") == number
