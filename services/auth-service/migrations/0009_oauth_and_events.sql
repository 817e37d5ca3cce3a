-- OAuth scopes, webhook events, and the replicas alive. Additive: every column is nullable or has a default, and
-- the new tables are read and written by this release only.

-- The scopes a login granted (space-separated); a refresh grants them again, never more.
-- Null: a family of a release before scopes, which had every scope.
alter table token_families add column scope text;

-- The outbox of webhook events: one row per event and subscription (WXAUTH_WEBHOOKS, whose
-- URLs and secrets stay in the settings), written by the statement or transaction of the
-- change itself, delivered by whichever replica claims it first.
create table webhook_events (
    event_id        bigint      generated always as identity primary key,
    subscription    text        not null,
    appid           text        not null,
    user_id         bigint,
    kind            text        not null,
    -- The body as delivered: JSON, without a secret, a token or (unless the subscription
    -- has pii) a full phone number.
    payload         text        not null,
    created_at      timestamptz not null,
    -- Retries stop (the event is dead) once this is further back than the retry window;
    -- a replay starts the window again.
    window_start    timestamptz not null,
    -- pending, delivered or dead (its last attempt failed; ReplayEvents sends it again).
    state           text        not null default 'pending',
    attempts        integer     not null default 0,
    next_attempt_at timestamptz not null,
    -- A replica delivering it holds it until then; past it, another may.
    claimed_until   timestamptz,
    last_outcome    text,
    delivered_at    timestamptz
);
-- What is due, and the oldest pending event of each user (per-user order).
create index webhook_events_pending on webhook_events (subscription, user_id, event_id)
    where state = 'pending';
create index webhook_events_backlog on webhook_events (created_at) where state = 'pending';
-- A user's events, which an erasure drops with the user.
create index webhook_events_user on webhook_events (user_id);
-- What the purge drops once its retention has passed.
create index webhook_events_settled on webhook_events (created_at) where state <> 'pending';

-- Each replica's heartbeat (every second), so every replica knows how many share the
-- deployment's quotas toward WeChat. A replica gone for a minute is forgotten.
create table service_replicas (
    replica_id text        primary key,
    seen_at    timestamptz not null
);
