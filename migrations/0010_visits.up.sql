-- Visits: Plausible-style visit metrics (bounce rate, visit duration, entry and exit pages, sources,
-- channels, campaigns, locations) from one row per visit, kept current at insert like the rollups.
-- The measurements behind each choice are in docs/performance.md ("Visits").
--
-- 1. New event columns, filled by the ingest encoder (obsd/ingest/enrich.py):
--    source         Plausible's "source": utm_source / source / ref of the landing URL (known aliases
--                   mapped: ig → Instagram), else the referrer's known name (google.* → Google), else its
--                   host without www.; '' for direct traffic and for navigation inside the site
--    channel        direct | search | social | email | paid | referral (obsd/ingest/channels.py);
--                   '' on pageviews whose referrer is the site itself and on other event types
--    session_start  when the visit began (the SDK's envelope field, clamped by the server to the day
--                   before the envelope's first event; the first event itself for older SDKs and other
--                   protocols): every event of a visit carries the same value, so the visit keeps one key
--                   in `visits` even across midnight. Rows stored before this migration: their own time
--    is_entry       true on the first pageview of a visit (the SDK's `entry` flag; for older SDKs the first
--                   pageview of a session the daemon has not seen for 30 minutes)
--    sid            the session id hashed to 64 bits, computed at insert: the visit key of `visits` and of
--                   every semi-join and funnel (hashing strings per query cost 1.5x, docs/performance.md)
ALTER TABLE {{db}}.events {{on_cluster}}
    ADD COLUMN IF NOT EXISTS source        LowCardinality(String) AFTER utm_term,
    ADD COLUMN IF NOT EXISTS channel       LowCardinality(String) AFTER source,
    ADD COLUMN IF NOT EXISTS session_start DateTime('UTC') DEFAULT toDateTime(ts, 'UTC') AFTER session_id,
    ADD COLUMN IF NOT EXISTS is_entry      Bool AFTER type,
    ADD COLUMN IF NOT EXISTS sid           UInt64 MATERIALIZED cityHash64(session_id) AFTER session_id;

-- 2. `path` becomes LowCardinality: page filters, goals and funnel steps are then evaluated once per
--    distinct path instead of once per row (a page-filtered semi-join went from 584 to 359 ms of CPU at
--    10M events), and the column shrinks. On a store holding events this rewrites the column (a
--    mutation; the migration waits for it: seconds per 10M rows). Its ZSTD codec stays.
ALTER TABLE {{db}}.events {{on_cluster}} MODIFY COLUMN path LowCardinality(String)
SETTINGS mutations_sync = 2;

-- In cluster mode events_all is made again with the new columns, sharded by session instead of rand():
-- a visit's events, and so its partial `visits` rows, must meet on one shard for FINAL to merge them.
{{redistributed:events:cityHash64(session_id)}};

