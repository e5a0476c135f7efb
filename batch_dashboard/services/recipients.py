"""Recipients from JSON and from CSV → one validated shape.

The console's preview and the API's upload call these same functions, so a file that previews
cleanly is a file the API accepts.
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import re
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import orjson

from batch_dashboard.services import phones
from batch_dashboard.services.errors import (
    Loc,
    PayloadTooLarge,
    Problems,
    UnsupportedMediaType,
    ValidationFailed,
    nul_problem,
)

VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# The one limit on a variable's value, for JSON and CSV alike (docs/api.md).
VALUE_MAX_CHARS = 128 * 1024
# The csv module refuses a longer field itself, as "not valid CSV" for the whole rest of the
# file; let every cell through to VALUE_MAX_CHARS, which names its row and column. The
# upload's byte limit bounds what a cell can cost.
csv.field_size_limit(2**31 - 1)
PHONE_FIELDS = ("phone", "phone_number")
_READ_CHUNK = 1 << 16
_SNIFF_CHARS = 1 << 16
_DELIMITERS = (",", ";", "\t")
# "+" and 1–15 ASCII digits: `phones.normalize` would answer the text itself.
_CLEAN_E164 = re.compile(r"\+[0-9]{1,15}")

Scalar = str | int | float | bool


@dataclass
class RecipientRows:
    """Parsed recipients, in input order, with every problem found so far.

    `phones[i]` is the syntactically clean `+digits` form ("" where the row has a phone
    problem); `check_numbers` + `apply_validity` add validity, canonical forms and duplicates.
    """

    source: str = "json"  # or "csv": decides how rows are named in error locations
    phones: list[str] = field(default_factory=list)
    variables: list[dict[str, Scalar]] = field(default_factory=list)
    # CSV: the physical row of each recipient (the header is row 1).
    lines: list[int] = field(default_factory=list)
    # JSON: the field each recipient's number came from ("phone" or "phone_number").
    phone_fields: list[str] = field(default_factory=list)
    csv_phone_column: str = "phone"
    columns: list[str] = field(default_factory=list)  # CSV: the variable columns, in file order
    problems: Problems = field(default_factory=Problems)
    # Rows that have a problem (by index), so a preview can mark them and "drop invalid rows".
    invalid_rows: set[int] = field(default_factory=set)
    # The number as it was written, for rows whose number was refused: a preview shows what
    # the person typed next to why, not an empty cell.
    as_written: dict[int, str] = field(default_factory=dict)
    # Numbers already sent for checking while the file was still being read.
    check: phones.ValidityCheck | None = None
    checked_upto: int = 0

    def __len__(self) -> int:
        return len(self.phones)

    def loc(self, index: int) -> Loc:
        if self.source == "csv":
            return ["csv_file", "row", self.lines[index]]
        return ["recipients", index]

    def phone_loc(self, index: int) -> Loc:
        field_name = self.csv_phone_column if self.source == "csv" else self.phone_fields[index]
        return [*self.loc(index), field_name]

    @property
    def locs(self) -> list[Loc]:
        return [self.loc(index) for index in range(len(self))]

    def flag(self, index: int, loc: Loc, message: str) -> None:
        self.invalid_rows.add(index)
        self.problems.add(loc, message)

    def describe(self, index: int) -> str:
        return f"row {self.lines[index]}" if self.source == "csv" else f"recipients[{index}]"

    def send_for_checking(self, *, parallel: bool) -> phones.ValidityCheck:
        """Send the numbers not yet sent to the validity check (started on first use)."""
        if self.check is None:
            # No check under way (none yet, or an earlier one already applied): all numbers.
            self.checked_upto = 0
            self.check = phones.ValidityCheck(parallel=parallel)
        fresh = [number for number in self.phones[self.checked_upto :] if number]
        self.checked_upto = len(self.phones)
        self.check.add(fresh)
        return self.check


def _check_value(value: object) -> str | None:
    if isinstance(value, str):
        return _check_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    kind = {dict: "an object", list: "a list", type(None): "null"}.get(
        type(value), type(value).__name__
    )
    return f"must be a string, number or boolean, not {kind}"


def _check_text(value: str) -> str | None:
    if len(value) > VALUE_MAX_CHARS:
        return f"must be at most {VALUE_MAX_CHARS:,} characters (got {len(value):,})"
    return nul_problem(value)


def _bad_name_message(name: str) -> str:
    return (
        f"{name!r} is not a valid variable name: use letters, digits and underscores, "
        "starting with a letter or underscore, at most 64 characters"
    )


def _add_phone(rows: RecipientRows, index: int, raw: object, loc: Loc) -> None:
    number, reason = phones.normalize(raw)
    if reason is not None:
        rows.flag(index, loc, reason)
        rows.as_written[index] = "" if raw is None else str(raw)[:100]
        number = ""
    rows.phones.append(number or "")


def from_json(recipients: object, *, max_recipients: int) -> RecipientRows:
    """Validate the `recipients` list of a JSON request (everything but number validity)."""
    rows = RecipientRows()
    if not isinstance(recipients, list):
        rows.problems.add(["recipients"], "must be a list of recipient objects")
        return rows
    if not recipients:
        rows.problems.add(["recipients"], "must contain at least one recipient")
        return rows
    if len(recipients) > max_recipients:
        rows.problems.add(
            ["recipients"],
            f"has {len(recipients):,} recipients; a batch holds at most {max_recipients:,}",
        )
        return rows
    for index, item in enumerate(recipients):
        where: Loc = ["recipients", index]
        if not isinstance(item, dict):
            rows.flag(index, where, "must be an object with a phone field")
            rows.phones.append("")
            rows.variables.append({})
            rows.phone_fields.append("phone")
            continue
        phone_key = "phone_number" if "phone" not in item and "phone_number" in item else "phone"
        rows.phone_fields.append(phone_key)
        if "phone" in item and "phone_number" in item:
            # Two names for one field: which one to call is not ours to guess.
            rows.flag(index, [*where, "phone_number"], "is the same field as phone: send only one")
            rows.phones.append("")
        else:
            _add_phone(rows, index, item.get(phone_key), [*where, phone_key])
        variables: dict[str, Scalar] = {}
        nested = item.get("dynamic_vars")
        if nested is not None:
            if isinstance(nested, dict):
                _take_variables(rows, index, nested, [*where, "dynamic_vars"], variables)
            else:
                rows.flag(index, [*where, "dynamic_vars"], "must be an object of variables")
        extra = {k: v for k, v in item.items() if k not in ("dynamic_vars", *PHONE_FIELDS)}
        # Fields on the recipient object win over dynamic_vars of the same name (docs/api.md).
        _take_variables(rows, index, extra, where, variables)
        rows.variables.append(variables)
    return rows


def _take_variables(
    rows: RecipientRows, index: int, source: dict[str, Any], where: Loc, into: dict[str, Scalar]
) -> None:
    for name, value in source.items():
        if not VARIABLE_NAME.match(name):
            rows.flag(index, [*where, name], _bad_name_message(name))
            continue
        reason = _check_value(value)
        if reason is not None:
            rows.flag(index, [*where, name], reason)
            continue
        into[name] = value


def read_limited(stream: BinaryIO, *, max_bytes: int) -> bytes:
    """Read a whole upload, refusing it as soon as it passes `max_bytes`."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(_READ_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"csv_file is larger than the limit of {max_bytes:,} bytes",
                [{"loc": ["csv_file"], "message": f"must be at most {max_bytes:,} bytes"}],
            )
        chunks.append(chunk)
    return b"".join(chunks)


