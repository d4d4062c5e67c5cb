"""bench/harness.py: what every benchmark's node start records."""

from __future__ import annotations

import re

from bench.harness import media_code_hash


def test_the_media_code_hash_reads_the_tree_as_it_is() -> None:
    # It named node/stage.py, which the room-core rebuild removed: every benchmark that
    # starts a node crashed before measuring anything.
    assert re.fullmatch(r"[0-9a-f]{8}", media_code_hash())
