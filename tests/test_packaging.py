"""pyproject.toml lists every package and subpackage: a plain (non-editable) install copies only those listed,
so a subpackage left out would install without its files and fail at import."""
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's tomli fallback (see pyproject's dependencies)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_with_an_init_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for top in ("common", "speedrun", "studies", "analysis")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found == listed, (f"not listed in pyproject.toml: {sorted(found - listed)}; "
                             f"listed but absent: {sorted(listed - found)}")
