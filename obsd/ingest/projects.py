"""The configured projects as ingestion sees them: write key → project, with compiled origin policies."""

from __future__ import annotations

from dataclasses import dataclass

from obsd.privacy.origins import OriginPolicy
from obsd.settings import ProjectSettings


@dataclass(frozen=True, slots=True)
class Project:
    """A configured project with its compiled origin policy."""

    id: str
    write_key: str
    origins: OriginPolicy


class Projects:
    """Write keys → projects; replaced whole on reload."""

    def __init__(self, projects: tuple[ProjectSettings, ...]) -> None:
        self.by_key = {p.write_key: Project(p.id, p.write_key, OriginPolicy(p.allowed_origins)) for p in projects}
        self.any_origin = OriginPolicy(tuple(o for p in projects for o in p.allowed_origins))
