"""The side-by-side benchmark harness behind ``python -m bench run``.

brokers.py starts and stops the brokers under test; loadgen.py is the confluent-kafka
load generator (one worker process per job); workers.py runs those processes;
workloads.py declares what is measured; machine.py measures the machine's own limits;
runner.py runs everything, interleaved; report.py writes the table and the chart.
"""
