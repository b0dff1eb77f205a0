"""Request body to batch: validation, idempotency, and delivery to the writer, for every ingestion surface."""
