"""How a result's link unfurls where it is pasted (Discord, chat apps, social sites): the result
page's Open Graph and Twitter-card tags, read back by parsing the page as a crawler would."""

from __future__ import annotations

from html.parser import HTMLParser

from sqlalchemy import update

from bot.store.models import Job
from tests.bot.web.conftest import PUBLIC

PUBLIC_URL = "https://dreams.example.org"


class _MetaTags(HTMLParser):
    """The <meta> tags of a page's head, by property or name; a tag given twice is an error."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        fields = dict(attrs)
        key = fields.get("property") or fields.get("name")
        if tag == "meta" and key is not None:
            assert key not in self.tags, f"{key} given twice"
            self.tags[key] = fields.get("content") or ""


async def meta_tags(client, path: str) -> dict[str, str]:
    response = await client.get(path)
    assert response.status == 200
    parser = _MetaTags()
    parser.feed(await response.text())
    return parser.tags


async def test_an_image_result_unfurls_with_its_picture_title_command_and_size(make_client, published):
    client = await make_client(public_url=PUBLIC_URL)
    dream = published.jobs["dream"]
    tags = await meta_tags(client, f"/results/{dream}")
    assert tags["og:title"] == tags["twitter:title"] == f"dream #{dream}"
    assert tags["og:description"] == tags["twitter:description"] == "?dream layer:block13 strength:2.0 octaves:7 seed:7"
    assert tags["og:url"] == f"{PUBLIC_URL}/results/{dream}" and tags["og:type"] == "website"
    assert tags["og:image"] == tags["og:image:secure_url"] == tags["twitter:image"] == f"{PUBLIC_URL}/results/{dream}/file"
    assert (tags["og:image:type"], tags["og:image:width"], tags["og:image:height"]) == ("image/png", "144", "96")
    assert tags["twitter:card"] == "summary_large_image"
    # The picture named is the one the page serves.
    file = await client.get(f"/results/{dream}/file")
    assert file.status == 200 and file.headers["Content-Type"] == tags["og:image:type"]


async def test_an_animation_unfurls_as_an_image_and_a_video_as_a_video(make_client, published, photo_path):
    from tests.clip_making import encode_video, pan_and_zoom

    client = await make_client(public_url="http://gallery.lan:8080")
    zoom = published.jobs["zoom"]
    tags = await meta_tags(client, f"/results/{zoom}")
    assert (tags["og:image"], tags["og:image:type"]) == (f"http://gallery.lan:8080/results/{zoom}/file", "image/gif")
    assert (tags["og:image:width"], tags["og:image:height"]) == ("96", "96")
    assert "og:image:secure_url" not in tags, "only an https address is a secure one"
    clip = encode_video(pan_and_zoom(photo_path("chelsea.png"), frames=6, size=(64, 48)))
    job = await published.publish("clip", "dream", {}, clip, "mp4", images=(clip,))
    tags = await meta_tags(client, f"/results/{job}")
    assert tags["og:type"] == "video.other" and tags["twitter:card"] == "summary"
    assert (tags["og:video"], tags["og:video:type"]) == (f"http://gallery.lan:8080/results/{job}/file", "video/mp4")
    assert (tags["og:video:width"], tags["og:video:height"]) == ("64", "48")
    assert not any(key.startswith("og:image") for key in tags), "no picture named that is not one"


async def test_without_a_public_url_or_a_file_no_picture_is_named(make_client, published):
    dream = published.jobs["dream"]
    tags = await meta_tags(await make_client(), f"/results/{dream}")
    assert tags["og:title"] == f"dream #{dream}" and tags["twitter:card"] == "summary"
    assert not {"og:url", "og:image", "twitter:image"} & set(tags), "relative addresses do not unfurl"
    # An expired result (its file deleted after the retention period) names none either.
    async with published.store.database.writing() as session:
        await session.execute(update(Job).where(Job.id == dream).values(result_removed="expired"))
    tags = await meta_tags(await make_client(public_url=PUBLIC_URL), f"/results/{dream}")
    assert tags["og:url"] == f"{PUBLIC_URL}/results/{dream}" and tags["twitter:card"] == "summary"
    assert not any(key.startswith(("og:image", "og:video", "twitter:image")) for key in tags)


async def test_pages_name_the_server_and_show_its_icon_once_the_bot_has_seen_it(make_client, published):
    client = await make_client(public_url=PUBLIC_URL)
    dream = published.jobs["dream"]
    unseen = await (await client.get(f"/servers/{PUBLIC}")).text()
    assert f"<title>Server {PUBLIC}: recent dreams</title>" in unseen and 'class="icon"' not in unseen
    icon = f"https://cdn.discordapp.com/icons/{PUBLIC}/0123456789abcdef0123456789abcdef.png?size=128"
    await published.store.guilds.change(PUBLIC, name="Dream <Team>", icon_url=icon)
    response = await client.get(f"/servers/{PUBLIC}")
    gallery = await response.text()
    assert "<title>Dream &lt;Team&gt;: recent dreams</title>" in gallery and "Dreams of Dream &lt;Team&gt;</h1>" in gallery
    assert f'<img class="icon" src="{icon}"' in gallery
    assert "img-src 'self' https://cdn.discordapp.com;" in response.headers["Content-Security-Policy"], "the icon may load"
    page = await (await client.get(f"/results/{dream}")).text()
    assert "← the gallery of Dream &lt;Team&gt;</a>" in page
    tags = await meta_tags(client, f"/results/{dream}")
    assert tags["og:title"] == f"dream #{dream} on Dream <Team>"
