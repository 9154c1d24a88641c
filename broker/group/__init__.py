"""The group coordinator: classic consumer groups and committed offsets.

``coordinator.GroupCoordinator`` is the pure state machine (no trio, no clock, no log);
``service.GroupService`` is the trio glue the broker core attaches as ``state.groups``:
it loads ``__consumer_offsets`` at startup, runs the coordinator's timers, appends its
writes and lets handlers wait for parked JoinGroup/SyncGroup requests.
"""