-- 3. One row per visit. Every column is a SimpleAggregateFunction over plain values, so a merged row *is*
--    the visit and reports read it with FINAL (no GROUP BY session, no -Merge states). A visit's events
--    arrive over several inserts; each insert adds a partial row and merges combine them: min/max/sum
--    are associative; the entry attributes are written by the entry pageview only ('' on every other
--    row), so max() keeps exactly that value; the exit page is max((time, path)) over pageviews, an
--    argMax without an aggregate state. Keyed by the day the visit started and the session hash.
CREATE TABLE IF NOT EXISTS {{db}}.visits {{on_cluster}}
(
    project_id   LowCardinality(String),
    day          Date,
    sid          UInt64,
    start        SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    end          SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    pageviews    SimpleAggregateFunction(sum, UInt64),
    customs      SimpleAggregateFunction(sum, UInt64),
    events       SimpleAggregateFunction(sum, UInt64),
    errors       SimpleAggregateFunction(sum, UInt64),
    entry_page   SimpleAggregateFunction(max, LowCardinality(String)),
    hostname     SimpleAggregateFunction(max, LowCardinality(String)),
    source       SimpleAggregateFunction(max, LowCardinality(String)),
    channel      SimpleAggregateFunction(max, LowCardinality(String)),
    referrer     SimpleAggregateFunction(max, LowCardinality(String)),
    utm_source   SimpleAggregateFunction(max, LowCardinality(String)),
    utm_medium   SimpleAggregateFunction(max, LowCardinality(String)),
    utm_campaign SimpleAggregateFunction(max, LowCardinality(String)),
    utm_content  SimpleAggregateFunction(max, LowCardinality(String)),
    utm_term     SimpleAggregateFunction(max, LowCardinality(String)),
    exit         SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String)),
    visitor_id   SimpleAggregateFunction(any, UInt64),
    country      SimpleAggregateFunction(any, LowCardinality(String)),
    region       SimpleAggregateFunction(any, LowCardinality(String)),
    city         SimpleAggregateFunction(any, LowCardinality(String)),
    device_type  SimpleAggregateFunction(any, LowCardinality(String)),
    browser      SimpleAggregateFunction(any, LowCardinality(String)),
    os           SimpleAggregateFunction(any, LowCardinality(String)),
    release      SimpleAggregateFunction(any, LowCardinality(String)),
    environment  SimpleAggregateFunction(any, LowCardinality(String))
)
ENGINE = {{engine:AggregatingMergeTree}}
-- By day, not month: a finished day soon merges into one part, and with
-- do_not_merge_across_partitions_select_final = 1 a FINAL read merges only the days that still have
-- several parts (today, yesterday): 1.1-1.5x a fully merged read, against up to 3.4x for a month
-- partition holding several large parts. An INSERT touching more than 100 days needs
-- max_partitions_per_insert_block raised (the backfill below does; the writer splits such batches).
PARTITION BY day
ORDER BY (project_id, day, sid)
-- Background merges leave a few small parts per day alone indefinitely, and FINAL over 4-5 parts per day
-- costs 2.5-3.5x one part. These two settings merge a whole day into one part once all its parts are an
-- hour old, i.e. about an hour after the day's last event; no maintenance job is needed.
SETTINGS non_replicated_deduplication_window = 10000, replicated_deduplication_window = 10000,
         min_age_to_force_merge_seconds = 3600, min_age_to_force_merge_on_partition_only = 1;

{{distributed:visits:sid}};

-- Bots and Sentry's session bookkeeping rows are not visits; rows without a session cannot be one.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.visits_mv {{on_cluster}} TO {{db}}.visits AS
SELECT project_id, toDate(session_start) AS day, sid,
       min(ts) AS start, max(ts) AS end,
       countIf(type = 'pageview') AS pageviews, countIf(type = 'custom') AS customs,
       count() AS events, countIf(type = 'error') AS errors,
       max(if(is_entry, path, '')) AS entry_page, max(if(is_entry, hostname, '')) AS hostname,
       max(if(is_entry, source, '')) AS source, max(if(is_entry, channel, '')) AS channel,
       max(if(is_entry, referrer_host, '')) AS referrer, max(if(is_entry, utm_source, '')) AS utm_source,
       max(if(is_entry, utm_medium, '')) AS utm_medium, max(if(is_entry, utm_campaign, '')) AS utm_campaign,
       max(if(is_entry, utm_content, '')) AS utm_content, max(if(is_entry, utm_term, '')) AS utm_term,
       max(if(type = 'pageview', (ts, toString(path)), (toDateTime64(0, 3, 'UTC'), ''))) AS exit,
       any(visitor_id) AS visitor_id, any(country) AS country, any(region) AS region, any(city) AS city,
       any(device_type) AS device_type, any(browser) AS browser, any(os) AS os, any(release) AS release,
       any(environment) AS environment
FROM {{db}}.events WHERE NOT is_bot AND session_id != '' AND type != 'session'
GROUP BY project_id, day, sid;

