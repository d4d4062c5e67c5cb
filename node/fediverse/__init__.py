"""The node's side of federation.

- ``service``    Fediverse: inbox and delivery workers, follows, announced rooms, signing
- ``announcer``  our public rooms as Create/Update{Note} for the host's followers
"""
