"""Device API keys for the admin (CLI, later the Settings dialog), and the REST input's wiring.

The REST receiver (``ingest``) may not import the store; here, a layer above both, it is
handed the store's :class:`~vitalstation.storage.keys.KeyStore` as its key directory.
"""

from __future__ import annotations

from vitalstation.config.settings import Settings
from vitalstation.ingest.base import Input
from vitalstation.ingest.rest import RestInput
from vitalstation.pipeline.core import Pipeline
from vitalstation.storage.keys import KeyStore
from vitalstation.storage.store import Store


def key_store(store: Store) -> KeyStore:
    """The store's device API keys."""
    return KeyStore(store.engine)


def make_rest_input(settings: Settings, pipeline: Pipeline, store: Store) -> Input | None:
    """The REST receiver of ``[rest]`` (None when disabled), verifying keys against the store."""
    if not settings.rest.enabled:
        return None
    return RestInput.from_settings(settings, pipeline, key_store(store))
