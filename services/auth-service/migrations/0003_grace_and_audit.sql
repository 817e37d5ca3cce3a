-- Refresh grace: when a refresh token is rotated, its successor is kept here, sealed like a
-- session_key and bound to this row, for a few seconds. A client that lost the answer (or two
-- tabs refreshing at once) presents the old token again and gets the same successor, instead
-- of tripping reuse detection and losing the whole session family.
alter table refresh_tokens
    add column successor_hash  bytea,
    add column successor_kid   text,
    add column successor_nonce bytea,
    add column successor_sealed bytea;

-- The audit trail: who logged in, refreshed, was caught reusing a token, was revoked (and by
-- whom), and which callers were refused. Never a secret: users by id, or by a digest of
-- (appid, openid) when there is no user yet; callers by name; the request id to find the
-- logs. Purged after WXAUTH_AUDIT_RETENTION_SECS.
create table audit_events (
    event_id      bigint generated always as identity primary key,
    at            timestamptz not null default now(),
    kind          text        not null,
    outcome       text        not null,
    appid         text,
    user_id       bigint,
    openid_digest bytea,
    family_id     bigint,
    actor         text,
    client_addr   text,
    request_id    text
);
create index audit_events_user on audit_events (user_id, event_id) where user_id is not null;
-- Append-only by time: a block-range index costs almost nothing to keep and serves the purge.
create index audit_events_at on audit_events using brin (at);

-- Sealed successors are only needed during the grace; the purge clears them soon after.
create index refresh_tokens_successor on refresh_tokens (used_at) where successor_sealed is not null;
