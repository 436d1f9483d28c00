"""Feast configuration derived from :class:`~reelrank.config.Settings` (environment alone).

The library builds its :class:`feast.RepoConfig` here from an explicit ``Settings``. The
``features/feature_store.yaml`` a person uses with the ``feast`` CLI names two small
plug-ins from this module instead of literal paths, so the CLI follows the same
environment (``REELRANK_DATA_DIR``, ``REELRANK_FEAST_DIR``, ``REELRANK_ONLINE_STORE``,
``REELRANK_REDIS_URL``) with the same defaults. (Feast expands ``${VAR}`` in the yaml with
``os.path.expandvars``, which has no defaults and cannot switch store types.)

* :class:`SettingsRegistryStore`: a file registry at ``<feast_path>/registry.db``.
* ``type: reelrank.features.feast.repo_config.SettingsOnlineStore``: Feast asks for the class
  ``SettingsOnlineStoreConfig``; constructing it returns the real SQLite or Redis config,
  so Feast then uses its own SQLite or Redis online store.

Relative data paths are read relative to the project root (the parent of ``features/``),
since ``feast apply`` changes into the repo directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlparse

from reelrank.config import Settings
from reelrank.exceptions import FeatureStoreError

if TYPE_CHECKING:
    from feast import RepoConfig
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

PROJECT: Final = "reelrank"
REGISTRY_FILE: Final = "registry.db"
ONLINE_STORE_FILE: Final = "online_store.db"
FEAST_REPO_DIR: Final = Path(__file__).resolve().parents[3] / "feature_repo"
"""The Feast repo (``feature_repo/`` at the project root)."""
PROJECT_ROOT: Final = FEAST_REPO_DIR.parent
ENTITY_KEY_SERIALIZATION_VERSION: Final = 3
RAY_STAGING_DIR: Final = "ray-staging"
"""Under ``feast_path``: where the Ray offline store stages retrieval results."""


def _anchor(path: Path, root: Path | None) -> Path:
    if path.is_absolute() or root is None:
        return path.resolve()
    return (root / path).resolve()


def registry_path(settings: Settings, root: Path | None = None) -> Path:
    """``<feast_path>/registry.db`` (relative paths read from ``root``, else the cwd)."""
    return _anchor(settings.feast_path, root) / REGISTRY_FILE


def sqlite_path(settings: Settings, root: Path | None = None) -> Path:
    return _anchor(settings.feast_path, root) / ONLINE_STORE_FILE


def offline_dir(settings: Settings, root: Path | None = None) -> Path:
    """Where the offline feature parquet lives (``features_path``)."""
    return _anchor(settings.features_path, root)


def redis_connection_string(url: str) -> str:
    """``redis://[:password@]host:port/db`` -> Feast's ``host:port,db=N[,password=...]``."""
    parsed = urlparse(url)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise FeatureStoreError(
            f"REELRANK_REDIS_URL={url!r} is not a redis:// URL; use e.g. redis://127.0.0.1:6379/0."
        )
    parts = [f"{parsed.hostname}:{parsed.port or 6379}"]
    database = parsed.path.strip("/")
    parts.append(f"db={int(database) if database else 0}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    if parsed.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def online_store_config(
    settings: Settings, root: Path | None = None
) -> SqliteOnlineStoreConfig | RedisOnlineStoreConfig:
    """The online store config: SQLite under ``feast_path`` or Redis at ``redis_url``."""
    if settings.online_store == "redis":
        from feast.infra.online_stores.redis import RedisOnlineStoreConfig

        return RedisOnlineStoreConfig(connection_string=redis_connection_string(settings.redis_url))
    from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig

    return SqliteOnlineStoreConfig(path=str(sqlite_path(settings, root)))


def offline_store_config(settings: Settings) -> dict[str, Any]:
    """Feast's file offline store, or its Ray offline store under the Ray engine.

    The Ray store reads the same parquet files (``FileSource``) with Ray Data on the
    cluster at ``REELRANK_RAY_ADDRESS``, for historical retrieval and for the reads of
    materialization, staging its results under ``<feast_path>/ray-staging`` (a path every
    node must see, like the lake). Materialization keeps Feast's in-process batch engine:
    its Ray compute engine filters rows by the wall clock's ttl, which drops every row of
    a dataset in the past (design_docs/adr/0009-ray-engine.md).
    """
    if settings.engine != "ray":
        return {"type": "file"}
    from reelrank.engines import ray_address

    return {
        "type": "ray",
        "ray_address": ray_address(settings),
        "storage_path": str(_anchor(settings.feast_path, None) / RAY_STAGING_DIR),
        "enable_ray_logging": False,
    }


def repo_config(settings: Settings, project: str = PROJECT) -> RepoConfig:
    """A complete RepoConfig for ``settings`` (absolute paths; no yaml read)."""
    from feast import RepoConfig
    from feast.repo_config import RegistryConfig

    return RepoConfig(
        project=project,
        provider="local",
        registry=RegistryConfig(
            registry_type="file", path=str(registry_path(settings)), cache_ttl_seconds=60
        ),
        online_store=online_store_config(settings),
        offline_store=offline_store_config(settings),
        entity_key_serialization_version=ENTITY_KEY_SERIALIZATION_VERSION,
        repo_path=FEAST_REPO_DIR,
    )


# --- plug-ins named by features/feature_store.yaml (used by the feast CLI) -------------


def _file_registry_store_base() -> type:
    from feast.infra.registry.file import FileRegistryStore

    return FileRegistryStore


class SettingsOnlineStoreConfig:
    """Stands in for an online store config class; builds the real one from Settings."""

    def __new__(cls, **_: Any) -> Any:
        return online_store_config(Settings(), root=PROJECT_ROOT)


def __getattr__(name: str) -> Any:
    # Built lazily so importing this module does not import Feast.
    if name == "SettingsRegistryStore":
        base = _file_registry_store_base()

        class SettingsRegistryStore(base):  # type: ignore[misc, valid-type]
            """A file registry at ``<feast_path>/registry.db`` from Settings."""

            def __init__(self, registry_config: Any, repo_path: Path) -> None:
                super().__init__(registry_config, repo_path)
                self._filepath = registry_path(Settings(), root=Path(repo_path).parent)

        globals()[name] = SettingsRegistryStore
        return SettingsRegistryStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
