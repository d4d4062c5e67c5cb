"""Rooms on air: a room joined to its program source, its sessions and its event bus.

- ``events``     one event bus per room (state and ephemeral events alike)
- ``source``     the ProgramSource Protocol, Speaker (one speaker's audio, wherever it
                 comes from and goes), Republisher (one continuous packet line)
- ``local_mix``  the mixer-backed source: this node acts as the room's origin
- ``on_air``     OnAir, one room's runtime
- ``stage``      Stage, the node's registry of rooms on air and their sessions
"""
