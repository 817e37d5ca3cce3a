-- Each app's access_token, owned by the service: fetched from WeChat's stable_token by one
-- replica at a time (under an advisory lock keyed by the appid) and read by all. The token is
-- sealed like the session_keys; its SHA-256 lets a replica that saw WeChat refuse it expire it
-- only if it is still the stored one (compare-and-expire). The last refresh attempt and its
-- outcome are kept for operators; the token itself never leaves the service.
create table app_access_tokens (
    appid           text        primary key,
    token_kid       text,
    token_nonce     bytea,
    token_sealed    bytea,
    token_digest    bytea,
    expires_at      timestamptz,
    fetched_at      timestamptz,
    refreshes       bigint      not null default 0,
    last_attempt_at timestamptz,
    last_outcome    text
);

-- The latest session_key WeChat gave for each user of each app, sealed and bound to
-- (appid, openid), so it can be checked with WeChat (checksession) or replaced (reset) after
-- the login session that brought it is over. Written with every code exchange; purged once
-- the user has not logged in for 30 days.
create table user_session_keys (
    appid              text        not null,
    openid             text        not null,
    session_key_kid    text        not null,
    session_key_nonce  bytea       not null,
    session_key_sealed bytea       not null,
    obtained_at        timestamptz not null default now(),
    primary key (appid, openid)
);
create index user_session_keys_age on user_session_keys (obtained_at);
