"""The ``reelrank`` command: the only place that imports the library, the Prefect flows and
the service together. Each module holds one group of commands; ``app`` assembles them."""
