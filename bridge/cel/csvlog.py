"""Reading cel_custom's CSV file (`/var/log/asterisk/cel-custom/cel_master.csv`).

The columns are those of the `[cel] fields` setting, in the order of cel_custom.conf's
`fields =` line (Asterisk 13+ "advanced" mapping) or of its legacy `${CSV_QUOTE(...)}`
mapping; the default is the lab's (config/asterisk/cel_custom.conf). A header line
starting with `EventType` is skipped. `EventTime` is epoch seconds (cel.conf without
`dateformat`) or a date in the PBX host's time zone (`[cel] timezone`).

The file only grows (cel_custom opens it for every row): a gap is read from the row where
its earliest call starts, found by bisection on the file, to the end, and a rotated
predecessor (`<path>.1`) is read first when the gap begins before the file's first row.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .rows import CelRow, column_key

LAB_FIELDS = (
    "EventType,EventTime,UserDefType,Name,Num,ani,rdnis,dnid,Exten,Context,ChanName,AppName,"
    "AppData,AMAFlags,AccountCode,UniqueID,LinkedID,Peer,PeerAccount,UserField,EventExtra"
).split(",")
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S")
_SLACK = 2.0  # rows are written out of time order by a few milliseconds


class CelCsv:
    def __init__(
        self,
        path: str | os.PathLike[str],
        fields: Sequence[str] = LAB_FIELDS,
        timezone: str = "UTC",
    ) -> None:
        self.path = Path(path)
        self.zone = ZoneInfo(timezone)
        self._index: list[tuple[int, str]] = []  # (column, CelRow field)
        for column, name in enumerate(fields):
            key = column_key(name)
            if key is not None:
                self._index.append((column, key))
        named = {key for _, key in self._index}
        missing = {"eventtype", "eventtime", "uniqueid", "linkedid", "channame"} - named
        if missing:
            raise ValueError(f"cel fields lack {', '.join(sorted(missing))}")
        self._width = max(column for column, _ in self._index) + 1
        self._time_column = next(c for c, key in self._index if key == "eventtime")

    # ----------------------------------------------------------------- reading

    def rows(self, since: float) -> Iterator[CelRow]:
        """Every row written at `since` or later (a few seconds of slack before), in the
        order they were written."""
        files = [self.path]
        rotated = self.path.with_name(self.path.name + ".1")
        if not self.path.exists() and not rotated.exists():
            # a wrong path must not read as "no call": said, and retried
            raise FileNotFoundError(f"no CEL file {self.path} (nor {rotated.name})")
        if rotated.exists() and self._first_time(self.path) > since:
            files.insert(0, rotated)
        order = 0
        for path in files:
            if not path.exists():
                continue
            with path.open("rb") as raw:
                raw.seek(self._offset(raw, since - _SLACK))
                text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
                for fields in csv.reader(text):
                    row = self._row(fields, order)
                    if row is not None:
                        order += 1
                        yield row

    def parse(self, lines: Sequence[str]) -> list[CelRow]:
        """Rows from lines of text (tests, tools)."""
        found = []
        for order, fields in enumerate(csv.reader(lines)):
            row = self._row(fields, order)
            if row is not None:
                found.append(row)
        return found

    def _row(self, fields: list[str], order: int) -> CelRow | None:
        if len(fields) < self._width or fields[0] == "EventType":
            return None
        values: dict[str, str] = {key: fields[column] for column, key in self._index}
        when = self._time(values.pop("eventtime"))
        if when is None:
            return None
        return CelRow(eventtime=when, order=order, **values)

    def _time(self, text: str) -> float | None:
        try:
            return float(text)
        except ValueError:
            pass
        for fmt in _DATE_FORMATS:
            try:
                return datetime.strptime(text, fmt).replace(tzinfo=self.zone).timestamp()
            except ValueError:
                continue
        return None

    # -------------------------------------------------------------- bisection

    def _line_time(self, line: bytes) -> float | None:
        try:
            fields = next(csv.reader([line.decode("utf-8", "replace")]))
        except (StopIteration, csv.Error):
            return None
        if len(fields) <= self._time_column:
            return None
        return self._time(fields[self._time_column])

    def _first_time(self, path: Path) -> float:
        if not path.exists():
            return float("inf")
        with path.open("rb") as fh:
            for line in fh:
                when = self._line_time(line)
                if when is not None:
                    return when
        return float("inf")

    def _offset(self, fh: io.BufferedReader, since: float) -> int:
        """The offset of a line start at or before the first row written at `since`."""
        size = fh.seek(0, os.SEEK_END)
        lo, hi = 0, size
        while hi - lo > 65_536:
            mid = (lo + hi) // 2
            fh.seek(mid)
            fh.readline()  # the rest of a line cut in the middle
            when = None
            start = fh.tell()
            for _ in range(16):  # a few lines on, should this one not parse
                line = fh.readline()
                if not line:
                    break
                when = self._line_time(line)
                if when is not None:
                    break
            if when is None or when >= since:
                hi = mid
            else:
                lo = start  # a line start whose row is older than `since`
        return lo
