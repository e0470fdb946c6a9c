"""Readers for the files the C++ core writes, with the torn-last-record rule, and their tests.

The rule (docs/EVENT_ENGINE.md): a file is appended record by record; a crash can only leave the
last record incomplete. A CSV record ends at a newline outside quotes; a trace line is complete
when it ends with a newline. Everything after the last complete record is ignored.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path


def complete_csv_text(text: str) -> str:
    """The prefix of text made of complete CSV records (newline outside quotes)."""
    in_quotes = False
    end = 0
    for i, ch in enumerate(text):
        if ch == '"':
            in_quotes = not in_quotes
        elif ch == "\n" and not in_quotes:
            end = i + 1
    return text[:end]


def read_csv(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file written by the core; a torn last record is dropped."""
    text = Path(path).read_text(encoding="utf-8")
    records = list(csv.reader(io.StringIO(complete_csv_text(text), newline="")))
    if not records:
        return [], []
    return records[0], records[1:]


def read_trace(path: str | Path) -> list[dict]:
    """Events of a trace.json, closed (strict JSON) or not (unterminated array, torn last line)."""
    text = Path(path).read_text(encoding="utf-8")
    events = []
    for line in text.split("\n")[:-1]:  # the part after the last newline is torn or empty
        if line in ("[", "]", ""):
            continue
        events.append(json.loads(line[:-1] if line.endswith(",") else line))
    return events


# ---- tests of the readers themselves -------------------------------------------------------


def test_csv_reader_drops_only_a_torn_last_record(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('a,b\n1,"x\ny"\n2,"z,""q"""\n3,"tor', encoding="utf-8")
    header, rows = read_csv(p)
    assert header == ["a", "b"]
    assert rows == [["1", "x\ny"], ["2", 'z,"q"']]


def test_csv_reader_torn_inside_quoted_newline(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text('a,b\n1,2\n3,"first line\n', encoding="utf-8")
    assert read_csv(p) == (["a", "b"], [["1", "2"]])


def test_trace_reader_accepts_unterminated_and_closed(tmp_path):
    p = tmp_path / "trace.json"
    p.write_text('[\n{"ph":"X","name":"a"},\n{"ph":"i","na', encoding="utf-8")
    assert [e["name"] for e in read_trace(p)] == ["a"]
    p.write_text('[\n{"ph":"X","name":"a"},\n{"ph":"M","name":"end"}\n]\n', encoding="utf-8")
    assert [e["name"] for e in read_trace(p)] == ["a", "end"]
    json.loads(p.read_text())
