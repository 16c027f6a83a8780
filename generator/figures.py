"""What the theme gets for each picture: its web files, its settings, its source link.

Made lazily (most pages of a rebuild are not rendered); ``Figures.digest`` names what
a post's figures are made from, so an unchanged page is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .errors import GenimgError, Location
from .hashing import digest
from .images import WebImage, placeholder, placeholder_uri, stem_for
from .modes import MODES

if TYPE_CHECKING:
    from .cache import Brief, Cache
    from .content import Post
    from .plan import Plan
    from .specs import ImageSpec


def web_image(plan: Plan, key: str, brief: Brief, original: str = "png") -> WebImage:
    """Name a picture after the generation it comes from (a restoration has no prompt).

    Memoised in the plan, so each build makes one WebImage per picture.
    """
    web = plan.webs.get(key)
    if web is None or (web.width, web.height, web.original) != (brief.width, brief.height,
                                                                 original):
        origin = plan.nodes[key]
        while not MODES[origin.spec.mode].generates and origin.parent:
            origin = plan.nodes[origin.parent]
        if MODES[origin.spec.mode].generates:
            stem = stem_for(key, origin.spec.seed, origin.spec.prompt)
        else:  # made from a user file
            name = origin.file.stem if origin.file else "image"
            restored = any(MODES[n.spec.mode].restores for n in (plan.nodes[key], origin))
            stem = stem_for(key, None, "", fallback=f"restored-{name}" if restored else name)
        web = plan.webs[key] = WebImage(key, stem, brief.width, brief.height, original)
    return web


def _origin_prompts(plan: Plan, key: str) -> tuple[str, str]:
    """The prompts of the generated picture a restoration comes from ('' for a file)."""
    node = plan.nodes[key]
    while not MODES[node.spec.mode].generates and node.parent:
        node = plan.nodes[node.parent]
    spec = node.spec if MODES[node.spec.mode].generates else None
    return (spec.prompt, spec.negative_prompt) if spec else ("", "")


#: (site path, width, height, label) of the picture a figure can be compared with
Before = tuple[str, int, int, str]


def _web_of(plan: Plan, cache: Cache, key: str, original: str = "png") -> WebImage:
    brief = cache.brief(key)
    if brief is None:
        raise GenimgError(f"cache entry {key[:12]} vanished during the build")
    return web_image(plan, key, brief, original)


class Figures(Mapping[Location, dict[str, Any]]):
    """Template data for each image, made on first use, plus the web images to write
    (``webs``; ``befores``: those only a slider shows; ``cards``: the share card of each
    post's first picture) and the user source files to copy."""

    def __init__(self, posts: list[Post], plan: Plan, cache: Cache, preview: bool,
                 original: str = "png", originals_url: str | None = None):
        self._cache = cache
        self.cards: dict[str, WebImage] = {}
        #: pictures shown only as the "before" of a slider: thumbnails, no PNG
        self.befores: dict[str, WebImage] = {}
        # Keyed as images name their post (a posts_dir outside the blog has no relative path).
        images = [image for post in posts for image in post.images]
        post_of = {image.location.file: post for post in posts for image in post.images}
        self.webs: dict[str, WebImage] = {}
        self.sources: dict[str, Path] = {}
        anchors: dict[str, str] = {}  # image id -> "posts/slug/#img-…"
        for image in images:
            key = plan.shown_key[image.location]
            if image.id:
                post = post_of.get(image.location.file)
                anchors[image.id] = f"{post.url if post else ''}#img-{key[:8]}"
        #: location -> (image, key, web, source url, source label, preview): all a figure
        #: is made from, so their digest stands for the figures of a post
        self._inputs: dict[Location, tuple] = {}
        for image in images:
            key = plan.shown_key[image.location]
            web = self.webs[key] = _web_of(plan, cache, key, original)
            brief = cache.brief(key)
            source_url, source_label = self._source(image, plan, key, anchors)
            shown_preview = preview if brief is None or brief.preview is None else brief.preview
            self._inputs[image.location] = (image, key, web, source_url, source_label,
                                            shown_preview, originals_url,
                                            self._before(plan, key))
        for key in set(self.befores) & set(self.webs):
            del self.befores[key]
        for post in posts:
            if post.images:
                web = self.webs[plan.shown_key[post.images[0].location]]
                self.cards[web.key] = web
        self._made: dict[Location, dict[str, Any]] = {}
        self._digests: dict[Path, str] = {}
        #: what a restoration alone was made from, as its infotext says: (prompt, negative)
        self.origin_prompts = {image.location: _origin_prompts(plan, plan.shown_key[
            image.location]) for image in images if not MODES[image.mode].generates}

    def _before(self, plan: Plan, key: str) -> Before | None:
        """The picture this one was made from, for the compare slider: the unrestored
        picture of a face restoration, the source of an img2img (a figure, or a file)."""
        node = plan.nodes[key]
        label = "Before face restoration" if MODES[node.spec.mode].renderer == "faces" \
            else "Source picture"
        if node.parent:
            web = self.webs.get(node.parent) or self.befores.setdefault(
                node.parent, _web_of(plan, self._cache, node.parent))
            return web.thumb(web.thumb_widths()[0]), web.width, web.height, label
        if node.file is not None:
            from PIL import Image  # a header read, for pictures made from a user file

            name = f"images/source-{node.key[:8]}-{node.file.name}"
            self.sources[name] = node.file
            with Image.open(node.file) as picture:
                return name, picture.width, picture.height, label
        return None

    def _source(self, image: ImageSpec, plan: Plan, key: str, anchors: dict[str, str]
                ) -> tuple[str | None, str | None]:
        """Where the picture's ``from:`` is shown: its figure, or a copy of the user file."""
        if not image.source:
            return None, None
        if image.source in anchors:
            return anchors[image.source], image.source
        node = plan.nodes[key]
        root_node = node if node.file else plan.nodes.get(node.parent or "", node)
        if root_node.file is None:
            return None, None
        # '#' and '?' would end a URL's path: the copy's name has none (the label keeps them)
        safe = root_node.file.name.replace("#", "-").replace("?", "-")
        name = f"images/source-{root_node.key[:8]}-{safe}"
        self.sources[name] = root_node.file
        return name, root_node.file.name

    def __getitem__(self, location: Location) -> dict[str, Any]:
        if location not in self._made:
            inputs = self._inputs[location]
            self._made[location] = completed(figure(*inputs), inputs[0], self._cache)
        return self._made[location]

    def stored(self, post: Post) -> list[dict[str, Any]]:
        """The figures of a post as kept in its build state (``StoredFigures``)."""
        return [figure(*self._inputs[image.location]) for image in post.images]

    def basic(self, location: Location) -> dict[str, Any]:
        """A figure without what needs the cache (infotext, placeholder): the search
        index reads every picture on every build, cheaply."""
        return self._made.get(location) or figure(*self._inputs[location])

    def __iter__(self) -> Iterator[Location]:
        return iter(self._inputs)

    def __len__(self) -> int:
        return len(self._inputs)

    def digest(self, post: Post) -> str:
        """Digest of what the figures of ``post`` are made from (its specs aside)."""
        if post.source not in self._digests:
            self._digests[post.source] = self._digest(post)
        return self._digests[post.source]

    def _digest(self, post: Post) -> str:
        return digest([(key, web.stem, web.width, web.height, url, label, preview, web.original,
                         elsewhere, before)
                       for _, key, web, url, label, preview, elsewhere, before
                       in (self._inputs[image.location] for image in post.images)])


def completed(basic: dict[str, Any], image: ImageSpec, cache: Cache) -> dict[str, Any]:
    """A ``figure`` with what needs the cache, or is costly: the infotext, the
    placeholder, the spec to copy."""
    key = basic["key"]
    basic["infotext"] = str((cache.meta(key) or {}).get("infotext", ""))
    basic["spec_yaml"] = spec_yaml(image)
    basic["placeholder"] = placeholder_uri(placeholder(cache, key), basic["width"],
                                           basic["height"])
    return basic


class StoredFigures(Mapping[Location, dict[str, Any]]):
    """Figures as the last build kept them in each post's state (``Figures.stored``), for
    a build that plans no picture (``patch``): ``stored(post)`` gives a post's list, read
    only for the posts a page shows pictures of."""

    def __init__(self, posts: Mapping[str, Post],
                 stored: Callable[[Post], list[dict[str, Any]]], cache: Cache):
        self._posts = posts  # by the file their images name
        self._stored = stored
        self._cache = cache
        self._made: dict[Location, dict[str, Any]] = {}

    def __getitem__(self, location: Location) -> dict[str, Any]:
        if location not in self._made:
            post = self._posts[location.file]
            index = next((i for i, image in enumerate(post.images)
                          if image.location == location), None)
            if index is None:
                raise KeyError(location)
            basic = dict(self._stored(post)[index])
            basic["thumbs"] = [tuple(pair) for pair in basic["thumbs"]]  # as ``figure`` does
            self._made[location] = completed(basic, post.images[index], self._cache)
        return self._made[location]

    def __iter__(self) -> Iterator[Location]:
        return (image.location for post in self._posts.values() for image in post.images)

    def __len__(self) -> int:
        return sum(len(post.images) for post in self._posts.values())


#: libyaml's safe dumper where PyYAML has it: ten times as fast as the Python one
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def spec_yaml(image: ImageSpec) -> str:
    """The spec as a gallery block item a writer can paste (``- prompt: …``)."""
    return yaml.dump([image.as_yaml_dict()], Dumper=_DUMPER, allow_unicode=True,
                     sort_keys=False, width=1000)


def figure(image: ImageSpec, key: str, web: WebImage, source_url: str | None,
           source_label: str | None, preview: bool, originals_url: str | None = None,
           before: Before | None = None) -> dict[str, Any]:
    """What the theme gets for one picture (see ``picture.html``).

    ``full`` is a site path (or None); ``original_url`` the full picture's URL elsewhere
    (``originals: none`` with ``originals_url``); ``large`` what a click opens. The
    infotext, the placeholder and the spec to copy (costly, or needing the cache) are
    added by ``Figures`` for the pages it renders."""
    widths = web.thumb_widths()
    mode = MODES[image.mode]
    elsewhere = (originals_url.rstrip("/") + f"/{web.stem}.png"
                 if originals_url and web.full is None else None)
    return {
        "key": key, "anchor": f"img-{key[:8]}", "full": web.full, "card": web.card,
        "original_url": elsewhere, "original_format": web.original.upper(),
        "large": web.full or web.thumb(widths[-1]),
        "thumbs": [(web.thumb(w), w) for w in widths], "src": web.thumb(widths[0]),
        "width": web.width, "height": web.height,
        "alt": image.alt or image.prompt or image.caption or "picture",
        "caption": image.caption, "prompt": image.prompt,
        "negative_prompt": image.negative_prompt, "seed": image.seed,
        "sampler": image.sampler, "steps": image.steps, "cfg": f"{image.cfg:g}",
        "model": image.model, "mode": image.mode, "generated": mode.generates,
        "strength": f"{image.strength:g}" if "strength" in mode.key_fields else None,
        "face_restored": image.restore_faces or mode.renderer == "faces",
        "face_weight": f"{image.face_weight:g}",
        "source_url": source_url, "source_label": source_label,
        "preview": preview,
        "before": None if before is None else dict(zip(("src", "width", "height", "label"),
                                                        before, strict=True)),
        "infotext": "", "placeholder": "", "spec_yaml": "",
    }
