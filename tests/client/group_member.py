"""A consumer-group member in a process of its own (the crash in test_groups.py is a SIGKILL).

Prints "ready" once assigned, then one line "partition offset" per record processed, and
commits after every poll."""

import sys

from kafkito.client.blocking import Consumer

bootstrap, topic, group, strategy = sys.argv[1:5]
protocol = "consumer" if strategy == "kip848" else "classic"  # KIP-848: the broker assigns
with Consumer(bootstrap, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
              session_timeout_ms=1000, heartbeat_interval_ms=100, group_protocol=protocol,
              partition_assignment_strategy="range" if strategy == "kip848" else strategy) as c:
    c.subscribe([topic])
    announced = False
    while True:
        recs = c.poll(0.2)
        for r in recs:
            print(r.partition, r.offset, flush=True)
        if recs:
            c.commit()
        if not announced and c.assignment():
            print("ready", flush=True)
            announced = True
