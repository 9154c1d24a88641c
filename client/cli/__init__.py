"""The client commands of the ``kafkito`` command line (registered by broker/cli.py)."""
