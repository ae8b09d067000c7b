"""LokiConfig: defaults, sources and their priority, errors that say where."""

from __future__ import annotations

import pytest

from osqsdk.loki import LokiConfig, LokiConfigError, load_config
from osqsdk.loki._config import parse_duration, parse_size


def test_defaults_follow_lokis_clients():
    config = LokiConfig(url="http://loki:3100")
    assert config.url == "http://loki:3100/loki/api/v1/push"
    assert (config.batch_bytes, config.batch_wait) == (1 << 20, 1.0)
    assert (config.min_backoff, config.max_backoff, config.timeout) == (0.5, 300.0, 10.0)
    assert config.encoding == "protobuf" and not config.insecure_skip_verify
    assert dict(config.static_labels) == {"job": "osquery"}
    assert dict(config.labels) == {"name": "name", "host": "host", "action": "action",
                                   "log_type": "log_type"}


def test_priority_flags_over_environment_over_file(tmp_path):
    path = tmp_path / "loki.toml"
    path.write_text('url = "http://from-file:3100"\ntenant = "file"\nbatch_wait = "2s"\n'
                    '[static_labels]\njob = "osquery"\nenv = "prod"\n')
    env = {"OSQSDK_LOKI_TENANT": "env", "OSQSDK_LOKI_BATCH_BYTES": "512KiB"}
    config = load_config(path, env=env, batch_wait="250ms", url=None)
    assert config.url == "http://from-file:3100/loki/api/v1/push"
    assert config.tenant == "env"
    assert config.batch_bytes == 512 * 1024
    assert config.batch_wait == 0.25
    assert dict(config.static_labels) == {"job": "osquery", "env": "prod"}


def test_config_file_from_the_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('url = "https://loki.example:443/custom/push"\n')
    config = load_config(env={"OSQSDK_LOKI_CONFIG": str(path)})
    assert config.url == "https://loki.example:443/custom/push"


def test_secrets_from_files_are_read_and_hidden(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    config = load_config(env={"OSQSDK_LOKI_URL": "http://l:1", "OSQSDK_LOKI_USERNAME": "u",
                              "OSQSDK_LOKI_PASSWORD_FILE": str(tmp_path / "pw")})
    assert config.password.reveal() == "s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.password)


def test_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('url = "http://l:1"\n\nbatch_wait = "soon"\n')
    with pytest.raises(LokiConfigError, match=rf"{path}:3: batch_wait: 'soon' is not a duration"):
        load_config(path, env={})
    path.write_text('url = "http://l:1"\n[labels]\nquery = "columns.user"\n')
    with pytest.raises(LokiConfigError, match=rf"{path}:2: labels: 'query' has source "
                                              r"'columns.user'"):
        load_config(path, env={})
    path.write_text('url = "http://l:1"\nnot_a_setting = 1\n')
    with pytest.raises(LokiConfigError, match=rf"{path}:2: unknown setting 'not_a_setting'"):
        load_config(path, env={})
    path.write_text('url = \n')
    with pytest.raises(LokiConfigError, match=rf"{path}: not valid TOML"):
        load_config(path, env={})


def test_errors_name_the_variable_or_option():
    with pytest.raises(LokiConfigError, match="environment variable OSQSDK_LOKI_TIMEOUT"):
        load_config(env={"OSQSDK_LOKI_URL": "http://l:1", "OSQSDK_LOKI_TIMEOUT": "-"})
    with pytest.raises(LokiConfigError, match="option --tenant: tenant"):
        load_config(env={"OSQSDK_LOKI_URL": "http://l:1"}, tenant="a|b")
    with pytest.raises(LokiConfigError, match="url: Loki's URL is required"):
        load_config(env={})


@pytest.mark.parametrize("settings, message", [
    ({"url": "ftp://x"}, "http:// or https://"),
    ({"url": "http://u:pw@h:99999"}, "url: not a valid URL: Port out of range"),
    ({"url": "http://h:x"}, "url: not a valid URL: Port could not be cast"),
    ({"url": "http://[::1"}, "url: not a valid URL: Invalid IPv6 URL"),
    ({"encoding": "xml"}, "encoding"),
    ({"batch_bytes": 7 << 20}, "burst"),
    ({"labels": {"__x": "name"}}, "not a Loki label name"),
    ({"labels": {"a-b": "name"}}, "not a Loki label name"),
    ({"labels": {"user": "columns.username"}}, "has source"),
    ({"static_labels": {f"l{i}": "v" for i in range(16)}}, "at most 15"),
    ({"headers": {"X-Scope-OrgID": "t"}}, "set by osqsdk"),
    ({"tenant": "."}, "tenant ID"),
    ({"password": "p"}, "needs a username"),
    ({"username": "u", "bearer_token": "t"}, "not both"),
    ({"key_file": "k.pem"}, "needs cert_file"),
    ({"line_too_long": "split"}, "line_too_long"),
    ({"batch_wait": 0}, "positive"),
])
def test_invalid_settings(settings, message):
    with pytest.raises(LokiConfigError, match=message):
        LokiConfig(**{"url": "http://l:1", **settings})


def test_a_bad_url_is_not_echoed_with_its_password():
    with pytest.raises(LokiConfigError) as info:
        LokiConfig(url="ftp://user:topsecret@host")
    assert "topsecret" not in str(info.value)


def test_decoration_sources():
    config = LokiConfig(url="http://l:1", labels={"env": "decoration:environment"},
                        structured_metadata={"host_uuid": "decoration:host_uuid",
                                             "counter": "counter"})
    assert config.labels["env"] == "decoration:environment"


@pytest.mark.parametrize("text, value", [("1048576", 1048576), ("512KiB", 524288),
                                         ("1MiB", 1 << 20), ("2MB", 2 << 20), ("1G", 1 << 30)])
def test_sizes(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text, value", [("1.5", 1.5), ("500ms", 0.5), ("10s", 10),
                                         ("5m", 300), ("1h", 3600), ("7d", 604800)])
