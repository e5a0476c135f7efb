"""recipients: JSON and CSV input → one validated shape (pure functions, no database)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from batch_dashboard.services import recipients
from batch_dashboard.services.errors import (
    MAX_REPORTED_PROBLEMS,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from batch_dashboard.services.recipients import RecipientRows

MB = 1 << 20


def csv_rows(
    text: str | bytes, *, max_recipients: int = 1000, max_bytes: int = MB
) -> RecipientRows:
    data = text.encode() if isinstance(text, str) else text
    return recipients.from_csv(data, max_recipients=max_recipients, max_bytes=max_bytes)


def json_rows(items: object, *, max_recipients: int = 1000) -> RecipientRows:
    return recipients.from_json(items, max_recipients=max_recipients)


def locs(rows: RecipientRows) -> list[list[Any]]:
    return [item["loc"] for item in rows.problems.items]


def messages(rows: RecipientRows) -> list[str]:
    return [item["message"] for item in rows.problems.items]


# --- CSV dialects -------------------------------------------------------------------------

PLAIN = "phone,first_name,appointment_time\n+14155552671,Ada,3pm\n+14155552672,Bob,4pm\n"
EXPECTED_VARS = [
    {"first_name": "Ada", "appointment_time": "3pm"},
    {"first_name": "Bob", "appointment_time": "4pm"},
]


@pytest.mark.parametrize(
    "data",
    [
        PLAIN.encode(),
        b"\xef\xbb\xbf" + PLAIN.encode(),  # UTF-8 byte-order mark (Excel "CSV UTF-8")
        PLAIN.replace(",", ";").encode(),
        PLAIN.replace(",", "\t").encode(),
        PLAIN.replace("\n", "\r\n").encode(),
        b"\xef\xbb\xbf" + PLAIN.replace(",", ";").replace("\n", "\r\n").encode(),
        PLAIN.rstrip("\n").encode(),  # no final newline
        PLAIN.replace("phone", " Phone ").encode(),
        PLAIN.replace("phone", "PHONE").encode(),
    ],
    ids=["lf", "bom", "semicolon", "tab", "crlf", "bom-semicolon-crlf", "no-eol", "Phone", "PHONE"],
)
def test_csv_dialects_give_the_same_rows(data: bytes) -> None:
    rows = recipients.validate(csv_rows(data))
    assert not rows.problems, rows.problems.items
    assert rows.phones == ["+14155552671", "+14155552672"]
    assert rows.variables == EXPECTED_VARS
    assert rows.columns == ["first_name", "appointment_time"]
    assert rows.locs == [["csv_file", "row", 2], ["csv_file", "row", 3]]


def test_csv_phone_number_header_is_accepted_and_named_in_locs() -> None:
    rows = recipients.validate(csv_rows("Phone_Number,first_name\n+14155552671,Ada\nnope,Bob\n"))
    assert rows.phones[0] == "+14155552671"
    assert rows.variables[0] == {"first_name": "Ada"}
    assert locs(rows) == [["csv_file", "row", 3, "phone_number"]]


def test_csv_quoting_follows_rfc_4180() -> None:
    text = (
        "phone,first_name,note\r\n"
        '"+1 (415) 555-2671","Smith, Jr.","say ""hi"""\r\n'
        '+14155552672,Bob,"line one\r\nline two"\r\n'
        '+14155552673,"Eve; Mallory","tab\there"\r\n'
    )
    rows = recipients.validate(csv_rows(text))
    assert not rows.problems, rows.problems.items
    assert rows.phones == ["+14155552671", "+14155552672", "+14155552673"]
    assert rows.variables == [
        {"first_name": "Smith, Jr.", "note": 'say "hi"'},
        {"first_name": "Bob", "note": "line one\r\nline two"},
        {"first_name": "Eve; Mallory", "note": "tab\there"},
    ]
    # The quoted newline makes row 3 two physical lines: the next record starts on line 5.
    assert rows.locs == [["csv_file", "row", 2], ["csv_file", "row", 3], ["csv_file", "row", 5]]


def test_csv_quoted_delimiters_with_semicolons() -> None:
    rows = csv_rows('phone;note\n+14155552671;"a;b"\n')
    assert not rows.problems
    assert rows.variables == [{"note": "a;b"}]


