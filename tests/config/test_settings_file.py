"""Saving settings: comments kept, values validated before writing, nothing half-saved."""

from __future__ import annotations

import os
import stat

import pytest

from vitalstation.config.errors import ConfigError
from vitalstation.config.home import ensure_home
from vitalstation.config.settings import CONFIG_FILE_NAME, Settings, default_toml, load_settings
from vitalstation.config.settings_file import changed_keys, save_settings, updated_toml

ADMIN_FILE = """\
# Ward 5 North: edited by IT on 2026-11-01 (ticket 4711)
[station]
name = "Ward 5 North"   # shown in the title

[rest]
port = 9000             # the firewall opens 9000 only
host = "0.0.0.0"
trusted_proxies = [
    "10.0.0.1",  # the ward's reverse proxy
    "10.0.0.2",
]

[mqtt]
topics = ["a/#"] # devices of building A
"""


def test_changed_values_are_rewritten_and_every_comment_is_kept(tmp_path) -> None:
    (tmp_path / CONFIG_FILE_NAME).write_text(ADMIN_FILE)
    settings = save_settings(
        tmp_path,
        {("rest", "port"): 9100, ("rest", "trusted_proxies"): ("10.0.0.9",),
         ("mqtt", "topics"): ("a/#", "b/#"), ("filedrop", "retention_days"): 30,
         ("rest", "rate_limit"): 100},
        environ={},
    )
    text = (tmp_path / CONFIG_FILE_NAME).read_text()
    assert text.startswith("# Ward 5 North: edited by IT on 2026-11-01 (ticket 4711)\n")
    assert 'name = "Ward 5 North"   # shown in the title' in text
    assert "port = 9100             # the firewall opens 9000 only" in text
    assert 'topics = ["a/#", "b/#"] # devices of building A' in text
    assert 'trusted_proxies = ["10.0.0.9"]\n' in text
    assert "[filedrop]\nretention_days = 30\n" in text
    assert 'host = "0.0.0.0"\ntrusted_proxies = ["10.0.0.9"]\nrate_limit = 100\n' in text
    assert (settings.rest.port, settings.rest.trusted_proxies, settings.mqtt.topics) == (
        9100, ("10.0.0.9",), ("a/#", "b/#"))
    assert load_settings(tmp_path, {}) == settings


def test_a_refused_value_names_the_key_and_leaves_the_file_untouched(tmp_path) -> None:
    file = tmp_path / CONFIG_FILE_NAME
    file.write_text(ADMIN_FILE)
    os.chmod(file, 0o640)
    with pytest.raises(ConfigError) as caught:
        save_settings(tmp_path, {("rest", "port"): 70000, ("station", "name"): "X"}, {})
    assert caught.value.key == "rest.port"
    assert "not a port number" in caught.value.reason
    assert file.read_text() == ADMIN_FILE
    with pytest.raises(ConfigError, match="no setting rest.colour"):
        save_settings(tmp_path, {("rest", "colour"): "red"}, {})
    # A password in a URL would be written in clear: refused, with where it goes instead.
    with pytest.raises(ConfigError, match="password in its own field") as caught:
        save_settings(tmp_path, {("store", "url"): "postgresql://ward:hunter2@db/ward"}, {})
    assert caught.value.key == "store.url"
    assert "hunter2" not in str(caught.value)
    assert file.read_text() == ADMIN_FILE
    save_settings(tmp_path, {("rest", "port"): 9001}, {})
    assert stat.S_IMODE(file.stat().st_mode) == 0o640  # the admin's permissions kept
    assert [p.name for p in tmp_path.iterdir()] == [CONFIG_FILE_NAME]  # no temp file left


def test_the_default_file_of_a_new_home_round_trips(tmp_path) -> None:
    ensure_home(tmp_path)
    before = (tmp_path / CONFIG_FILE_NAME).read_text()
    settings = save_settings(tmp_path, {("kinesis", "enabled"): True,
                                        ("kinesis", "stream"): "Ward5"}, {})
    after = (tmp_path / CONFIG_FILE_NAME).read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True)
               if a != b]
    assert len(changed) == 2
    assert changed[0][1].startswith("enabled = true") and "# read readings from" in changed[0][1]
    assert settings.kinesis.stream == "Ward5"
    assert changed_keys(Settings(home=tmp_path), settings) == {
        ("kinesis", "enabled"), ("kinesis", "stream")}