def test_durations(text, value):
    assert parse_duration(text) == value


@pytest.mark.parametrize("url", ["http://bob:Zq9#x7k@loki:3100", "http://bob:Zq9/x7k@loki",
                                 "http://bob:Zq9?x7k@loki"])
def test_a_url_whose_credentials_cannot_be_read_is_refused_without_echoing_them(url):
    with pytest.raises(LokiConfigError) as raised:
        LokiConfig(url=url)
    message = str(raised.value)
    assert message.startswith("url: the URL's credentials cannot be read")
    assert "Zq9" not in message and "x7k" not in message


@pytest.mark.parametrize("field, value", [("bearer_token", "tok-secret\n"),
                                          ("bearer_token", "tok-secret\r"),
                                          ("password", "pw-secret\x00x")])
def test_a_credential_that_would_break_the_header_is_a_configuration_error(field, value):
    settings = {"url": "http://loki:3100", field: value}
    if field == "password":
        settings["username"] = "bob"
    with pytest.raises(LokiConfigError, match=f"^{field}: contains a line break") as raised:
        LokiConfig(**settings)
    assert "secret" not in str(raised.value)


def test_a_token_file_ending_in_a_newline_is_read_without_it(tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-from-file\n")
    config = load_config(None, env={"OSQSDK_LOKI_URL": "http://loki:3100",
                                    "OSQSDK_LOKI_BEARER_TOKEN_FILE": str(token)})
    assert config.bearer_token is not None and config.bearer_token.reveal() == "tok-from-file"


def test_query_string_secrets_are_redacted_in_every_retry_warning(make_config, busy_port,
                                                                  caplog):
    import logging

    from osqsdk.loki import LokiClient

    caplog.set_level(logging.DEBUG)
    url = "http://127.0.0.1:1/loki/api/v1/push?api_key=qs-very-secret&x=1"
    with LokiClient(make_config(url, max_retries=3)) as client:
        client.push({"job": "t"}, "line")
        assert client.flush(10)
    messages = "\n".join(r.getMessage() for r in caplog.records)
    assert "retry" in messages and "api_key=***" in messages
    assert "qs-very-secret" not in messages


@pytest.mark.parametrize("setting", ["ca_file", "cert_file"])
def test_tls_files_are_checked_when_the_client_starts(tmp_path, make_config, setting):
    from osqsdk.loki import LokiClient

    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    options = {setting: str(broken)}
    if setting == "cert_file":
        options["key_file"] = str(broken)
    config = make_config("https://loki.invalid:3100", **options)
    with pytest.raises(LokiConfigError, match=f"^{setting}: cannot be used"):
        LokiClient(config)
    missing = make_config("https://loki.invalid:3100", ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(LokiConfigError, match=r"^ca_file: cannot be used: No such file"):
        LokiClient(missing)
