"""The configured projects as ingestion sees them: write key, Plausible domain or Sentry id → project."""

from __future__ import annotations

from dataclasses import dataclass

from obsd.privacy.origins import OriginPolicy
from obsd.settings import ProjectSettings
from obsd.vocabulary import site_domain


@dataclass(frozen=True, slots=True)
class Project:
    """A configured project with its compiled origin policy."""

    id: str
    write_key: str
    origins: OriginPolicy
    sentry_id: int = 0


class Projects:
    """Write keys, domains and Sentry ids → projects; replaced whole on reload."""

    def __init__(self, projects: tuple[ProjectSettings, ...]) -> None:
        self.by_key: dict[str, Project] = {}
        self.by_domain: dict[str, Project] = {}
        self.by_sentry_id: dict[int, Project] = {}
        for p in projects:
            project = Project(p.id, p.write_key, OriginPolicy(p.allowed_origins), p.sentry_id)
            self.by_key[p.write_key] = project
            for d in p.domains:
                domain = site_domain(d)
                if domain:  # settings validation refused the others
                    self.by_domain[domain] = project
            if p.sentry_id:
                self.by_sentry_id[p.sentry_id] = project
        self.any_origin = OriginPolicy(tuple(o for p in projects for o in p.allowed_origins))