-- 4. Backfill from the events stored before this migration (none on a fresh store). Their session_start
--    is their own time (a visit that crossed midnight before the upgrade stays two visits) and they have
--    no is_entry, source or channel: a visit takes its first pageview's page, host, referrer and UTM tags
--    (argMin), and its source and channel are derived here from those, by the rules the encoder uses
--    (without the click ids and `ref` parameters, which the URL scrubber dropped before storing).
INSERT INTO {{all:visits}}
SELECT project_id, day, sid, start, end, pageviews, customs, events, errors, entry_page, entry_host AS hostname,
       source_ AS source,
       -- source_ and channel: obsd/ingest/channels.py sql_source() and sql_channel() as of this release
       multiIf(match(lower(utm_medium), '^(.*cp.*|ppc|retargeting|paid.*)$') OR has(['banner', 'cpm', 'display', 'expandable', 'interstitial'], lower(utm_medium)) OR has(['adwords', 'facebook-ads', 'facebook_ad', 'facebook_ads', 'fb-ads', 'fbads', 'gads', 'google-ads', 'google_ads', 'googleads', 'linkedin_ads', 'reddit-ads', 'tiktokads', 'twitter-ads', 'yt-ads'], lower(utm_source)) OR '' != '', 'paid', has(['Gmail', 'Outlook', 'Yahoo! Mail'], source_) OR match(lower(utm_source), 'e[-_ ]?mail|newsletter') OR match(lower(utm_medium), 'e[-_ ]?mail|newsletter'), 'email', has(['Baidu', 'Bing', 'Brave', 'DuckDuckGo', 'Ecosia', 'Google', 'Naver', 'Qwant', 'Seznam', 'Startpage', 'Yahoo!', 'Yandex'], source_) OR lower(utm_medium) IN ('organic', 'search'), 'search', has(['Bluesky', 'Discord', 'Facebook', 'GitHub', 'Hacker News', 'Instagram', 'LinkedIn', 'Mastodon', 'Medium', 'Pinterest', 'Product Hunt', 'Reddit', 'Slack', 'Stack Overflow', 'Telegram', 'Threads', 'TikTok', 'Twitter', 'VK', 'YouTube'], source_) OR has(['sm', 'social', 'social media', 'social network', 'social-media', 'social-network'], lower(utm_medium)) OR position(lower(utm_medium), 'video') > 0, 'social', source_ != '' OR lower(utm_medium) != '', 'referral', 'direct') AS channel,
       referrer, utm_source, utm_medium, utm_campaign, utm_content, utm_term, exit, visitor_id, country, region,
       city, device_type, browser, os, release, environment
