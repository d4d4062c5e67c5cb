"""Running a public node: what its admins and moderators do, and what follows from it.

- ``staff``      who may do what on the admin page (roles), as checks
- ``operators``  actions on accounts (approve, suspend, silence, delete, roles, password
                 links), rooms (end here) and servers (domain blocks), and their
                 consequences across nodes (rooms stop being carried here, never ended
                 for everyone)
- ``reports``    users' reports, forwarded to other servers as ``Flag``; theirs filed here
- ``listing``    which rooms a user is shown (silenced accounts and servers, personal
                 blocks and mutes)
- ``dashboard``  what the admin page's first view shows
- ``recent``     the node's recent warnings and errors, for the dashboard

It sits above node.fediverse and node.relaying (it uses both) and below node.web.
"""
