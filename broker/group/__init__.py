"""The group coordinator: classic and KIP-848 consumer groups, and committed offsets.

Pure state machines (no trio, no clock, no log): ``classic.ClassicGroupCoordinator``
(classic groups), ``consumer_group.ConsumerGroupCoordinator`` (KIP-848 groups),
``offsets.OffsetStore`` (every committed offset), behind the facade
``coordinator.GroupCoordinator``, which routes requests by group kind and owns what they
share (the timer, the outbox of ``__consumer_offsets`` writes). ``service.GroupService``
is the trio side the broker core attaches as ``state.groups``: typed calls for the
handlers, and a ``coordinator_runtime.CoordinatorShell`` that loads ``__consumer_offsets``
at startup, runs the timers and appends the writes.
"""
