"""A WHIP speaker as its own process: `python tests/speaker_client.py WHIP_URL TOKEN HZ`.

Prints "publishing" once the node answered, then sends the tone until killed. Tests kill
it with SIGKILL to play a speaker whose laptop lid closed."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from node.media.ice import IceSettings, install_ice_policy  # noqa: E402
from tests.tonekit import ToneTrack, publish  # noqa: E402


async def main(url: str, token: str, hz: float) -> None:
    install_ice_policy(IceSettings(host_addresses=("127.0.0.1",)), asyncio.get_running_loop())
    await publish(url, token, ToneTrack(hz))
    print("publishing", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
