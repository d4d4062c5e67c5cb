"""HTML in and out, cleaned by Ammonia (``nh3``) to what Mastodon allows.

Every HTML field we emit (a Note's ``content``, an actor's ``summary``) and every piece of
remote text we keep or show goes through here. Remote *plain-text* fields (a room's
``name``, an actor's ``name``) must not carry markup at all: :func:`plain_text` strips
it. The allowed set follows Mastodon's ``Sanitize::Config::MASTODON_STRICT``
(``lib/sanitize_ext/sanitize_config.rb``): inline formatting, lists, quotes and links,
with classes limited to microformats and Mastodon's own (``mention``, ``hashtag``,
``ellipsis``, ``invisible``).
"""

from __future__ import annotations

import html
import re

import nh3

__all__ = ["ALLOWED_TAGS", "clean_html", "plain_text", "text_to_html"]

ALLOWED_TAGS = frozenset(
    {
        "p", "br", "span", "a", "abbr", "del", "s", "pre", "blockquote", "code", "b",
        "strong", "u", "sub", "sup", "i", "em", "h1", "h2", "h3", "h4", "h5", "ul", "ol",
        "li", "ruby", "rt", "rp",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "class", "translate"},  # rel: set by link_rel below
    "abbr": {"title"},
    "span": {"class", "translate"},
    "blockquote": {"cite"},
    "ol": {"start", "reversed"},
    "li": {"value"},
    "p": {"class"},
}
URL_SCHEMES = frozenset(
    {"http", "https", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "xmpp", "magnet", "gemini"}
)
_CLASS = re.compile(r"^(?:(?:h|p|u|dt|e)-\S+|mention|hashtag|ellipsis|invisible)$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _keep_classes(tag: str, attribute: str, value: str) -> str | None:
    if attribute != "class":
        return value
    kept = [name for name in value.split() if _CLASS.match(name)]
    return " ".join(kept) or None


def clean_html(value: str) -> str:
    """HTML reduced to Mastodon's allowed elements, attributes, classes and URL schemes;
    ``<script>``/``<style>`` go with their content."""
    return nh3.clean(
        _CONTROL.sub("", value),
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_keep_classes,
        url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener noreferrer",
    )


def plain_text(value: str, limit: int | None = None) -> str:
    """A remote plain-text field with any markup removed (``<img onerror=…>Show`` ->
    ``Show``), entities decoded, control characters dropped, at most ``limit`` chars.

    Decoding can reveal markup that was escaped (``&lt;b&gt;``), so stripping repeats
    until nothing changes.
    """
    text = _CONTROL.sub("", value)
    for _ in range(4):
        stripped = html.unescape(nh3.clean(text, tags=set()))
        if stripped == text:
            break
        text = stripped
    else:
        text = html.escape(text, quote=False)
    text = text.strip()
    return text[:limit] if limit is not None else text


def text_to_html(text: str) -> str:
    """Plain text someone typed (a bio) as the HTML ActivityPub carries: escaped,
    paragraphs on blank lines, ``<br>`` on single ones."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip().replace("\r\n", "\n")) if p]
    body = "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
    return clean_html(body)