def test_csv_blank_lines_and_bare_delimiters_are_skipped_but_counted() -> None:
    text = "\n\nphone,first_name\n\n+14155552671,Ada\n,\n  ,  \n\n+14155552672,Bob\n\n"
    rows = recipients.validate(csv_rows(text))
    assert not rows.problems, rows.problems.items
    assert rows.phones == ["+14155552671", "+14155552672"]
    assert rows.locs == [["csv_file", "row", 5], ["csv_file", "row", 9]]


def test_csv_row_numbers_count_physical_lines_in_error_locs() -> None:
    text = 'phone,note\n+14155552671,"two\nlines"\n\n,,\nnot a number,x\n'
    rows = recipients.validate(csv_rows(text))
    assert locs(rows) == [["csv_file", "row", 6, "phone"]]


def test_csv_cells_are_trimmed_and_empty_cells_are_empty_strings() -> None:
    rows = csv_rows(
        " phone , first_name , appointment_time \n  +14155552671  ,  Ada  ,\n+14155552672,,  \n"
    )
    assert not rows.problems, rows.problems.items
    assert rows.columns == ["first_name", "appointment_time"]
    assert rows.phones == ["+14155552671", "+14155552672"]
    assert rows.variables == [
        {"first_name": "Ada", "appointment_time": ""},
        {"first_name": "", "appointment_time": ""},
    ]


def test_csv_short_rows_fill_missing_cells_with_empty_strings() -> None:
    rows = csv_rows("phone,first_name,appointment_time\n+14155552671\n")
    assert not rows.problems
    assert rows.variables == [{"first_name": "", "appointment_time": ""}]


def test_csv_values_stay_strings() -> None:
    rows = csv_rows("phone,count,flag,price\n+14155552671,007,true,1.50\n")
    assert rows.variables == [{"count": "007", "flag": "true", "price": "1.50"}]


@pytest.mark.parametrize("header", ["name,first_name", "mobile;note", "telephone", "phones,x"])
def test_csv_without_phone_column_is_an_error_on_the_header_row(header: str) -> None:
    rows = csv_rows(f"{header}\n+14155552671,Ada\n")
    assert locs(rows) == [["csv_file", "row", 1, "phone"]]
    assert "phone column" in messages(rows)[0]
    assert len(rows) == 0


def test_csv_header_after_blank_lines_keeps_its_physical_row_number() -> None:
    rows = csv_rows("\n\nfirst_name\nAda\n")
    assert locs(rows) == [["csv_file", "row", 3, "phone"]]


def test_csv_duplicate_numbers_name_both_rows() -> None:
    text = "phone,first_name\n+14155552671,Ada\n+14155552672,Bob\n+1 (415) 555-2671,Eve\n"
    rows = recipients.validate(csv_rows(text))
    assert locs(rows) == [["csv_file", "row", 4, "phone"]]
    message = messages(rows)[0]
    assert "+14155552671" in message and "row 2" in message and "row 4" in message
    assert rows.invalid_rows == {2}


def test_csv_duplicates_found_after_canonicalisation() -> None:
    rows = recipients.validate(csv_rows("phone\n+1 1 415 555 2671\n+14155552671\n"))
    assert rows.phones == ["+14155552671", "+14155552671"]
    assert locs(rows) == [["csv_file", "row", 3, "phone"]]


@pytest.mark.parametrize("name", ["first name", "1st", "first-name", "näme", "x" * 65, "a.b"])
def test_csv_invalid_variable_column_names(name: str) -> None:
    rows = csv_rows(f"phone,{name}\n+14155552671,Ada\n")
    assert locs(rows) == [["csv_file", "row", 1, name]]
    assert "variable name" in messages(rows)[0]


def test_csv_valid_variable_column_names() -> None:
    rows = csv_rows(f"phone,_x,A1,{'y' * 64}\n+14155552671,1,2,3\n")
    assert not rows.problems
    assert rows.columns == ["_x", "A1", "y" * 64]


def test_csv_duplicate_column_names() -> None:
    rows = csv_rows("phone,first_name,first_name,phone_number\n+14155552671,a,b,c\n")
    assert locs(rows) == [
        ["csv_file", "row", 1, "first_name"],
        ["csv_file", "row", 1, "phone_number"],
    ]


