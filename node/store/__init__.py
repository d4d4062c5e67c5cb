"""Storage: the node's SQLite database, every table's schema and every SQLite port.

Nothing outside this package writes SQL. The domain (node.rooms, node.accounts) is plain
data and rules; the services above it are given these stores.

- ``database``    open the database file (WAL mode) and create the schema
- ``schema``      every CREATE statement, in order
- ``accounts``    accounts and sessions
- ``rooms``       rooms' durable part: identity, title, life cycle, blocks
- ``federation``  follows, inbox, deliveries, actor cache, announced rooms, outbox, notes
- ``actors``      our actors and keys as the federation package asks for them
- ``relaying``    rooms carried across nodes: mirrors and the acting origin's succession
"""
