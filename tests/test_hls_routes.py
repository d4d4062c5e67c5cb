"""The HLS routes of a real node: headers a cache relies on, and hostile or odd input."""

from __future__ import annotations

import time
from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from node.errors import InvalidInput
from node.web.hls import Unsatisfiable, parse_byte_range, parse_playlist_query
from tests.conftest import Api, NodeProcess
from tests.hls_client import parse_playlist


def _live(api: Api) -> tuple[str, dict[str, str]]:
    host = api.signup("host")
    return host, api.live_room(host, "HLS")


def test_room_json_carries_hls_url_and_the_playlist_is_cacheable(api: Api) -> None:
    _, room = _live(api)
    assert room["hls_url"] == f"{api.base_url}/api/v1/rooms/{room['id']}/hls/index.m3u8"
    response = api.http.get(room["hls_url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apple.mpegurl"
    assert response.headers["cache-control"] == "public, max-age=1"
    assert response.headers["access-control-allow-origin"] == "*"
    assert "set-cookie" not in response.headers
    playlist = parse_playlist(response.text)
    assert playlist.hint is not None
    again = api.http.get(room["hls_url"], headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code in (200, 304)  # 200 once a new part made a new version
    if again.status_code == 304:
        assert again.content == b""
    base = room["hls_url"].rsplit("/", 1)[0]
    init = api.http.get(f"{base}/{playlist.init}")
    assert init.status_code == 200 and init.headers["content-type"] == "audio/mp4"
    assert init.headers["cache-control"] == "public, max-age=3600, immutable"
    assert (
        api.http.get(
            f"{base}/{playlist.init}", headers={"If-None-Match": init.headers["etag"]}
        ).status_code
        == 304
    )
    part = api.http.get(f"{base}/{playlist.hint[2]}")  # held until it exists
    assert part.status_code == 200 and part.headers["etag"]
    head = api.http.head(f"{base}/{playlist.hint[2]}")
    assert head.status_code == 200 and head.content == b""
    preflight = api.http.options(
        room["hls_url"],
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code == 204
    assert "Range" in preflight.headers["access-control-allow-headers"]


def test_unknown_parts_segments_and_streams_are_404_and_never_cached(api: Api) -> None:
    _, room = _live(api)
    playlist = parse_playlist(api.http.get(room["hls_url"]).text)
    token = playlist.init.split("/")[0]
    base = room["hls_url"].rsplit("/", 1)[0]
    for path in (
        f"{token}/p999.0.m4s",
        f"{token}/s999.m4s",
        f"{token}/p0.00.m4s",
        f"{token}/x.m4s",
        f"{token}/p0.-1.m4s",
        f"{token}/s{'9' * 40}.m4s",
        "not-the-token/init.mp4",
        "not-the-token/p0.0.m4s",
    ):
        response = api.http.get(f"{base}/{path}")
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
        assert response.headers["cache-control"] == "no-store"
    assert api.http.get(f"{api.base_url}/api/v1/rooms/nope/hls/index.m3u8").status_code == 404


def test_blocking_requests_far_ahead_or_malformed_are_400_at_once(api: Api) -> None:
    _, room = _live(api)
    api.http.get(room["hls_url"])
    for query in (
        {"_HLS_msn": "1000"},
        {"_HLS_msn": "0", "_HLS_part": "50"},
        {"_HLS_msn": "-1"},
        {"_HLS_msn": "x"},
        {"_HLS_part": "1"},
        {"_HLS_msn": "9" * 30},
    ):
        started = time.monotonic()
        response = api.http.get(room["hls_url"], params=query)
        assert response.status_code == 400, (query, response.text)
        assert response.json()["error"] == "invalid_input"
        assert time.monotonic() - started < 2  # refused, not waited for
    twice = api.http.get(f"{room['hls_url']}?_HLS_msn=0&_HLS_msn=1")
    assert twice.status_code == 400
    # Near the live edge the node waits for the part, then answers with it listed.
    hint = parse_playlist(api.http.get(room["hls_url"]).text).hint
    assert hint is not None
    response = api.http.get(room["hls_url"], params={"_HLS_msn": hint[0], "_HLS_part": hint[1]})
    assert response.status_code == 200
    assert "cache-control" in response.headers and "max-age=6" in response.headers["cache-control"]
    assert any(p[:2] == hint[:2] for p in parse_playlist(response.text).parts)


def test_scheduled_room_is_409_and_an_ended_room_answers_endlist(api: Api) -> None:
    host = api.signup("host")
    scheduled = api.create_room(host, "Later")
    response = api.http.get(scheduled["hls_url"])
    assert response.status_code == 409 and response.headers["cache-control"] == "no-store"
    room = api.live_room(host, "Short")
    playlist = parse_playlist(api.http.get(room["hls_url"]).text)
    api.request("POST", f"/api/v1/rooms/{room['id']}/end", host)
    deadline = time.monotonic() + 15  # guards a hung test only
    while time.monotonic() < deadline:
        ended = api.http.get(room["hls_url"])
        if ended.status_code == 200 and "#EXT-X-ENDLIST" in ended.text:
            break
        time.sleep(0.1)
    final = parse_playlist(ended.text)
    assert final.ended and final.hint is None and final.segments
    assert ended.headers["cache-control"] == "public, max-age=60"
    base = room["hls_url"].rsplit("/", 1)[0]
    assert api.http.get(f"{base}/{final.segments[0][1]}").status_code == 200
    # A blocking reload of an ended room is answered at once, with the end.
    late = api.http.get(room["hls_url"], params={"_HLS_msn": final.segments[-1][0] + 1})
    assert late.status_code == 200 and "#EXT-X-ENDLIST" in late.text
    assert playlist.init == final.init


def test_past_after_listeners_webrtc_listeners_are_sent_to_hls(
    node_factory: Callable[..., NodeProcess], api_factory: Callable[[NodeProcess], Api]
) -> None:
    node = node_factory(hls={"after_listeners": 0, "base_url": "https://cdn.example"})
    api = api_factory(node)
    _, room = _live(api)
    assert room["hls_url"] == f"https://cdn.example/api/v1/rooms/{room['id']}/hls/index.m3u8"
    offer = (
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=recvonly\r\n"
    )
    response = api.http.post(
        room["whep_url"], content=offer, headers={"Content-Type": "application/sdp"}
    )
    assert response.status_code == 503
    assert response.json()["error"] == "use_hls"


# Parsers of outside input (property tests) ----------------------------------------------


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_byte_ranges_stay_inside_the_resource(first: int, last: int, size: int) -> None:
    try:
        span = parse_byte_range(f"bytes={first}-{last}", size)
    except Unsatisfiable:
        assert first >= size
        return
    if last < first:
        assert span is None
    else:
        assert span == (first, min(last, size - 1))


@given(st.text(max_size=80), st.integers(0, 5000))
def test_any_range_header_is_ignored_refused_or_inside(header: str, size: int) -> None:
    try:
        span = parse_byte_range(header, size)
    except Unsatisfiable:
        return
    if span is not None:
        assert 0 <= span[0] <= span[1] < size


@given(
    st.dictionaries(
        st.sampled_from(["_HLS_msn", "_HLS_part", "_HLS_skip", "x"]), st.text(max_size=20)
    )
)
def test_playlist_query_is_parsed_or_refused_with_400(query: dict[str, str]) -> None:
    try:
        request = parse_playlist_query(QueryParams(query))
    except InvalidInput as exc:
        assert exc.status == 400
        return
    if request is not None:
        assert str(request.msn) == query["_HLS_msn"]
        assert request.part is None or str(request.part) == query["_HLS_part"]
    else:
        assert "_HLS_msn" not in query
