"""The virtual Tibetan Plateau: a hidden 10 km truth and what a user would have.

Public API::

    from model.world import build_world, get_config, SIZES, WorldConfig, WorldManifest
    man = build_world("tiny", out="/tmp/world", seed=42)   # -> WorldManifest
    man.summary(); man.files; man.periods

See ``docs/world.md`` for the science (equations, parameters) and the file layout.
"""

from .build import WorldManifest, build_world, code_version, default_folder, load_manifest
from .config import SIZES, WorldConfig, check_seed, get_config, rng_for

__all__ = ["SIZES", "WorldConfig", "WorldManifest", "build_world", "check_seed", "code_version",
           "default_folder", "get_config", "load_manifest", "rng_for"]