def decode_csv(data: bytes) -> str:
    if b"\x00" in data:
        raise UnsupportedMediaType(
            "csv_file is not a text file: upload a CSV saved as UTF-8",
            [
                {
                    "loc": ["csv_file"],
                    "message": "contains binary data (NUL bytes); expected UTF-8 CSV text",
                }
            ],
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        row = data[: error.start].count(b"\n") + 1
        raise ValidationFailed.at(
            ["csv_file", "row", row],
            f"is not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "save the file as CSV UTF-8",
        ) from None


# What our export (and spreadsheets) put a `'` before so that the cell is not run as a formula:
# the ASCII and full-width formula signs, and whitespace (which some spreadsheets skip).
_NEUTRALISED_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")


def _cell(raw: str) -> str:
    """A cell trimmed, without the `'` an export put before a formula-like value, so that an
    exported file uploads again unchanged. A `'` before anything else is the user's own."""
    cell = raw.strip()
    if len(cell) > 1 and cell[0] == "'" and (cell[1] in _NEUTRALISED_STARTS or cell[1].isspace()):
        return cell[1:]
    return cell


def _normalised_header(cell: str) -> str:
    return cell.strip().lower()


def _sniff_delimiter(text: str) -> str:
    """The delimiter under which the header has a phone column; else the one giving most cells."""
    first_line = ""
    # The header is near the start: split a prefix into lines, not the whole file (its last
    # line may be cut, so it only counts when the prefix is the whole text).
    for chunk in (text[:_SNIFF_CHARS], text):
        lines = chunk.splitlines()
        if len(chunk) < len(text):
            lines = lines[:-1]
        found = next((line for line in lines if line.strip()), None)
        if found is not None:
            first_line = found
            break
        if len(chunk) == len(text):
            break
    best, best_cells = ",", 0
    for delimiter in _DELIMITERS:
        cells = next(csv.reader([first_line], delimiter=delimiter), [])
        if any(_normalised_header(cell) in PHONE_FIELDS for cell in cells):
            return delimiter
        if len(cells) > best_cells:
            best, best_cells = delimiter, len(cells)
    return best


def from_csv(
    source: bytes | BinaryIO,
    *,
    max_recipients: int,
    max_bytes: int,
    check_while_reading_from: int | None = None,
) -> RecipientRows:
    """Parse a CSV upload: header row with a phone column, every other column a variable.

    With `check_while_reading_from=N`, a file of N rows or more has its numbers sent to the
    validation processes in chunks while the rest of it is still being read.
    """
    data = source if isinstance(source, bytes) else read_limited(source, max_bytes=max_bytes)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"csv_file is larger than the limit of {max_bytes:,} bytes",
            [{"loc": ["csv_file"], "message": f"must be at most {max_bytes:,} bytes"}],
        )
    text = decode_csv(data)
    if not text.strip():
        raise ValidationFailed.at(
            ["csv_file"], "is empty: the first row must be a header with a phone column"
        )
    return _parse_csv_text(text, max_recipients=max_recipients, check_from=check_while_reading_from)