def test_csv_extra_cells_are_an_error_on_their_row() -> None:
    rows = csv_rows("phone,first_name\n+14155552671,Ada,extra\n+14155552672,Bob,,\n")
    assert locs(rows) == [["csv_file", "row", 2]]
    assert "3 cells" in messages(rows)[0] and "2 columns" in messages(rows)[0]
    assert rows.invalid_rows == {0}


def test_csv_value_under_an_unnamed_column() -> None:
    rows = csv_rows("phone,,first_name\n+14155552671,,Ada\n+14155552672,oops,Bob\n")
    assert locs(rows) == [["csv_file", "row", 3, "column 2"]]
    assert rows.variables == [{"first_name": "Ada"}, {"first_name": "Bob"}]


def test_csv_bad_quoting_is_reported_on_its_row() -> None:
    rows = csv_rows('phone,note\n+14155552671,ok\n+14155552672,"abc"def\n')
    assert locs(rows) == [["csv_file", "row", 3]]
    assert "not valid CSV" in messages(rows)[0]


def test_csv_phone_problems_per_row() -> None:
    text = "phone\n14155552671\n+1415555CALL\n\n+1415555\n+14155552671\n"
    rows = recipients.validate(csv_rows(text))
    assert locs(rows) == [
        ["csv_file", "row", 2, "phone"],
        ["csv_file", "row", 3, "phone"],
        ["csv_file", "row", 5, "phone"],
    ]
    assert "country code" in messages(rows)[0]
    assert "not a valid phone number for +1 (US)" in messages(rows)[2]


def test_csv_empty_phone_cell_is_required() -> None:
    rows = csv_rows("phone,first_name\n,Ada\n")
    assert rows.problems.items == [
        {"loc": ["csv_file", "row", 2, "phone"], "message": "is required"}
    ]


@pytest.mark.parametrize("data", [b"", b"\n\n", b"\xef\xbb\xbf", b" \r\n \t "])
def test_csv_empty_file(data: bytes) -> None:
    with pytest.raises(ValidationFailed) as raised:
        csv_rows(data)
    assert raised.value.details == [
        {"loc": ["csv_file"], "message": raised.value.details[0]["message"]}
    ]


def test_csv_header_without_rows() -> None:
    rows = csv_rows("phone,first_name\n\n")
    assert locs(rows) == [["csv_file"]]


@pytest.mark.parametrize(
    ("data", "row"),
    [
        (b"phone,name\n+14155552671,Andr\xe9\n", 2),  # Latin-1
        (b"phone,name\r\n+14155552671,ok\r\n+14155552672,\xff\xfe\r\n", 3),
        (b"\xff\xfephone\n", 1),
    ],
)
def test_csv_non_utf8_is_validation_failed_at_its_row(data: bytes, row: int) -> None:
    with pytest.raises(ValidationFailed) as raised:
        csv_rows(data)
    error = raised.value
    assert error.code == "validation_failed" and error.status == 422
    assert error.details is not None
    assert [d["loc"] for d in error.details] == [["csv_file", "row", row]]
    assert "UTF-8" in error.details[0]["message"]


