"""Who was greeted, kept in SQLite (in memory unless a path is given), exportable as CSV."""

from __future__ import annotations

import csv
import io
import sqlite3


class VisitorLog:
    def __init__(self, path: str = ":memory:") -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS visits (name TEXT PRIMARY KEY, count INTEGER)")

    def record(self, name: str) -> int:
        """Count one more visit of ``name``; the new count."""
        with self.db:
            self.db.execute(
                "INSERT INTO visits VALUES (?, 1) "
                "ON CONFLICT(name) DO UPDATE SET count = count + 1",
                (name,),
            )
        (count,) = self.db.execute("SELECT count FROM visits WHERE name = ?", (name,)).fetchone()
        return int(count)

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["name", "count"])
        writer.writerows(self.db.execute("SELECT name, count FROM visits ORDER BY name"))
        return out.getvalue()
