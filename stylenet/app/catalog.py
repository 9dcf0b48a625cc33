"""The models a page offers, by name only, each loaded once and kept for every later request.

A name from the browser is only ever looked up in this list: nothing typed into the page becomes a
file path. The shipped styles come first ("paintings" holds all of them, blended with sliders;
"wave" and the others are one style each), then every `.pt` file of the models folder, by file name.
A model that cannot be read stays off the page's first view: the page opens on the first one that loads,
and says why the others are missing (`notes`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from stylenet.checkpoint import CheckpointError
from stylenet.errors import ConfigError, StylenetError
from stylenet.inference.model import Stylizer, load_model


@dataclass(frozen=True)
class Entry:
    """One name of the list: the file (or shipped name) it loads, and the style it runs (None: chosen on the page)."""

    name: str
    source: str | Path
    style: str | None = None


class Catalog:
    """The list of models and a cache of the loaded ones, keyed by what they load (the shipped file loads once)."""

    def __init__(self, models_dir: Path | None, device: str = "cpu", precision: str = "auto"):
        self.device, self.precision = device, precision
        self.entries: dict[str, Entry] = {}
        self.shipped_styles: tuple[str, ...] = ()
        self.note: str | None = None  # why the shipped model is missing from the list, if it is
        self.skipped: list[str] = []  # why models before the first usable one were dropped from the list
        try:
            from stylenet.pretrained import BUNDLE, shipped

            self.shipped_styles = shipped().styles
            self.entries[BUNDLE] = Entry(BUNDLE, BUNDLE)
            for style in self.shipped_styles:
                self.entries[style] = Entry(style, BUNDLE, style)
        except CheckpointError as error:
            self.note = str(error)
        if models_dir is not None and models_dir.is_dir():
            for path in sorted(models_dir.glob("*.pt")):
                if path.is_file():  # named by file name: "wave.pt" never hides the shipped "wave"
                    self.entries[path.name] = Entry(path.name, path)
        if not self.entries:
            where = f"no .pt file in {models_dir}" if models_dir is not None else "no models folder"
            raise StylenetError(f"no model to offer: {where}, and {self.note or 'no shipped model'}")
        self._loaded: dict[str, Stylizer] = {}
        self._dropped: list[Path] = []
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    @property
    def notes(self) -> list[str]:
        """One line per model missing from the list and why, as the server's log says it (paths in full)."""
        shipped = [f"the shipped styles are not offered: {self.note}"] if self.note else []
        return shipped + [f"left off the list: {line}" for line in self.skipped]

    def for_page(self, message: str) -> str:
        """`message` with every model file's path shortened to its file name: the server's folders stay private."""
        from stylenet.pretrained import LOCATION

        sources = [entry.source for entry in self.entries.values() if isinstance(entry.source, Path)]
        for path in sorted({LOCATION, *sources, *self._dropped}, key=lambda p: len(str(p)), reverse=True):
            message = message.replace(str(path), path.name)
        return message

    def first_usable(self) -> str:
        """The first name whose model loads, for the page to open on; the ones before it that fail are dropped
        (the reason in `skipped`). One StylenetError line where none loads."""
        for name in list(self.entries):
            if name not in self.entries:  # dropped with a shipped style that shares its file
                continue
            try:
                self.styles(name)
                return name
            except (StylenetError, OSError) as error:
                source = self.entries[name].source
                self.skipped.append(str(error))
                for other in [n for n, e in self.entries.items() if e.source == source]:
                    del self.entries[other]
                if isinstance(source, Path):
                    self._dropped.append(source)
        reasons = "; ".join([*self.skipped, *([self.note] if self.note else [])])
        raise StylenetError(f"no model to offer, none of them loads: {reasons}")

    def entry(self, name: str) -> Entry:
        """The entry called `name`; one ConfigError line listing the names for any other."""
        if not isinstance(name, str) or name not in self.entries:
            raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(self.entries)}")
        return self.entries[name]

    def stylizer(self, name: str) -> Stylizer:
        """The loaded model called `name`, bound to its style; loaded on first use, then kept."""
        entry = self.entry(name)
        key = str(entry.source)
        with self._lock:  # two first requests for one model load it once
            if key not in self._loaded:
                self._loaded[key] = load_model(entry.source, device=self.device, precision=self.precision)
            loaded = self._loaded[key]
        return loaded.with_style(entry.style) if entry.style else loaded

    def styles(self, name: str) -> list[str]:
        """The styles the page can blend for `name`: several for a multi-style model, else none."""
        entry = self.entry(name)
        if entry.style is not None:
            return []
        styles = self.stylizer(name).styles
        return styles if len(styles) > 1 else []