_CHECK_CHUNK = 8192


def _physical_lines(text: str) -> int:
    """The lines a reader of `io.StringIO(text, newline="")` sees: ended by \\n, \\r or \\r\\n."""
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends + (0 if text.endswith(("\n", "\r")) else 1)


def _records(
    text: str, delimiter: str
) -> tuple[list[list[str]], list[int], tuple[Loc, str] | None]:
    """The non-blank records with the physical line each starts on, and the CSV error that
    stopped the reading (after the records returned), if any."""
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        records = None
    # As many records as lines: none spans two, so record i starts on line i + 1, and the
    # reader's C loop did all the work (no per-row `line_num` bookkeeping in Python).
    if records is not None and len(records) == _physical_lines(text):
        keep = [i for i, cells in enumerate(records) if "".join(cells).strip()]
        return [records[i] for i in keep], [i + 1 for i in keep], None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    kept: list[list[str]] = []
    lines: list[int] = []
    last_line = 0
    try:
        for cells in reader:
            line = last_line + 1
            last_line = reader.line_num
            if "".join(cells).strip():  # else a blank line, or a line of bare delimiters
                kept.append(cells)
                lines.append(line)
    except csv.Error as error:
        return kept, lines, (["csv_file", "row", last_line + 1], f"is not valid CSV: {error}")
    return kept, lines, None


def _parse_csv_text(text: str, *, max_recipients: int, check_from: int | None) -> RecipientRows:
    rows = RecipientRows(source="csv")
    records, lines, error = _records(text, _sniff_delimiter(text))
    if not records:
        if error is not None:
            rows.problems.add(*error)
        return rows
    header = [cell.strip() for cell in records[0]]
    phone_column, names = _read_header(rows, header, lines[0])
    if phone_column < 0:
        return rows  # reading stops at such a header: nothing after it is reported
    rows.csv_phone_column = _normalised_header(header[phone_column])
    data, data_lines = records[1:], lines[1:]
    if len(data) > max_recipients:
        # Reading stops at the row past the limit: a CSV error further on is not reported.
        error = (
            ["csv_file"],
            f"has more than {max_recipients:,} recipient rows; a batch holds at most "
            f"{max_recipients:,}",
        )
        data, data_lines = data[:max_recipients], data_lines[:max_recipients]
    # The bulk reading below takes cells as they are; a file with a `'` (an export's formula
    # guard, which `_cell` removes) or a line longer than a value may be goes row by row.
    plain = "'" not in text and max(map(len, text.splitlines()), default=0) <= VALUE_MAX_CHARS
    _add_csv_rows(rows, data, data_lines, phone_column, names, check_from, plain=plain)
    if error is not None:
        rows.problems.add(*error)
    if not rows and not rows.problems:
        rows.problems.add(["csv_file"], "has a header but no recipient rows")
    return rows


