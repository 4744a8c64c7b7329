"""Privacy and access building blocks: scrubbing, anonymous visitor ids and their salts, user agents,
client IPs, origin allowlists, rate limits and the admin token check.

Leaf modules: they take plain values (never Settings) and import nothing else from obsd except
the HTTP error shape.
"""
