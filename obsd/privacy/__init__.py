"""Privacy building blocks for ingestion: scrubbing, anonymous visitor ids, UA parsing, access limits."""

from obsd.privacy.clientip import ClientIpResolver, normalize_ip
from obsd.privacy.origins import OriginPolicy
from obsd.privacy.ratelimit import TokenBucketLimiter
from obsd.privacy.scrub import UrlScrubber, scrub_props, scrub_text
from obsd.privacy.useragent import UserAgentInfo, parse_user_agent
from obsd.privacy.visitor import VisitorHasher

__all__ = [
    "ClientIpResolver",
    "OriginPolicy",
    "TokenBucketLimiter",
    "UrlScrubber",
    "UserAgentInfo",
    "VisitorHasher",
    "normalize_ip",
    "parse_user_agent",
    "scrub_props",
    "scrub_text",
]
