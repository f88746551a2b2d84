"""Credentials from the station's secrets: its AWS clients (Kinesis input, DynamoDB sink) and
its PostgreSQL database."""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from vitalstation.config.secrets import (
    STORE_PASSWORD,
    AwsCredentials,
    SecretStore,
    SecretsUnavailable,
)
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


def database_url(settings: Settings, secrets: SecretStore | None = None) -> str:
    """``settings.store_url``, with the secret ``store.password`` put in when the URL is a
    PostgreSQL one naming a user but no password (the TOML file never holds it).

    Without that secret, or without a keyring, the URL is used as it is: libpq's own
    ``PGPASSWORD`` and ``~/.pgpass`` still apply. The result holds a password: only for
    ``Store.open``, never for a log (``Store.description`` hides it).
    """
    return _database_url(settings, secrets)


def _database_url(settings: Settings, secrets: SecretStore | None) -> str:
    url = settings.store_url
    parts = urlsplit(url)
    if not parts.scheme.lower().startswith("postgresql") or not parts.username:
        return url
    if parts.password is not None:
        return url
    try:
        password = (secrets or SecretStore.for_settings(settings)).get(STORE_PASSWORD)
    except SecretsUnavailable:
        return url
    if not password:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"{userinfo}:{quote(password, safe='')}@{hostport}"
    return parts._replace(netloc=netloc).geturl()
