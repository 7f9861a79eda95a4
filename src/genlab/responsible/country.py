"""The electricity mix a training run is charged with: ``release.country``, or ``auto`` from the time zone.

``release.country`` is an ISO 3166 alpha-3 code (the electricity mix CodeCarbon applies) or ``auto``: the machine's
time zone -> the tz database's ``zone.tab`` -> alpha-2 -> alpha-3 (pycountry). When the zone names no country
(``UTC``, a container without a zone) the fallback is ``WLD``, CodeCarbon's world-average carbon intensity
(475 g CO2eq/kWh), not any one country's.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from genlab.errors import GenlabError

WORLD = "WLD"  # not a country: CodeCarbon's world-average carbon intensity (the fallback of "auto")


def country_code(setting: str) -> str:
    """``release.country`` -> the ISO alpha-3 code the tracker uses (``WLD`` = world average).

    ``auto``: from the machine's time zone, falling back to ``WLD`` when the zone names no country. An explicit
    code must be one CodeCarbon's offline data knows; anything else is a ``GenlabError`` naming the setting.
    """
    if setting.strip().lower() == "auto":
        return _country_from_timezone() or WORLD
    code = setting.strip().upper()
    known = _codecarbon_countries()
    if code == WORLD:
        return WORLD
    if len(code) != 3 or not code.isalpha() or (known is not None and code not in known):
        raise GenlabError(
            f"release.country = '{setting}' is not a country in CodeCarbon's offline data; use an ISO 3166 "
            f"alpha-3 code such as 'FRA' or 'USA', '{WORLD}' for the world average, or 'auto'"
        )
    return code


def country_name(code: str) -> str:
    if code == WORLD:
        return "world average"
    entry = (_codecarbon_energy_mix() or {}).get(code) or {}
    return str(entry.get("country_name") or code)


def _country_from_timezone() -> str | None:
    zone = _zone_name()
    if not zone:
        return None
    tables = _zone_tables()
    alpha2 = tables["zones"].get(zone) or tables["zones"].get(tables["links"].get(zone, ""))
    if not alpha2:
        return None
    try:
        import pycountry

        country = pycountry.countries.get(alpha_2=alpha2)
    except ImportError:
        return None
    known = _codecarbon_countries()
    if country is None or (known is not None and country.alpha_3 not in known):
        return None
    return country.alpha_3


def _zone_name() -> str | None:
    """The tz database name of the machine's zone: ``TZ``, then ``/etc/localtime``'s link, then ``/etc/timezone``."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz:
        return _after_zoneinfo(tz) if tz.startswith("/") else tz
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        with contextlib.suppress(OSError):
            zone = _after_zoneinfo(os.readlink(localtime))
            if zone:
                return zone
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return Path("/etc/timezone").read_text(encoding="utf-8").strip() or None
    return None


def _after_zoneinfo(path: str) -> str | None:
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part == "zoneinfo" and i + 1 < len(parts):
            rest = parts[i + 1 :]
            return "/".join(rest[1:] if rest[0] in ("posix", "right") else rest)
    return None


@cache
def _zone_tables() -> dict[str, dict[str, str]]:
    """zone -> alpha-2 (``zone.tab``, then the first country of ``zone1970.tab``) and alias -> zone (``tzdata.zi``)."""
    import zoneinfo

    folders = [Path(p) for p in zoneinfo.TZPATH]
    spec = importlib.util.find_spec("tzdata")
    if spec and spec.submodule_search_locations:
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "zoneinfo")
    zones: dict[str, str] = {}
    links: dict[str, str] = {}
    for folder in folders:
        for name in ("zone.tab", "zone1970.tab"):
            for fields in _tab_rows(folder / name):
                if len(fields) >= 3:
                    zones.setdefault(fields[2], fields[0].split(",")[0])
        for fields in _tab_rows(folder / "tzdata.zi", sep=" "):
            if len(fields) == 3 and fields[0] == "L":
                links.setdefault(fields[2], fields[1])
    return {"zones": zones, "links": links}


def _tab_rows(path: Path, sep: str = "\t") -> Iterator[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    for line in text.splitlines():
        if line and not line.startswith("#"):
            yield line.split(sep)


def _codecarbon_data(relative: str) -> Path | None:
    """A file of CodeCarbon's bundled data, found without importing CodeCarbon."""
    spec = importlib.util.find_spec("codecarbon")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / relative
    return path if path.is_file() else None


@cache
def _codecarbon_energy_mix() -> dict[str, Any] | None:
    path = _codecarbon_data("private_infra/global_energy_mix.json")
    return json.loads(path.read_text(encoding="utf-8")) if path else None


def _codecarbon_countries() -> frozenset[str] | None:
    mix = _codecarbon_energy_mix()
    return frozenset(mix) if mix is not None else None


@cache
def world_intensity_g_per_kwh() -> float:
    """CodeCarbon's world-average carbon intensity (its own fallback for unknown countries)."""
    path = _codecarbon_data("private_infra/carbon_intensity_per_source.json")
    return float(json.loads(path.read_text(encoding="utf-8"))["world_average"]) if path else 475.0
