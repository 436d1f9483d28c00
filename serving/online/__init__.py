"""Online features for the request path: user rows per request, item rows per model load.

Item features change only at materialization, so they are read once per model load
(:func:`~serving.online.store.load_item_features`) and held as a matrix aligned with the
model's catalogue columns. User features are read per request with a deadline
(``Settings.online_timeout_ms``) by a :class:`~serving.online.protocol.UserFeatureReader`;
a reader raises :class:`~reelrank.exceptions.FeatureStoreError` on a missing, unreachable
or slow store, which the service turns into a ``degraded`` answer. Three readers:

* :class:`~serving.online.sqlite.SqliteUserFeatureReader`: Feast's SQLite online table read
  directly (one indexed ``SELECT``, Feast's own key serialisation and value encoding), the
  deadline enforced inside SQLite by a progress handler: a few hundred microseconds instead
  of the SDK's generic path.
* :class:`~serving.online.redis.RedisUserFeatureReader`: Feast's Redis hash for the user
  read directly (one ``HMGET`` with Feast's key layout: entity key + project, murmur3 field
  names), a socket timeout as the deadline.
* :class:`~serving.online.sdk.FeastUserFeatureReader`: Feast's ``get_online_features``
  (any online store), with the provider's thread-pool deadline.
"""
