"""Lists of retrieve keys (study UIDs, accession numbers, patient IDs) read from a file.

Shared by `aiomove retrieve --input` and the daemon's job submission (`aiomove jobs submit`).
"""

from __future__ import annotations

import csv
from pathlib import Path

from aiomove.proto import uids
from aiomove.query import QueryError, friendly_identifier

#: `--key-type` -> the attribute the keys are values of.
KEY_TYPES = {"study": "StudyInstanceUID", "accession": "AccessionNumber", "patient": "PatientID"}


def read_keys(path: Path, key_type: str | None) -> tuple[str, list[str]]:
    """(keyword, keys) from a CSV file with a header naming the key column, or a plain list.

    Blank lines and lines starting with '#' are skipped; duplicates keep their first place.
    QueryError for a file that cannot be read, has no keys, or holds an invalid key.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(f"cannot read {path}: {exc}") from None
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise QueryError(f"{path}: no keys")
    delimiter = max(",;\t", key=lines[0].count)
    rows = list(csv.reader(lines, delimiter=delimiter))
    header = [cell.strip().replace(" ", "").lower() for cell in rows[0]]
    columns = [k for k in KEY_TYPES.values() if k.lower() in header]
    if columns:
        keyword = KEY_TYPES[key_type] if key_type else columns[0]
        if keyword not in columns:
            raise QueryError(f"{path}: no {keyword} column in the header")
        index = header.index(keyword.lower())
        values = [row[index].strip() for row in rows[1:] if len(row) > index]
    else:
        keyword = KEY_TYPES[key_type or "study"]
        values = [line.strip() for line in lines]
    keys = list(dict.fromkeys(v for v in values if v))
    for number, key in enumerate(keys, 1):
        _check_key(keyword, key, f"{path}: key {number}")
    return keyword, keys


def _check_key(keyword: str, key: str, where: str) -> None:
    if keyword == "StudyInstanceUID":
        if not uids.is_valid_uid(key):
            raise QueryError(f"{where}: {key!r} is not a valid Study Instance UID")
        return
    if "*" in key or "?" in key:  # PS3.4 C.2.2.2.4: wildcards; a list names exact keys
        raise QueryError(f"{where}: {key!r} has a wildcard; use -k for a C-FIND query")
    if keyword == "AccessionNumber":
        friendly_identifier(accession=key)
    else:
        friendly_identifier(patient_id=key)