FROM (SELECT *, if(utm_source != '', if(has(['adwords', 'baidu', 'bing', 'bluesky', 'brave', 'chatgpt', 'claude', 'discord', 'duckduckgo', 'ecosia', 'facebook', 'facebook-ads', 'facebook_ad', 'facebook_ads', 'fb', 'fb-ads', 'fbads', 'gads', 'gemini', 'github', 'gmail', 'google', 'google-ads', 'google_ads', 'googleads', 'hacker news', 'hn', 'ig', 'instagram', 'linkedin', 'linkedin_ads', 'mastodon', 'medium', 'naver', 'outlook', 'perplexity', 'pinterest', 'product hunt', 'producthunt', 'qwant', 'reddit', 'reddit-ads', 'seznam', 'slack', 'stack overflow', 'startpage', 'telegram', 'threads', 'tiktok', 'tiktokads', 'twitter', 'twitter-ads', 'vk', 'wikipedia', 'x', 'yahoo!', 'yahoo! mail', 'yandex', 'ycombinator', 'youtube', 'yt', 'yt-ads'], lower(utm_source)), ['Google', 'Baidu', 'Bing', 'Bluesky', 'Brave', 'ChatGPT', 'Claude', 'Discord', 'DuckDuckGo', 'Ecosia', 'Facebook', 'Facebook', 'Facebook', 'Facebook', 'Facebook', 'Facebook', 'Facebook', 'Google', 'Gemini', 'GitHub', 'Gmail', 'Google', 'Google', 'Google', 'Google', 'Hacker News', 'Hacker News', 'Instagram', 'Instagram', 'LinkedIn', 'LinkedIn', 'Mastodon', 'Medium', 'Naver', 'Outlook', 'Perplexity', 'Pinterest', 'Product Hunt', 'Product Hunt', 'Qwant', 'Reddit', 'Reddit', 'Seznam', 'Slack', 'Stack Overflow', 'Startpage', 'Telegram', 'Threads', 'TikTok', 'TikTok', 'Twitter', 'Twitter', 'VK', 'Wikipedia', 'Twitter', 'Yahoo!', 'Yahoo! Mail', 'Yandex', 'Hacker News', 'YouTube', 'YouTube', 'YouTube'][indexOf(['adwords', 'baidu', 'bing', 'bluesky', 'brave', 'chatgpt', 'claude', 'discord', 'duckduckgo', 'ecosia', 'facebook', 'facebook-ads', 'facebook_ad', 'facebook_ads', 'fb', 'fb-ads', 'fbads', 'gads', 'gemini', 'github', 'gmail', 'google', 'google-ads', 'google_ads', 'googleads', 'hacker news', 'hn', 'ig', 'instagram', 'linkedin', 'linkedin_ads', 'mastodon', 'medium', 'naver', 'outlook', 'perplexity', 'pinterest', 'product hunt', 'producthunt', 'qwant', 'reddit', 'reddit-ads', 'seznam', 'slack', 'stack overflow', 'startpage', 'telegram', 'threads', 'tiktok', 'tiktokads', 'twitter', 'twitter-ads', 'vk', 'wikipedia', 'x', 'yahoo!', 'yahoo! mail', 'yandex', 'ycombinator', 'youtube', 'yt', 'yt-ads'], lower(utm_source))], utm_source), if(referrer = '', '', multiIf(has(['android-app://com.google.android.gm', 'android-app://com.reddit.frontpage', 'app.slack.com', 'baidu.com', 'bing.com', 'bsky.app', 'chat.openai.com', 'chatgpt.com', 'claude.ai', 'cn.bing.com', 'discord.com', 'discordapp.com', 'duckduckgo.com', 'ecosia.org', 'facebook.com', 'fb.com', 'fb.me', 'gemini.google.com', 'github.com', 'googleadservices.com', 'instagram.com', 'l.instagram.com', 'linkedin.com', 'lite.qwant.com', 'lnkd.in', 'm.baidu.com', 'm.naver.com', 'm.search.naver.com', 'm.vk.com', 'm.youtube.com', 'mail.google.com', 'mail.yahoo.com', 'mastodon.social', 'medium.com', 'msn.com', 'music.youtube.com', 'naver.com', 'news.ycombinator.com', 'ntp.msn.com', 'outlook.live.com', 'outlook.office.com', 'outlook.office365.com', 'perplexity.ai', 'producthunt.com', 'qwant.com', 'reddit.com', 'search.brave.com', 'search.naver.com', 'search.yahoo.com', 'seznam.cz', 'slack.com', 'stackoverflow.com', 'startpage.com', 't.co', 't.me', 'threads.net', 'tiktok.com', 'twitter.com', 'vk.com', 'web.telegram.org', 'x.com', 'ya.ru', 'yahoo.co.jp', 'yahoo.com', 'youtu.be', 'youtube.com'], replaceRegexpOne(lower(referrer), '^www\\.', '')), ['Gmail', 'Reddit', 'Slack', 'Baidu', 'Bing', 'Bluesky', 'ChatGPT', 'ChatGPT', 'Claude', 'Bing', 'Discord', 'Discord', 'DuckDuckGo', 'Ecosia', 'Facebook', 'Facebook', 'Facebook', 'Gemini', 'GitHub', 'Google', 'Instagram', 'Instagram', 'LinkedIn', 'Qwant', 'LinkedIn', 'Baidu', 'Naver', 'Naver', 'VK', 'YouTube', 'Gmail', 'Yahoo! Mail', 'Mastodon', 'Medium', 'Bing', 'YouTube', 'Naver', 'Hacker News', 'Bing', 'Outlook', 'Outlook', 'Outlook', 'Perplexity', 'Product Hunt', 'Qwant', 'Reddit', 'Brave', 'Naver', 'Yahoo!', 'Seznam', 'Slack', 'Stack Overflow', 'Startpage', 'Twitter', 'Telegram', 'Threads', 'TikTok', 'Twitter', 'VK', 'Telegram', 'Twitter', 'Yandex', 'Yahoo!', 'Yahoo!', 'YouTube', 'YouTube'][indexOf(['android-app://com.google.android.gm', 'android-app://com.reddit.frontpage', 'app.slack.com', 'baidu.com', 'bing.com', 'bsky.app', 'chat.openai.com', 'chatgpt.com', 'claude.ai', 'cn.bing.com', 'discord.com', 'discordapp.com', 'duckduckgo.com', 'ecosia.org', 'facebook.com', 'fb.com', 'fb.me', 'gemini.google.com', 'github.com', 'googleadservices.com', 'instagram.com', 'l.instagram.com', 'linkedin.com', 'lite.qwant.com', 'lnkd.in', 'm.baidu.com', 'm.naver.com', 'm.search.naver.com', 'm.vk.com', 'm.youtube.com', 'mail.google.com', 'mail.yahoo.com', 'mastodon.social', 'medium.com', 'msn.com', 'music.youtube.com', 'naver.com', 'news.ycombinator.com', 'ntp.msn.com', 'outlook.live.com', 'outlook.office.com', 'outlook.office365.com', 'perplexity.ai', 'producthunt.com', 'qwant.com', 'reddit.com', 'search.brave.com', 'search.naver.com', 'search.yahoo.com', 'seznam.cz', 'slack.com', 'stackoverflow.com', 'startpage.com', 't.co', 't.me', 'threads.net', 'tiktok.com', 'twitter.com', 'vk.com', 'web.telegram.org', 'x.com', 'ya.ru', 'yahoo.co.jp', 'yahoo.com', 'youtu.be', 'youtube.com'], replaceRegexpOne(lower(referrer), '^www\\.', ''))], endsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), '.search.yahoo.com'), 'Yahoo!', endsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), '.facebook.com'), 'Facebook', endsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), '.reddit.com'), 'Reddit', endsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), '.pinterest.com'), 'Pinterest', endsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), '.wikipedia.org'), 'Wikipedia', startsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), 'google.') AND countSubstrings(substring(replaceRegexpOne(lower(referrer), '^www\\.', ''), 8), '.') <= 1, 'Google', startsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), '.google.') AND countSubstrings(substring(replaceRegexpOne(lower(referrer), '^www\\.', ''), 9), '.') <= 1, 'Google', startsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), 'yandex.') AND countSubstrings(substring(replaceRegexpOne(lower(referrer), '^www\\.', ''), 8), '.') <= 1, 'Yandex', startsWith(replaceRegexpOne(lower(referrer), '^www\\.', ''), 'pinterest.') AND countSubstrings(substring(replaceRegexpOne(lower(referrer), '^www\\.', ''), 11), '.') <= 1, 'Pinterest', replaceRegexpOne(lower(referrer), '^www\\.', '')))) AS source_ FROM (
    SELECT project_id, toDate(session_start) AS day, cityHash64(session_id) AS sid,
           min(ts) AS start, max(ts) AS end,
           countIf(type = 'pageview') AS pageviews, countIf(type = 'custom') AS customs,
           count() AS events, countIf(type = 'error') AS errors,
           argMinIf(path, ts, type = 'pageview') AS entry_page, argMinIf(hostname, ts, type = 'pageview') AS entry_host,
           argMinIf(if(referrer_host = hostname, '', referrer_host), ts, type = 'pageview') AS referrer,
           argMinIf(utm_source, ts, type = 'pageview') AS utm_source,
           argMinIf(utm_medium, ts, type = 'pageview') AS utm_medium,
           argMinIf(utm_campaign, ts, type = 'pageview') AS utm_campaign,
           argMinIf(utm_content, ts, type = 'pageview') AS utm_content,
           argMinIf(utm_term, ts, type = 'pageview') AS utm_term,
           max(if(type = 'pageview', (ts, toString(path)), (toDateTime64(0, 3, 'UTC'), ''))) AS exit,
           any(visitor_id) AS visitor_id, any(country) AS country, any(region) AS region, any(city) AS city,
           any(device_type) AS device_type, any(browser) AS browser, any(os) AS os, any(release) AS release,
           any(environment) AS environment
    FROM {{all:events}} WHERE NOT is_bot AND session_id != '' AND type != 'session'
    GROUP BY project_id, day, sid
))
SETTINGS max_partitions_per_insert_block = 0;
