"""`kafkito serve` fails with one clear line, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

from kafkito.testing import broker as embedded_broker


def _serve(*args: str, timeout_s: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kafkito.broker.cli", "serve", *args],
                          capture_output=True, text=True, timeout=timeout_s)


def test_bad_setting_exits_2_naming_it(tmp_path):
    result = _serve("--data-dir", str(tmp_path), "--set", "num.partitions=lots")
    assert result.returncode == 2
    assert "num.partitions: 'lots' is not a valid int" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_environment_value_exits_2(tmp_path):
    import os

    env = dict(os.environ, KAFKITO_LOG_RETENTION_MS="soon")
    result = subprocess.run([sys.executable, "-m", "kafkito.broker.cli", "serve", "--data-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=20, env=env)
    assert result.returncode == 2
    assert "KAFKITO_LOG_RETENTION_MS" in result.stderr


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve("--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_directory_in_use_by_another_broker(tmp_path):
    with embedded_broker(tmp_path):
        result = _serve("--data-dir", str(tmp_path), "--listen", "127.0.0.1:0")
    assert result.returncode == 1
    assert "locked by another kafkito broker" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_lists_every_setting_with_its_environment_variable():
    result = subprocess.run([sys.executable, "-m", "kafkito.broker.cli", "config"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0
    assert "num.partitions" in result.stdout and "KAFKITO_NUM_PARTITIONS" in result.stdout


def test_remote_storage_flag_enables_the_remote_tier():
    from kafkito.broker.cli import _parser, build_config
    args = _parser().parse_args(["serve", "--remote-storage", "s3://bucket/prefix"])
    config = build_config(args)
    assert config.remote_log_storage_url == "s3://bucket/prefix"
    assert config.remote_log_storage_system_enable is True
    assert build_config(_parser().parse_args(["serve"])).remote_log_storage_system_enable is False
