"""Rooms across nodes: relaying a room of another node, serving our rooms to relays, and
carrying a room on when the node acting as its origin is gone.

- ``service``    RelayService: the registry the web layer and the inbox talk to
- ``hub``        the serving end: relays subscribed to a room, remote speakers' uplink
- ``mirror``     the upstream-backed program source (a room relayed from another node)
- ``survival``   the Carrier: following, failing over, taking over, moving, stepping down
- ``discovery``  finding a room of another node by URL or handle
- ``names``      member names as one node sees them
- ``counters``   what the relay ends drop and refuse
- ``context``    what the parts share (the service)
- ``ports``      what relaying needs from the federation side (signing)
"""
