"""Property tests (hypothesis) for the node's parsers of outside input: SDP offers,
Opus packets from relays (combined for WebRTC, paged for Ogg, decoded for the mixer),
and node.toml. Property: a value, or an error of the node's own tree; never a crash."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from pathlib import Path

import av
from hypothesis import example, given
from hypothesis import strategies as st

from node.config import ConfigError, load_config, parse_config
from node.media.errors import InvalidOffer, StreamClosed
from node.media.packets import OpusPacket, PacketStream, combine_opus
from node.media.peers import check_offer
from node.media.stream import OggOpusPages, ogg_crc

# ---------------------------------------------------------------------------- SDP offers

sdp_lines = st.one_of(
    st.sampled_from(
        [
            "v=0", "o=- 1 1 IN IP4 0.0.0.0", "s=-", "t=0 0", "m=audio 9 UDP/TLS/RTP/SAVPF 111",
            "m=video 9 UDP/TLS/RTP/SAVPF 96", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "a=rtpmap:111 opus/48000/2", "a=rtpmap:96 VP8/90000", "a=sendrecv", "a=sendonly",
            "a=recvonly", "a=inactive", "c=IN IP4 0.0.0.0", "m=audio", "m=", "a=", "\x00",
        ]
    ),
    st.text(max_size=40),
)  # fmt: skip


@given(
    st.lists(sdp_lines, max_size=20).map("\r\n".join) | st.text(max_size=200),
    st.integers(0, 4096),
    st.sampled_from([("sendrecv", "sendonly"), ("recvonly",)]),
)
def test_check_offer(sdp: str, max_bytes: int, directions: tuple[str, ...]) -> None:
    try:
        direction = check_offer(sdp, max_bytes=max_bytes, directions=directions)
    except InvalidOffer:
        return
    assert direction in directions
    assert len(sdp.encode("utf-8", "surrogatepass")) <= max_bytes
    kinds = [line.split()[0][2:] for line in sdp.splitlines() if line.startswith("m=") and
             line.split()]  # fmt: skip
    assert kinds.count("audio") == 1 and set(kinds) <= {"audio", "video"}, sdp


# ---------------------------------------------------------------------------- Opus


def _frames_of_code3(data: bytes) -> list[bytes]:
    """RFC 6716 section 3.2.5, VBR: the frames of a code 3 packet (our own reader)."""
    assert data[0] & 0x03 == 3
    count = data[1] & 0x3F
    assert data[1] & 0x80 and not data[1] & 0x40  # VBR, no padding
    pos, lengths = 2, []
    for _ in range(count - 1):
        first = data[pos]
        if first < 252:
            lengths.append(first)
            pos += 1
        else:
            lengths.append(first + 4 * data[pos + 1])
            pos += 2
    frames = []
    for length in lengths:
        frames.append(data[pos : pos + length])
        pos += length
    frames.append(data[pos:])
    return frames


packets = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([0x08, 0x78, 0xF8, 0x08 | 1]),
              st.binary(max_size=1300)),
    min_size=1,
    max_size=7,
)  # fmt: skip


@given(packets)
def test_combine_opus(raw: list[tuple[int, int, bytes]]) -> None:
    seq = 0
    items = []
    for gap, toc, body in raw:
        seq += 1 if gap else 0  # gap 0: a duplicate seq, which must not combine
        items.append(OpusPacket(seq, seq * 960, bytes([toc]) + body))
        seq += gap
    combined = combine_opus(items)
    if combined is None:
        return
    assert combined.seq == items[0].seq and combined.pts == items[0].pts
    assert _frames_of_code3(combined.data) == [p.data[1:] for p in items]
    assert combined.data[0] & 0xFC == items[0].data[0] & 0xFC


@given(st.binary(min_size=1, max_size=1275))
def test_relay_payloads_decode_or_fail_as_ffmpeg_errors(payload: bytes) -> None:
    """What RelayHub.on_binary relies on: libopus refuses garbage with av.FFmpegError."""
    decoder = av.CodecContext.create("libopus", "r")
    assert isinstance(decoder, av.AudioCodecContext)
    decoder.sample_rate = 48000
    decoder.layout = "mono"
    try:
        for frame in decoder.decode(av.Packet(payload)):
            assert frame.sample_rate == 48000
    except av.FFmpegError:
        pass


def _read_pages(data: bytes) -> list[tuple[int, list[bytes]]]:
    """(granule, packets) of each Ogg page; checks the CRC and the segment table."""
    pages, pos = [], 0
    while pos < len(data):
        header = struct.unpack_from("<4sBBqIIIB", data, pos)
        assert header[0] == b"OggS"
        segments = data[pos + 27 : pos + 27 + header[7]]
        body_start = pos + 27 + header[7]
        size = sum(segments)
        page = data[pos : body_start + size]
        unsigned = page[:22] + b"\0\0\0\0" + page[26:]
        assert struct.unpack_from("<I", page, 22)[0] == ogg_crc(unsigned)
        found, current, cursor = [], b"", body_start
        for lace in segments:
            current += data[cursor : cursor + lace]
            cursor += lace
            if lace < 255:
                found.append(current)
                current = b""
        pages.append((header[3], found))
        pos = body_start + size
    return pages


@given(st.lists(st.binary(min_size=1, max_size=1275), max_size=60), st.integers(1, 50))
@example([b"\xfc" * 1275] * 50, 50)  # 300 segments: the old page builder died on it
async def test_ogg_pages_carry_any_relayed_packets(payloads: list[bytes], per_page: int) -> None:
    """Packets a relay hands us (1..1275 bytes) become valid Ogg pages whatever the page
    length: big packets close a page early rather than overflow its segment table."""
    stream = PacketStream(capacity=len(payloads) + 1)
    pages = OggOpusPages(stream, packets_per_page=per_page)
    reader = pages.page_reader()

    async def collect() -> bytes:
        data = b""
        with contextlib.suppress(StreamClosed):
            while True:
                data += (await asyncio.wait_for(reader.next(), 5)).data
        return data

    collector = asyncio.create_task(collect())
    for i, payload in enumerate(payloads):
        stream.publish(OpusPacket(i, i * 960, payload))
        # Let the page builder and the listener keep up, as they do on air (a listener
        # that falls a whole page ring behind skips ahead, by design).
        for _ in range(3):
            await asyncio.sleep(0)
    stream.close()
    data = await collector
    read = _read_pages(data)
    carried = [packet for _, found in read for packet in found]
    assert carried == payloads[: len(carried)]
    assert len(payloads) - len(carried) < per_page  # only an unfinished last page is left
    assert all(len(found) <= per_page for _, found in read)


# ---------------------------------------------------------------------------- node.toml

toml_texts = st.one_of(
    st.text(max_size=200),
    st.builds(
        "[{}]\n{} = {}\n".format,
        st.sampled_from(["node", "accounts", "media", "federation", "x"]),
        st.sampled_from(["base_url", "port", "trusted_proxies", "workers", "max_speakers",
                         "allow_private_destinations", "fetch_rate_per_minute", "ice_servers",
                         "ogg_page_ms", "x"]),
        st.sampled_from(['"http://[::1"', '"https://a.example:99999"', "[]", '["x"]',
                         '["127.0.0.1:80"]', "-1", "0", "1e400", "true", '"a"', "[[[]]]",
                         "{a = 1}", '"http://a.example/path"', '["10.0.0.0/8"]']),
    ),
    st.integers(1, 3000).map(lambda n: "a = " + "[" * n + "]" * n),
)  # fmt: skip


@given(toml_texts)
def test_node_toml(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "node.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(path)
        except ConfigError:
            pass


@given(
    st.dictionaries(
        st.sampled_from(["node", "accounts", "media", "federation"]),
        st.dictionaries(st.text(max_size=20), st.none() | st.integers() | st.text(max_size=20)
                        | st.lists(st.text(max_size=10), max_size=3), max_size=3),
    )
)  # fmt: skip
def test_parse_config(raw: dict) -> None:
    try:
        parse_config(
            {k: {kk: vv for kk, vv in v.items() if vv is not None} for k, v in raw.items()}
        )
    except ConfigError:
        pass