def _add_csv_rows(
    rows: RecipientRows,
    records: list[list[str]],
    lines: list[int],
    phone_column: int,
    names: list[str],
    check_from: int | None,
    *,
    plain: bool,
) -> None:
    """Every data row, in order. A row as wide as the header, under a header naming every
    column, takes the short way (the phone and the variables read in bulk); any other row goes
    through `_add_csv_row`, which finds and words its problems."""
    width = len(names)
    columns = [(position, name) for position, name in enumerate(names) if position != phone_column]
    short_way = plain and all(name for _, name in columns)
    variable_names = [name for _, name in columns]
    positions = [position for position, _ in columns]
    if len(positions) >= 2:
        take = operator.itemgetter(*positions)
    elif positions:
        only = positions[0]

        def take(cells: list[str]) -> tuple[str, ...]:
            return (cells[only],)
    else:

        def take(cells: list[str]) -> tuple[str, ...]:
            return ()

    clean = _CLEAN_E164.fullmatch
    strip = str.strip
    phones_out, variables_out, lines_out = rows.phones, rows.variables, rows.lines
    sending = check_from is not None and len(records) >= check_from
    if short_way and all(map(width.__eq__, map(len, records))):
        # Every row takes the short way: each step over all rows at once, and the numbers go
        # to be checked before the variables are built.
        base = len(phones_out)
        lines_out.extend(lines)
        phones_out.extend(map(strip, map(operator.itemgetter(phone_column), records)))
        unclean = [i for i, match in enumerate(map(clean, phones_out[base:])) if match is None]
        for index in (base + i for i in unclean):
            number, reason = phones.normalize(phones_out[index])
            if reason is not None:
                rows.flag(index, rows.phone_loc(index), reason)
                rows.as_written[index] = phones_out[index][:100]
            phones_out[index] = number or ""
        if sending:
            rows.send_for_checking(parallel=True)
        variables_out.extend(
            [dict(zip(variable_names, map(strip, take(cells)), strict=True)) for cells in records]
        )
        return
    for start in range(0, len(records), _CHECK_CHUNK):
        for offset in range(start, min(start + _CHECK_CHUNK, len(records))):
            cells = records[offset]
            if not short_way or len(cells) != width:
                _add_csv_row(rows, cells, lines[offset], width, phone_column, names)
                continue
            lines_out.append(lines[offset])
            raw_phone = cells[phone_column].strip()
            if clean(raw_phone):  # what `phones.normalize` answers for "+" and 1–15 digits
                phones_out.append(raw_phone)
            else:
                number, reason = phones.normalize(raw_phone)
                if reason is not None:
                    index = len(phones_out)
                    rows.flag(index, rows.phone_loc(index), reason)
                    rows.as_written[index] = raw_phone[:100]
                phones_out.append(number or "")
            variables_out.append(dict(zip(variable_names, map(strip, take(cells)), strict=True)))
        if sending:
            rows.send_for_checking(parallel=True)


def _read_header(rows: RecipientRows, header: list[str], line: int) -> tuple[int, list[str]]:
    normalised = [_normalised_header(cell) for cell in header]
    phone_column = next((normalised.index(name) for name in PHONE_FIELDS if name in normalised), -1)
    if phone_column < 0:
        rows.problems.add(
            ["csv_file", "row", line, "phone"],
            "the header row has no phone column (found: "
            + (", ".join(repr(cell) for cell in header if cell) or "nothing")
            + ")",
        )
        return -1, []
    seen: set[str] = set()
    for position, name in enumerate(header):
        if position == phone_column or not name:
            continue
        if not VARIABLE_NAME.match(name):
            rows.problems.add(["csv_file", "row", line, name], _bad_name_message(name))
        elif name in seen or _normalised_header(name) in PHONE_FIELDS:
            rows.problems.add(["csv_file", "row", line, name], "is a duplicate column name")
        seen.add(name)
        rows.columns.append(name)
    return phone_column, header


