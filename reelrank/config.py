"""The one place ReelRank reads configuration.

Every setting comes from an environment variable with the ``REELRANK_`` prefix
(or a ``.env`` file). Paths not set explicitly are derived from ``data_dir``.
Nothing is read at import time: call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reelrank.experiments.config import Experiment, GreedyPolicy, PolicyConfig
from reelrank.models.reranking import RerankStrengths

Environment = Literal["development", "test", "production"]
OnlineStoreKind = Literal["sqlite", "redis"]
DatasetName = Literal["ml-100k", "ml-1m", "synthetic"]
EngineKind = Literal["local", "ray"]

PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "changethis", "secret", "password"})


class Settings(BaseSettings):
    """Typed configuration. Environment variables: ``REELRANK_<FIELD_NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="REELRANK_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    environment: Environment = "development"
    data_dir: Path = Field(default=Path("./data"), description="Root of every data path.")
    raw_dir: Path | None = Field(default=None, description="Immutable downloads (data_dir/raw).")
    lake_dir: Path | None = Field(default=None, description="Validated parquet (data_dir/lake).")
    quarantine_dir: Path | None = Field(
        default=None, description="Rejected rows with a reason (data_dir/quarantine)."
    )
    features_dir: Path | None = Field(
        default=None, description="Offline feature parquet (data_dir/features)."
    )
    feast_dir: Path | None = Field(
        default=None, description="Feast registry and SQLite online store (data_dir/feast)."
    )
    feedback_dir: Path | None = Field(
        default=None, description="Append-only feedback logs from the API (data_dir/feedback)."
    )
    reports_dir: Path | None = Field(
        default=None, description="Run outputs read by `reelrank report` (data_dir/reports)."
    )
    impressions_dir: Path | None = Field(
        default=None,
        description="Append-only served-slate (impression) logs of the API (data_dir/impressions).",
    )

    dataset: DatasetName = Field(default="ml-100k", description="Default dataset for `run`.")

    online_store: OnlineStoreKind = Field(
        default="sqlite", description="Feast online store: sqlite (embedded) or redis."
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis URL when online_store=redis."
    )

    engine: EngineKind = Field(
        default="local",
        description="Where the pipeline's parallel work runs: local (this process) or ray "
        "(Prefect's RayTaskRunner, Feast's Ray offline store and compute engine, Ray Data).",
    )
    ray_address: str | None = Field(
        default=None,
        description="The Ray cluster of engine=ray, host:port of its head (ray start --head); "
        "required then: ReelRank never starts a cluster of its own.",
    )
    serve_precomputed: bool = Field(
        default=False,
        description="Answer from the top-k table `reelrank batch-recommend` wrote, when it "
        "holds the user for the served model version and k; the online path otherwise.",
    )

    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow store; defaults to sqlite:///<data_dir>/mlflow.db. "
        "MLFLOW_TRACKING_URI overrides it.",
    )
    model_name: str = Field(default="reelrank", description="Registered model name.")

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_workers: int = Field(default=1, ge=1, le=64)
    api_key: SecretStr | None = Field(
        default=None, description="Key for /admin routes; admin is refused when unset."
    )
    online_timeout_ms: float = Field(
        default=50.0, gt=0, description="Feature-fetch budget before degrading."
    )
    max_batch_users: int = Field(default=100, ge=1, le=10_000)
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1_024,
        le=1_073_741_824,
        description="Largest request body the API reads (bytes); larger ones get 413.",
    )
    metrics_dir: Path | None = Field(
        default=None,
        description="Directory for the API workers' Prometheus files when it runs more than "
        "one (emptied of them at start); default: a temporary directory.",
    )
    precomputed_users: int = Field(
        default=10_000,
        ge=0,
        description="Users whose candidates are retrieved and prepared at model load, most "
        "active first (about 25 KB each); the others on their first request, then kept in an "
        "LRU.",
    )

    log_impressions: bool = Field(
        default=True, description="Append every served slate to the impression log."
    )
    impression_queue_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Served slates waiting for the impression log's writer thread; when full, "
        "slates are dropped and counted (reelrank_impressions_dropped_total), never waited for.",
    )
    policy: PolicyConfig = Field(
        default_factory=GreedyPolicy,
        description='How a slate is chosen from the ranked candidates, as JSON: {"kind": '
        '"greedy"} (default), {"kind": "epsilon", "epsilon": 0.1, "pool": 20} or {"kind": '
        '"plackett-luce", "temperature": 1.0, "pool": 20} (reelrank/experiments/config.py).',
    )
    rerank: RerankStrengths = Field(
        default_factory=RerankStrengths,
        description='The re-ranking stage\'s default strengths, as JSON: {"diversity": 0.1, '
        '"freshness": 0.1, "long_tail": 0.3, "freshness_half_life_days": 180} (the default '
        "chosen on the results pages; all 0 keeps the ranker's order). A request may override "
        "each (reelrank/models/reranking.py).",
    )
    experiment: Experiment | None = Field(
        default=None,
        description='The running experiment, as JSON: {"name", "design": "ab", "salt", "arms": '
        '[{"name", "alias" or "version", "weight", "policy"?}, ...]} '
        "(reelrank/experiments/config.py); none by default.",
    )

    plugins: str = Field(
        default="",
        description="Comma-separated modules the CLI imports first (they register retrieval "
        "sources and rankers for --sources and --ranker).",
    )

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        base = self.data_dir
        defaults = {
            "raw_dir": base / "raw",
            "lake_dir": base / "lake",
            "quarantine_dir": base / "quarantine",
            "features_dir": base / "features",
            "feast_dir": base / "feast",
            "feedback_dir": base / "feedback",
            "reports_dir": base / "reports",
            "impressions_dir": base / "impressions",
        }
        for name, default in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)
        if self.environment != "development" and self.api_key is not None:
            key = self.api_key.get_secret_value()
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < 16:
                raise ValueError(
                    "REELRANK_API_KEY is a placeholder or shorter than 16 characters; "
                    f"set a real secret when REELRANK_ENVIRONMENT={self.environment}."
                )
        return self

    # Typed accessors: the validator above guarantees these are set.
    @property
    def raw_path(self) -> Path:
        assert self.raw_dir is not None
        return self.raw_dir

    @property
    def lake_path(self) -> Path:
        assert self.lake_dir is not None
        return self.lake_dir

    @property
    def quarantine_path(self) -> Path:
        assert self.quarantine_dir is not None
        return self.quarantine_dir

    @property
    def features_path(self) -> Path:
        assert self.features_dir is not None
        return self.features_dir

    @property
    def feast_path(self) -> Path:
        assert self.feast_dir is not None
        return self.feast_dir

    @property
    def feedback_path(self) -> Path:
        assert self.feedback_dir is not None
        return self.feedback_dir

    @property
    def reports_path(self) -> Path:
        assert self.reports_dir is not None
        return self.reports_dir

    @property
    def impressions_path(self) -> Path:
        assert self.impressions_dir is not None
        return self.impressions_dir

    @property
    def plugin_modules(self) -> list[str]:
        return [name.strip() for name in self.plugins.split(",") if name.strip()]

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force (``MLFLOW_TRACKING_URI`` wins)."""
        import os

        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            return env
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build the settings once per process, on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment)."""
    get_settings.cache_clear()
