"""Project exceptions: each message says what was wrong and how to fix it."""


class ReelRankError(Exception):
    """Base class of every error ReelRank raises on purpose."""


class DataSourceError(ReelRankError):
    """A data source cannot be read: missing, unreachable or not the expected format."""


class ValidationError(ReelRankError):
    """Data failed a check that cannot be handled by quarantining rows."""


class FeatureStoreError(ReelRankError):
    """The feature store is missing, unapplied or unreachable."""


class ModelNotFoundError(ReelRankError):
    """No model (or no champion) is available where one was expected."""


class NotFittedError(ReelRankError, ValueError, AttributeError):
    """A model was used before ``fit``."""


class EngineError(ReelRankError):
    """The chosen engine cannot run: no cluster address, or the cluster is unreachable."""
