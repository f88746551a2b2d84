"""The one route every reading takes: validate, deduplicate, store, publish, acknowledge."""