def test_environment_overrides_still_apply_after_saving(tmp_path) -> None:
    settings = save_settings(tmp_path, {("rest", "port"): 9100},
                             {"VITALSTATION_REST__PORT": "9200"})
    assert settings.rest.port == 9200
    assert settings.source_of("rest", "port") == "env VITALSTATION_REST__PORT"
    assert "port = 9100" in (tmp_path / CONFIG_FILE_NAME).read_text()


def test_a_layout_beyond_the_line_editor_is_rewritten_with_every_value(tmp_path) -> None:
    odd = 'rest = { port = 9000, host = "0.0.0.0" }\n'
    text = updated_toml(odd, {("rest", "rate_limit"): 5})
    settings = load_settings(tmp_path, {}, text=text)
    assert (settings.rest.port, settings.rest.host, settings.rest.rate_limit) == (
        9000, "0.0.0.0", 5)
    assert text.startswith(default_toml().splitlines()[0])


def test_a_preview_checks_without_writing(tmp_path) -> None:
    from vitalstation.config.settings_file import preview_settings

    (tmp_path / CONFIG_FILE_NAME).write_text(ADMIN_FILE)
    preview = preview_settings(tmp_path, {("rest", "port"): 9300}, {})
    assert preview.rest.port == 9300
    assert (tmp_path / CONFIG_FILE_NAME).read_text() == ADMIN_FILE
    with pytest.raises(ConfigError, match="rest.port"):
        preview_settings(tmp_path, {("rest", "port"): 99999}, {})


def test_alarm_limits_are_edited_in_place_one_per_line_when_long(tmp_path) -> None:
    text = ('# ward 5\n[alarms]\nprofile = "adult-ward"  # chosen by the ward\n'
            "limits = []  # changed in Settings\nescalation_high_s = 120\n")
    (tmp_path / CONFIG_FILE_NAME).write_text(text)
    limits = ("heart_rate.high.medium = 120", "oxygen_saturation.low.high = 82",
              "glucose.high.low = 200")
    saved = save_settings(tmp_path, {("alarms", "limits"): limits,
                                     ("alarms", "delays"): ("heart_rate = 5",),
                                     ("alarms", "escalation_high_s"): 60}, {})
    assert saved.alarms.limits == limits and saved.alarms.delays == ("heart_rate = 5",)
    written = (tmp_path / CONFIG_FILE_NAME).read_text()
    assert written == (
        '# ward 5\n[alarms]\nprofile = "adult-ward"  # chosen by the ward\n'
        'limits = [\n    "heart_rate.high.medium = 120",\n'
        '    "oxygen_saturation.low.high = 82",\n    "glucose.high.low = 200",\n'
        ']  # changed in Settings\nescalation_high_s = 60\ndelays = ["heart_rate = 5"]\n'
    )
    again = save_settings(tmp_path, {("alarms", "limits"): ()}, {})
    assert again.alarms.limits == ()
    assert "limits = []  # changed in Settings\n" in (tmp_path / CONFIG_FILE_NAME).read_text()


def test_a_refused_alarm_item_names_key_and_line_and_saves_nothing(tmp_path) -> None:
    text = '[alarms]\nlimits = ["heart_rate.high.medium = 120"]\n'
    (tmp_path / CONFIG_FILE_NAME).write_text(text)
    with pytest.raises(ConfigError) as refused:
        save_settings(tmp_path, {("alarms", "limits"): ("heart_rate.sideways.medium = 1",)}, {})
    assert refused.value.key == "alarms.limits" and refused.value.line == 2
    assert "the side is 'sideways'; use low or high" in refused.value.reason
    assert (tmp_path / CONFIG_FILE_NAME).read_text() == text