def _add_csv_row(
    rows: RecipientRows,
    cells: list[str],
    line: int,
    width: int,
    phone_column: int,
    names: list[str],
) -> None:
    index = len(rows)
    rows.lines.append(line)
    if len(cells) != width:
        if len(cells) > width and "".join(cells[width:]).strip():
            rows.flag(
                index, rows.loc(index), f"has {len(cells)} cells but the header has {width} columns"
            )
        cells = (cells + [""] * width)[:width]
    raw_phone = _cell(cells[phone_column])
    number, reason = phones.normalize(raw_phone)
    if reason is not None:
        rows.flag(index, rows.phone_loc(index), reason)
        rows.as_written[index] = raw_phone[:100]
    rows.phones.append(number or "")
    variables: dict[str, Scalar] = {}
    for position, name in enumerate(names):
        if position == phone_column:
            continue
        value = _cell(cells[position])
        if name and (reason := _check_text(value)) is not None:
            rows.flag(index, [*rows.loc(index), name], reason)
        elif name:
            variables[name] = value
        elif value:
            rows.flag(
                index,
                [*rows.loc(index), f"column {position + 1}"],
                "has a value but no column name in the header",
            )
    rows.variables.append(variables)


def check_numbers(rows: RecipientRows, *, parallel: bool) -> phones.ValidityCheck:
    """Start the validity check of every clean number (possibly on other cores)."""
    return rows.send_for_checking(parallel=parallel or rows.check is not None)


def apply_validity(rows: RecipientRows, check: phones.ValidityCheck) -> list[int]:
    """Record invalid and duplicate numbers; returns the indexes whose canonical form changed."""
    answers = check.result()
    rows.check = None  # applied: a later check starts over (and no futures stay in the rows)
    # The usual file: every row has a clean number, every number is valid and already in its
    # canonical form, none twice. Three C-level passes say so; the loop below finds the rest.
    if answers == rows.phones and len(set(answers)) == len(answers):
        return []
    canonical = iter(answers)
    changed: list[int] = []
    first_seen: dict[str, int] = {}
    for index, number in enumerate(rows.phones):
        if not number:
            continue
        valid = next(canonical)
        if valid is None:
            rows.flag(index, rows.phone_loc(index), phones.invalid_reason(number))
            continue
        if valid != number:
            rows.phones[index] = valid
            changed.append(index)
        earlier = first_seen.setdefault(valid, index)
        if earlier != index:
            rows.flag(
                index,
                rows.phone_loc(index),
                f"{valid} appears twice: {rows.describe(earlier)} and {rows.describe(index)}",
            )
    return changed


def validate(rows: RecipientRows) -> RecipientRows:
    """Single-core, all-at-once validation (previews, small batches)."""
    if not rows.problems.full:
        apply_validity(rows, check_numbers(rows, parallel=False))
    return rows


def checked_csv(
    source: bytes | BinaryIO, *, max_recipients: int, max_bytes: int, parallel_from: int
) -> RecipientRows:
    """A CSV of recipients parsed and every number checked, as the API's upload reads it (the
    New batch preview and the do-not-call import); files of `parallel_from` rows or more are
    checked on other cores. `create_batch` checks in parallel with its inserts instead."""
    rows = from_csv(source, max_recipients=max_recipients, max_bytes=max_bytes)
    if not rows.problems.full:
        apply_validity(rows, check_numbers(rows, parallel=len(rows) >= parallel_from))
    return rows


def encode_variables(variables: dict[str, Scalar]) -> str:
    try:
        return orjson.dumps(variables).decode()
    except TypeError:  # integers beyond 64 bits: the standard library keeps them exact
        return json.dumps(variables, ensure_ascii=False, separators=(",", ":"))


def encode_all_variables(variables: list[dict[str, Scalar]]) -> list[str]:
    """`encode_variables` of each, in one pass while orjson can encode them all (it always can,
    unless an integer is beyond 64 bits)."""
    dumps = orjson.dumps
    try:
        return [dumps(item).decode() for item in variables]
    except TypeError:
        return [encode_variables(item) for item in variables]


def drop_invalid(rows: RecipientRows) -> RecipientRows:
    """The rows without a problem (the console's "drop invalid rows")."""
    keep = [index for index in range(len(rows)) if index not in rows.invalid_rows]
    return RecipientRows(
        source=rows.source,
        phones=[rows.phones[i] for i in keep],
        variables=[rows.variables[i] for i in keep],
        lines=[rows.lines[i] for i in keep] if rows.source == "csv" else [],
        phone_fields=[rows.phone_fields[i] for i in keep] if rows.source == "json" else [],
        csv_phone_column=rows.csv_phone_column,
        columns=list(rows.columns),
    )
