"""Fragmented MP4 (CMAF) for Opus: the init segment and one fragment per LL-HLS part.

Pure functions over bytes, no I/O. The boxes are those of ISO/IEC 14496-12 (ISOBMFF)
that a CMAF audio track needs, and the Opus sample entry of "Encapsulation of Opus in
ISO Base Media File Format" (opus-codec.org, version 0.8.1): an ``Opus`` sample entry
holding a ``dOps`` box. Every sample is one 20 ms Opus packet as the mixer encoded it:
nothing is re-encoded, so a listener over HLS hears the very packets WebRTC and Ogg
listeners get.

Why not FFmpeg's ``mp4`` muxer through PyAV: a part is ten packets, and cutting the
muxer's output into parts means parsing it back to find the fragments; per part this
writer costs a few microseconds where PyAV's muxer costs tens of times more
(``bench/bench_hls.py --mux``, bench/RESULTS.md). What it writes is checked by FFmpeg's
own demuxer (``tests/test_media_fmp4.py``) and by hls.js in Chromium.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

__all__ = ["TIMESCALE", "box", "init_segment", "media_fragment", "opus_specific_box"]

TIMESCALE = 48000
"""Opus always decodes at 48 kHz; one tick per sample."""

TRACK_ID = 1
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
# tfhd flag: sample data offsets are relative to this moof (CMAF requires it).
_DEFAULT_BASE_IS_MOOF = 0x020000
# trun flags: data offset present, per-sample duration and size present.
_TRUN_FLAGS = 0x000001 | 0x000100 | 0x000200


def box(kind: bytes, *payload: bytes) -> bytes:
    """An ISOBMFF box: 32-bit size, four-character type, payload."""
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def opus_specific_box(*, channels: int, pre_skip: int, input_rate: int = TIMESCALE) -> bytes:
    """``dOps`` (OpusSpecificBox), channel mapping family 0 (mono or stereo).

    Unlike the Ogg OpusHead it mirrors, every field is big-endian.
    """
    return box(b"dOps", struct.pack(">BBHIhB", 0, channels, pre_skip, input_rate, 0, 0))


def _opus_sample_entry(channels: int, pre_skip: int) -> bytes:
    # AudioSampleEntry: reserved(6), data_reference_index, reserved(8), channelcount,
    # samplesize, pre_defined, reserved, samplerate as 16.16 fixed point.
    fields = struct.pack(">6xH8xHHHHI", 1, channels, 16, 0, 0, (TIMESCALE << 16) & 0xFFFFFFFF)
    return box(b"Opus", fields, opus_specific_box(channels=channels, pre_skip=pre_skip))


def init_segment(*, channels: int = 1, pre_skip: int = 312) -> bytes:
    """``ftyp`` + ``moov`` of a one-track fragmented Opus file (the EXT-X-MAP)."""
    ftyp = box(b"ftyp", b"iso6", struct.pack(">I", 0), b"iso6", b"cmfc", b"mp41", b"Opus")
    mvhd = full_box(
        b"mvhd",
        0,
        0,
        struct.pack(">IIII", 0, 0, TIMESCALE, 0),
        struct.pack(">IH10x", 0x10000, 0x100),
        _MATRIX,
        bytes(24),
        struct.pack(">I", TRACK_ID + 1),
    )
    tkhd = full_box(
        b"tkhd",
        0,
        0x000003,  # enabled, in movie
        struct.pack(">IIIII", 0, 0, TRACK_ID, 0, 0),
        bytes(8),
        struct.pack(">hhHH", 0, 0, 0x100, 0),
        _MATRIX,
        struct.pack(">II", 0, 0),
    )
    language = 0x55C4  # "und", ISO-639-2/T packed in 5-bit letters
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, TIMESCALE, 0, language, 0))
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, b"soun"), b"SoundHandler\x00")
    smhd = full_box(b"smhd", 0, 0, struct.pack(">hH", 0, 0))
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, 0, struct.pack(">I", 1), _opus_sample_entry(channels, pre_skip)),
        full_box(b"stts", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsc", 0, 0, struct.pack(">I", 0)),
        full_box(b"stsz", 0, 0, struct.pack(">II", 0, 0)),
        full_box(b"stco", 0, 0, struct.pack(">I", 0)),
    )
    trak = box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", smhd, dinf, stbl)))
    trex = full_box(b"trex", 0, 0, struct.pack(">IIIII", TRACK_ID, 1, 960, 0, 0))
    return ftyp + box(b"moov", mvhd, trak, box(b"mvex", trex))


def media_fragment(
    sequence: int, decode_time: int, samples: Sequence[bytes], durations: Sequence[int]
) -> bytes:
    """``moof`` + ``mdat`` carrying ``samples`` (Opus packets) from ``decode_time``.

    ``sequence`` is the fragment's ``mfhd`` sequence number (increasing by one per
    fragment of the track); ``durations`` are in 48 kHz ticks, one per sample.
    """
    if len(samples) != len(durations) or not samples:
        raise ValueError("one duration per sample, and at least one sample")
    mfhd = full_box(b"mfhd", 0, 0, struct.pack(">I", sequence))
    tfhd = full_box(b"tfhd", 0, _DEFAULT_BASE_IS_MOOF, struct.pack(">I", TRACK_ID))
    tfdt = full_box(b"tfdt", 1, 0, struct.pack(">Q", decode_time))
    entries = b"".join(
        struct.pack(">II", duration, len(sample))
        for duration, sample in zip(durations, samples, strict=True)
    )
    # The data offset points past the moof and the mdat header; the trun's own size is
    # known before the offset's value, so build it with a placeholder and patch it.
    trun = full_box(b"trun", 0, _TRUN_FLAGS, struct.pack(">Ii", len(samples), 0), entries)
    moof_size = 8 + len(mfhd) + 8 + len(tfhd) + len(tfdt) + len(trun)
    trun = trun[:16] + struct.pack(">i", moof_size + 8) + trun[20:]
    moof = box(b"moof", mfhd, box(b"traf", tfhd, tfdt, trun))
    return moof + box(b"mdat", *samples)
