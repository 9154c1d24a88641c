"""The installed ``kafkito`` executable's client commands, run in subprocesses against an
embedded broker: topics round trip, produce from stdin then consume, groups describe with
lag and a reset, --format json parsed back, and bad input (unreachable broker, unknown
topic, malformed --header, Ctrl-C mid-consume)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

KAFKITO = shutil.which("kafkito", path=str(Path(sys.executable).parent)) or "kafkito"


def kafkito(*args, bootstrap=None, input=None, timeout=60, check=True):
    cmd = [KAFKITO, *args]
    if bootstrap:
        cmd += ["--bootstrap-server", bootstrap]
    proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def test_topics_round_trip(kbroker, topic_name):
    b = kbroker.bootstrap_servers
    kafkito("topics", "create", topic_name, "--partitions", "3", "--config", "retention.ms=123456", bootstrap=b)
    assert topic_name in kafkito("topics", "list", bootstrap=b).stdout.decode().split()
    described = json.loads(kafkito("topics", "describe", topic_name, "--format", "json", bootstrap=b).stdout)
    assert described[0]["topic"] == topic_name
    assert [p["partition"] for p in described[0]["partitions"]] == [0, 1, 2]
    assert described[0]["configs"]["retention.ms"] == "123456"
    kafkito("topics", "alter", topic_name, "--partitions", "4", "--config", "retention.ms=654321", bootstrap=b)
    described = json.loads(kafkito("topics", "describe", topic_name, "--format", "json", bootstrap=b).stdout)
    assert len(described[0]["partitions"]) == 4 and described[0]["configs"]["retention.ms"] == "654321"
    kafkito("topics", "delete", topic_name, bootstrap=b)
    assert topic_name not in json.loads(kafkito("topics", "list", "--format", "json", bootstrap=b).stdout)


def test_produce_from_stdin_then_consume(kbroker, topic_name):
    b = kbroker.bootstrap_servers
    kafkito("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    lines = b"k1:first\nk2:second\nno-key-here\n"
    out = kafkito("produce", topic_name, "--key-separator", ":", "--header", "src=cli", "--header", "n=1",
                  "--format", "json", bootstrap=b, input=lines)
    delivered = [json.loads(x) for x in out.stdout.splitlines()]
    assert [d["offset"] for d in delivered] == [0, 1, 2]
    text = kafkito("consume", topic_name, "--from-beginning", "--max-messages", "3", "--print-key",
                   "--print-offset", "--print-headers", bootstrap=b).stdout.decode().splitlines()
    assert text == ["0:0\tk1\tsrc=cli,n=1\tfirst", "0:1\tk2\tsrc=cli,n=1\tsecond", "0:2\t\tsrc=cli,n=1\tno-key-here"]
    js = [json.loads(x) for x in kafkito("consume", topic_name, "--offset", "1", "--max-messages", "2",
                                         "--format", "json", bootstrap=b).stdout.splitlines()]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in js] == [
        (1, "k2", "second", [["src", "cli"], ["n", "1"]]), (2, None, "no-key-here", [["src", "cli"], ["n", "1"]])]


def test_groups_describe_shows_lag_and_reset_moves_offsets(kbroker, topic_name):
    b = kbroker.bootstrap_servers
    group = f"cli-{topic_name}"
    kafkito("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    kafkito("produce", topic_name, bootstrap=b, input=b"".join(b"%d\n" % i for i in range(10)))
    kafkito("consume", topic_name, "--group", group, "--from-beginning", "--max-messages", "4", bootstrap=b)
    assert group in kafkito("groups", "list", bootstrap=b).stdout.decode()
    desc = json.loads(kafkito("groups", "describe", group, "--format", "json", bootstrap=b).stdout)
    [row] = desc["partitions"]
    assert (row["current_offset"], row["log_end_offset"], row["lag"]) == (4, 10, 6)
    text = kafkito("groups", "describe", group, bootstrap=b).stdout.decode()
    assert f"{topic_name}\t0\t4\t10\t6" in text
    dry = json.loads(kafkito("groups", "reset-offsets", group, "--topic", topic_name, "--to-offset", "2",
                             "--format", "json", bootstrap=b).stdout)
    assert dry["executed"] is False and dry["partitions"][0]["new_offset"] == 2
    desc = json.loads(kafkito("groups", "describe", group, "--format", "json", bootstrap=b).stdout)
    assert desc["partitions"][0]["current_offset"] == 4, "a dry run changed the offsets"
    kafkito("groups", "reset-offsets", group, "--topic", topic_name, "--shift-by", "-3", "--execute", bootstrap=b)
    desc = json.loads(kafkito("groups", "describe", group, "--format", "json", bootstrap=b).stdout)
    assert desc["partitions"][0]["current_offset"] == 1
    resumed = kafkito("consume", topic_name, "--group", group, "--max-messages", "2", bootstrap=b).stdout.split()
    assert resumed == [b"1", b"2"]
    kafkito("groups", "delete", group, bootstrap=b)
    assert group not in kafkito("groups", "list", bootstrap=b).stdout.decode()


def test_an_unreachable_broker_is_one_line_and_a_nonzero_exit_in_time():
    start = time.monotonic()
    proc = kafkito("topics", "list", "--request-timeout-ms", "2000", bootstrap="127.0.0.1:1", check=False)
    assert time.monotonic() - start < 15
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and err.startswith("kafkito: ") and "127.0.0.1:1" in err


def test_an_unknown_topic_is_named(kbroker, topic_name):
    proc = kafkito("consume", topic_name, "--timeout", "1", bootstrap=kbroker.bootstrap_servers, check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == f"kafkito: topic {topic_name!r} does not exist (UNKNOWN_TOPIC_OR_PARTITION)"


def test_a_malformed_header_is_a_usage_error(kbroker, topic_name):
    proc = kafkito("produce", topic_name, "--header", "no-equals-sign", bootstrap=kbroker.bootstrap_servers,
                   input=b"x\n", check=False)
    assert proc.returncode == 2
    assert "malformed header 'no-equals-sign'" in proc.stderr.decode()


def test_ctrl_c_mid_consume_exits_cleanly_with_offsets_committed(kbroker, topic_name):
    b = kbroker.bootstrap_servers
    group = f"sigint-{topic_name}"
    kafkito("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    kafkito("produce", topic_name, bootstrap=b, input=b"".join(b"%d\n" % i for i in range(5)))
    proc = subprocess.Popen([KAFKITO, "consume", topic_name, "--group", group, "--from-beginning",
                             "--bootstrap-server", b], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = []
    deadline = time.monotonic() + 30
    while len(got) < 5 and time.monotonic() < deadline:
        got.append(proc.stdout.readline().strip())
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    desc = json.loads(kafkito("groups", "describe", group, "--format", "json", bootstrap=b).stdout)
    assert desc["partitions"][0]["current_offset"] == 5


def test_the_progress_line_goes_to_a_terminal_only(kbroker, topic_name):
    import pty

    b = kbroker.bootstrap_servers
    kafkito("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    kafkito("produce", topic_name, bootstrap=b, input=b"".join(b"%d\n" % i for i in range(50)))
    args = [KAFKITO, "consume", topic_name, "--from-beginning", "--max-messages", "50", "--bootstrap-server", b]
    piped = subprocess.run(args, capture_output=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == b""
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=60)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 50
    assert b"/50 (" in seen  # "topic [####...] done/50 (pct%)"
