"""Settings > Inputs: MQTT (broker or embedded, TLS files, credentials), Kinesis (stream,
region, endpoint, AWS keys), REST (bind, port, TLS, rate limit), file drop (folders, retention)
and the DynamoDB sink, each with a Test connection. Saving restarts only the changed inputs.
"""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from vitalstation.config.secrets import (
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN,
    MQTT_KEY_PASSPHRASE,
    MQTT_PASSWORD,
)
from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.groups import FormsPage


def _keys(section: str, *names: str) -> list[tuple[str, str]]:
    return [(section, name) for name in names]


class InputsPage(FormsPage):
    """One group per input (and the DynamoDB sink), each with its Test connection."""

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(context, parent)
        self.add_group(
            "MQTT", [*_keys("mqtt", "enabled", "url", "topics", "qos", "protocol", "username",
                            "tls_ca", "tls_cert", "tls_key", "client_id", "keepalive",
                            "timestamp_zone", "device_id_from_topic", "max_payload_bytes"),
                     ("embedded_broker", "port")],
            check="mqtt", choices={("mqtt", "protocol"): ("3.1.1", "5")},
            secrets=[(MQTT_PASSWORD, "Broker password"),
                     (MQTT_KEY_PASSPHRASE, "TLS key passphrase")],
        )
        self.add_group(
            "Kinesis", _keys("kinesis", "enabled", "stream", "region", "endpoint_url",
                             "initial_position", "poll_interval_ms", "max_records_per_call",
                             "timestamp_zone"),
            check="kinesis",
            choices={("kinesis", "initial_position"): ("TRIM_HORIZON", "LATEST")},
        )
        self.add_group(
            "REST receiver", _keys("rest", "enabled", "host", "port", "tls_cert", "tls_key",
                                   "rate_limit", "max_body_bytes", "max_batch_readings",
                                   "trusted_proxies"),
            check="rest",
        )
        self.add_group(
            "File drop", _keys("filedrop", "enabled", "inbox", "archive", "failed",
                               "retention_days"),
            check="filedrop",
        )
        self.add_group(
            "DynamoDB anomaly sink", _keys("dynamodb", "enabled", "table", "region",
                                           "endpoint_url"),
            check="dynamodb",
        )
        self.add_group(
            "AWS credentials (Kinesis and DynamoDB; empty: the AWS profile or instance role)",
            [], secrets=[(AWS_ACCESS_KEY_ID, "Access key id"),
                         (AWS_SECRET_ACCESS_KEY, "Secret access key"),
                         (AWS_SESSION_TOKEN, "Session token")],
        )
        self.finish()
