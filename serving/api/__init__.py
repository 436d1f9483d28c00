"""HTTP layer: dependencies and routes (thin wrappers over serving.service)."""
