"""Storage: the node's SQLite database, every table's schema and every SQLite port.

Nothing outside this package writes SQL. The domain (node.rooms, node.accounts) is plain
data and rules; the services above it are given these stores.

- ``database``    open the database file (WAL mode), migrated to the newest schema
- ``schema``      every table: one ordered list of migrations (how to add one: its docstring)
- ``migrate``     apply the pending migrations, each once, in one transaction
- ``errors``      what stops the storage (damaged file, newer database...); DatabaseFull
- ``lock``        one node per data dir (restore and migrate refused while it runs)
- ``backup``      ``python -m node backup`` / ``restore``
- ``files``       the data dir's file areas and writing files there safely
- ``health``      writes refused for want of space, for the admin
- ``accounts``    accounts and sessions
- ``rooms``       rooms' durable part: identity, title, life cycle, blocks
- ``federation``  follows, inbox, deliveries, actor cache, announced rooms, outbox, notes
- ``actors``      our actors and keys as the federation package asks for them
- ``relaying``    rooms carried across nodes: mirrors and the acting origin's succession
"""
