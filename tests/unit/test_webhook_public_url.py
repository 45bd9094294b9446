"""The webhook app's public URL (DUNNING_PUBLIC_URL): the vendors' webhook URLs are rebuilt
from it, never from proxy headers."""

from __future__ import annotations

import pytest

from dunning.webhooks import BadPublicUrl, check_public_url


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("https://hooks.example.com/", "https://hooks.example.com"),
        ("https://example.com:8443/dunning/", "https://example.com:8443/dunning"),
        ("http://127.0.0.1:8766", "http://127.0.0.1:8766"),
    ],
)
def test_a_public_url_is_kept_without_its_trailing_slash(url: str, kept: str) -> None:
    assert check_public_url(url) == kept


@pytest.mark.parametrize(
    "url",
    [
        "hooks.example.com",
        "ftp://hooks.example.com",
        "https://hooks.example.com/?a=1",
        "https://hooks.example.com/#top",
        "https://user:pw@hooks.example.com",
        "https://hooks.example.com:port",
        "https://",
    ],
)
def test_a_public_url_that_is_not_one_is_refused(url: str) -> None:
    with pytest.raises(BadPublicUrl, match="DUNNING_PUBLIC_URL"):
        check_public_url(url)
