"""Credentials of the station's AWS clients (Kinesis input, DynamoDB sink) from its secrets."""

from __future__ import annotations

import logging

from vitalstation.config.secrets import AwsCredentials, SecretStore, SecretsUnavailable
from vitalstation.config.settings import Settings

_LOGGER = logging.getLogger(__name__)


def aws_credentials(
    settings: Settings, secrets: SecretStore | None = None
) -> AwsCredentials | None:
    """The AWS keys kept in the station's secrets, or None: boto3's default chain applies then.

    Without a keyring the default chain (environment, ``AWS_PROFILE``, an instance role) is a
    legitimate source on a server, so that is logged, not fatal; half a key pair is an error
    (``SecretStoreError``) since it can only be a mistake.
    """
    store = secrets or SecretStore.for_settings(settings)
    try:
        return store.aws_credentials()
    except SecretsUnavailable as exc:
        _LOGGER.warning(
            "AWS keys not read from the keyring (%s); using boto3's default chain "
            "(environment, AWS profile, instance role)",
            exc,
        )
        return None
