"""The dashboard page: the node's status and a player for a pasted CID."""

from __future__ import annotations

from storenode.api.dashboard import render_dashboard

CID = bytes(range(32))


def test_the_page_shows_every_status_field() -> None:
    page = render_dashboard({"address": "0xabc", "height": 42, "peers": ["a", "b"]})
    assert "<th>address</th><td>0xabc</td>" in page
    assert "<th>height</th><td>42</td>" in page
    assert "<th>peers</th><td>[&quot;a&quot;, &quot;b&quot;]</td>" in page
    assert "<audio" not in page


def test_a_pasted_cid_gets_a_player_on_its_content_url() -> None:
    page = render_dashboard({}, "0x" + CID.hex())
    assert f'<audio controls preload="metadata" src="/content/{CID.hex()}">' in page


def test_a_bad_cid_says_what_a_cid_is_and_plays_nothing() -> None:
    page = render_dashboard({}, "not-a-cid")
    assert "<audio" not in page
    assert "64 hex digits" in page


def test_status_and_pasted_text_cannot_inject_markup() -> None:
    page = render_dashboard({"<b>": "<script>alert(1)</script>"}, '"><script>x</script>')
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page


def test_the_page_loads_nothing_from_elsewhere() -> None:
    page = render_dashboard({"a": 1}, CID.hex())
    assert "http://" not in page and "https://" not in page and "<script" not in page