@pytest.mark.parametrize(
    "data",
    [
        b"phone\n+14155552671\x00\n",
        "phone\n+14155552671\n".encode("utf-16"),  # UTF-16 is full of NULs
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",  # an .xlsx (zip) uploaded by mistake
    ],
)
def test_csv_nul_bytes_are_unsupported_media_type(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        csv_rows(data)
    assert raised.value.status == 415
    assert raised.value.details is not None and raised.value.details[0]["loc"] == ["csv_file"]


# --- size limit, checked while reading ----------------------------------------------------


class CountingStream(io.RawIOBase):
    """An endless CSV: a header, then the same row forever, counting what was read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.served = 0
        self.reads = 0
        self._pattern = b"+14155552671,Ada\n"

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if size is None or size < 0:
            size = self.total - self.served
        size = min(size, self.total - self.served)
        start = self.served
        self.served += size
        if start == 0:
            head = b"phone,first_name\n"
            return (head + self._pattern * (size // len(self._pattern) + 1))[:size]
        return (self._pattern * (size // len(self._pattern) + 1))[:size]


def test_csv_size_limit_is_enforced_while_reading_a_stream() -> None:
    limit = 100_000
    stream = CountingStream(total=50 * MB)
    with pytest.raises(PayloadTooLarge) as raised:
        recipients.from_csv(stream, max_recipients=10**6, max_bytes=limit)  # type: ignore[arg-type]
    assert raised.value.status == 413 and raised.value.code == "payload_too_large"
    assert raised.value.details == [
        {"loc": ["csv_file"], "message": raised.value.details[0]["message"]}
    ]
    # Stopped soon after the limit, far from the 50 MiB end of the stream.
    assert limit < stream.served <= limit + (1 << 16)
    assert stream.reads <= limit // (1 << 16) + 2


def test_csv_stream_at_the_limit_is_read_whole() -> None:
    data = ("phone,note\n+14155552671," + "x" * 1000 + "\n").encode()
    rows = recipients.from_csv(io.BytesIO(data), max_recipients=10, max_bytes=len(data))
    assert not rows.problems and len(rows) == 1
    with pytest.raises(PayloadTooLarge):
        recipients.from_csv(io.BytesIO(data), max_recipients=10, max_bytes=len(data) - 1)


def test_csv_bytes_over_the_limit() -> None:
    data = b"phone\n+14155552671\n"
    assert len(csv_rows(data, max_bytes=len(data))) == 1
    with pytest.raises(PayloadTooLarge):
        csv_rows(data, max_bytes=len(data) - 1)


def test_read_limited_returns_everything_under_the_limit() -> None:
    data = bytes(range(256)) * 1000
    assert recipients.read_limited(io.BytesIO(data), max_bytes=len(data)) == data


# --- max recipients -----------------------------------------------------------------------


def test_csv_max_recipients() -> None:
    ok = "phone\n" + "".join(f"+1415555{2600 + i}\n" for i in range(3))
    assert not csv_rows(ok, max_recipients=3).problems
    rows = csv_rows(ok + "+14155552699\n", max_recipients=3)
    assert locs(rows) == [["csv_file"]]
    assert "3" in messages(rows)[0]


def test_json_max_recipients() -> None:
    items = [{"phone": f"+1415555{2600 + i}"} for i in range(4)]
    assert not json_rows(items[:3], max_recipients=3).problems
    rows = json_rows(items, max_recipients=3)
    assert locs(rows) == [["recipients"]]
    assert len(rows) == 0


# --- JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, {}, {"phone": "+14155552671"}, "+14155552671", 3, True])
def test_json_recipients_must_be_a_list(value: object) -> None:
    rows = json_rows(value)
    assert locs(rows) == [["recipients"]]
    assert "list" in messages(rows)[0]


def test_json_recipients_must_not_be_empty() -> None:
    rows = json_rows([])
    assert locs(rows) == [["recipients"]]
    assert "at least one" in messages(rows)[0]


@pytest.mark.parametrize("item", ["+14155552671", 14155552671, None, ["+14155552671"], True])
def test_json_item_must_be_an_object(item: object) -> None:
    rows = json_rows([{"phone": "+14155552671"}, item])
    assert locs(rows) == [["recipients", 1]]
    assert rows.invalid_rows == {1}
    assert len(rows) == 2 and rows.variables[1] == {}


def test_json_phone_and_phone_number_are_the_same_field() -> None:
    rows = recipients.validate(
        json_rows([{"phone": "+14155552671"}, {"phone_number": "+1 (415) 555-2672"}])
    )
    assert not rows.problems
    assert rows.phones == ["+14155552671", "+14155552672"]
    assert rows.variables == [{}, {}]


def test_json_phone_number_errors_are_located_on_phone_number() -> None:
    rows = json_rows([{"phone_number": "4155552671"}])
    assert locs(rows) == [["recipients", 0, "phone_number"]]
    assert "country code" in messages(rows)[0]


def test_json_phone_number_alone_is_the_phone_and_not_a_variable() -> None:
    rows = json_rows([{"phone_number": "+14155552671"}])
    assert not rows.problems
    assert rows.phones == ["+14155552671"] and rows.variables == [{}]


def test_json_phone_and_phone_number_together_are_refused() -> None:
    rows = json_rows([{"phone": "+14155552671", "phone_number": "+14155552672"}])
    assert rows.problems.items == [
        {
            "loc": ["recipients", 0, "phone_number"],
            "message": "is the same field as phone: send only one",
        }
    ]


def test_json_missing_phone_is_located_on_phone() -> None:
    rows = json_rows([{"first_name": "Ada"}])
    assert rows.problems.items == [{"loc": ["recipients", 0, "phone"], "message": "is required"}]


@pytest.mark.parametrize(
    ("phone", "fragment"),
    [
        (None, "is required"),
        ("", "is required"),
        ("14155552671", "country code"),
        ("+1 415 555 CALL", "may contain only"),
        (14155552671, "not int"),
        ("+" + "1" * 16, "too long"),
    ],
)
def test_json_phone_syntax_problems(phone: object, fragment: str) -> None:
    rows = json_rows([{"phone": phone}])
    assert locs(rows) == [["recipients", 0, "phone"]]
    assert fragment in messages(rows)[0]
    assert rows.phones == [""]


def test_json_variables_merge_and_the_object_field_wins() -> None:
    rows = json_rows(
        [
            {
                "phone": "+14155552671",
                "dynamic_vars": {"first_name": "Ada", "appointment_time": "3pm"},
                "first_name": "Bob",
                "extra": "x",
            }
        ]
    )
    assert not rows.problems
    assert rows.variables == [{"first_name": "Bob", "appointment_time": "3pm", "extra": "x"}]


def test_json_null_dynamic_vars_is_no_variables() -> None:
    rows = json_rows([{"phone": "+14155552671", "dynamic_vars": None}])
    assert not rows.problems and rows.variables == [{}]


@pytest.mark.parametrize("value", ["a=b", ["a"], 3, True])
def test_json_dynamic_vars_must_be_an_object(value: object) -> None:
    rows = json_rows([{"phone": "+14155552671", "dynamic_vars": value}])
    assert locs(rows) == [["recipients", 0, "dynamic_vars"]]


@pytest.mark.parametrize(
    ("value", "kind"),
    [({"a": 1}, "an object"), ([1, 2], "a list"), (None, "null"), ({}, "an object")],
)
def test_json_nested_values_are_rejected_with_their_loc(value: object, kind: str) -> None:
    rows = json_rows(
        [
            {"phone": "+14155552671", "dynamic_vars": {"first_name": value}},
            {"phone": "+14155552672", "first_name": value},
        ]
    )
    assert locs(rows) == [
        ["recipients", 0, "dynamic_vars", "first_name"],
        ["recipients", 1, "first_name"],
    ]
    assert all(kind in message for message in messages(rows))
    assert rows.invalid_rows == {0, 1}


@pytest.mark.parametrize("name", ["first name", "1st", "first-name", "", "x" * 65, "é", "a\u0000"])
def test_json_invalid_variable_names(name: str) -> None:
    rows = json_rows(
        [
            {"phone": "+14155552671", "dynamic_vars": {name: "v"}},
            {"phone": "+14155552672", name: "v"},
        ]
    )
    assert locs(rows) == [["recipients", 0, "dynamic_vars", name], ["recipients", 1, name]]
    assert all("variable name" in message for message in messages(rows))


def test_json_valid_variable_names() -> None:
    names = ["_", "_x", "A1", "first_name", "x" * 64]
    rows = json_rows([{"phone": "+14155552671", **{name: "v" for name in names}}])
    assert not rows.problems
    assert list(rows.variables[0]) == names


def test_json_scalar_values_are_kept_as_given() -> None:
    values: dict[str, Any] = {
        "s": "3pm",
        "empty": "",
        "t": True,
        "f": False,
        "zero": 0,
        "n": 42,
        "big": 10**30,
        "neg": -7,
        "x": 1.5,
        "whole": 2.0,
    }
    rows = json_rows([{"phone": "+14155552671", "dynamic_vars": values}])
    assert not rows.problems
    kept = rows.variables[0]
    assert kept == values
    assert [type(kept[k]) for k in values] == [type(v) for v in values.values()]
    assert recipients.encode_variables(kept) == (
        '{"s":"3pm","empty":"","t":true,"f":false,"zero":0,"n":42,'
        '"big":1000000000000000000000000000000,"neg":-7,"x":1.5,"whole":2.0}'
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_json_non_finite_numbers_are_rejected(value: float) -> None:
    rows = json_rows(
        [
            {"phone": "+14155552671", "dynamic_vars": {"a": value}},
            {"phone": "+14155552672", "a": value},
        ]
    )
    assert locs(rows) == [["recipients", 0, "dynamic_vars", "a"], ["recipients", 1, "a"]]
    assert all("finite" in message for message in messages(rows))


def test_json_every_problem_is_reported() -> None:
    items = [
        {"phone": "4155552671"},
        "not an object",
        {"phone": "+14155552671", "bad name": 1, "nested": {"a": 1}},
        {"phone_number": None},
    ]
    rows = json_rows(items)
    assert locs(rows) == [
        ["recipients", 0, "phone"],
        ["recipients", 1],
        ["recipients", 2, "bad name"],
        ["recipients", 2, "nested"],
        ["recipients", 3, "phone_number"],
    ]
    assert rows.invalid_rows == {0, 1, 2, 3}


def test_problems_are_capped() -> None:
    rows = json_rows([{"phone": "nope"}] * (MAX_REPORTED_PROBLEMS + 50), max_recipients=10**6)
    assert len(rows.problems.items) == MAX_REPORTED_PROBLEMS
    assert rows.problems.full
    with pytest.raises(ValidationFailed) as raised:
        rows.problems.raise_if_any()
    assert raised.value.details is not None
    assert len(raised.value.details) == MAX_REPORTED_PROBLEMS
    # The details stop at the cap; the count does not.
    assert f"(and {MAX_REPORTED_PROBLEMS + 49:,} more)" in raised.value.message


# --- validate -----------------------------------------------------------------------------


def test_validate_canonicalises_and_reports_invalid_and_duplicate_numbers() -> None:
    rows = recipients.validate(
        json_rows(
            [
                {"phone": "+1 (415) 555-2671"},
                {"phone": "+1 1 415 555 2671"},
                {"phone": "+390612345678"},
                {"phone": "+1415555"},
                {"phone_number": "+14155552671"},
            ]
        )
    )
    assert rows.phones == [
        "+14155552671",
        "+14155552671",
        "+390612345678",
        "+1415555",
        "+14155552671",
    ]
    assert rows.problems.items == [
        {
            "loc": ["recipients", 1, "phone"],
            "message": "+14155552671 appears twice: recipients[0] and recipients[1]",
        },
        {"loc": ["recipients", 3, "phone"], "message": "is not a valid phone number for +1 (US)"},
        {
            "loc": ["recipients", 4, "phone_number"],
            "message": "+14155552671 appears twice: recipients[0] and recipients[4]",
        },
    ]
    assert rows.invalid_rows == {1, 3, 4}


def test_validate_leaves_clean_rows_alone() -> None:
    rows = recipients.validate(json_rows([{"phone": "+14155552671", "first_name": "Ada"}]))
    assert not rows.problems and rows.invalid_rows == set()
    assert rows.phones == ["+14155552671"] and rows.variables == [{"first_name": "Ada"}]


# --- drop_invalid -------------------------------------------------------------------------


def test_drop_invalid_keeps_only_clean_rows_in_order() -> None:
    text = (
        "phone,first_name\n"
        "+14155552671,Ada\n"
        "4155552672,NoPlus\n"
        "+14155552673,Bob,extra\n"
        "+14155552674,Eve\n"
        "+1 415 555 2671,Dup\n"
        "+1415555,Short\n"
    )
    rows = recipients.validate(csv_rows(text))
    assert rows.invalid_rows == {1, 2, 4, 5}
    kept = recipients.drop_invalid(rows)
    assert kept.phones == ["+14155552671", "+14155552674"]
    assert kept.variables == [{"first_name": "Ada"}, {"first_name": "Eve"}]
    assert kept.locs == [["csv_file", "row", 2], ["csv_file", "row", 5]]
    assert [kept.phone_loc(i)[-1] for i in range(len(kept))] == ["phone", "phone"]
    assert kept.columns == ["first_name"]
    assert not kept.problems and kept.invalid_rows == set()
    # What is left validates cleanly.
    assert not recipients.validate(kept).problems


def test_drop_invalid_of_json_rows() -> None:
    rows = recipients.validate(json_rows([{"phone": "+14155552671"}, "x", {"phone": None}]))
    kept = recipients.drop_invalid(rows)
    assert kept.phones == ["+14155552671"] and kept.locs == [["recipients", 0]]
    assert len(recipients.drop_invalid(recipients.drop_invalid(rows))) == 1
