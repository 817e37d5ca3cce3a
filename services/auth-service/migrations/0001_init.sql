-- The login state of wxauth. Secrets are never stored in the clear: session ids and tokens
-- as SHA-256 digests (a stolen table cannot be replayed), the WeChat session_key sealed with
-- AES-256-GCM under a key named by its kid (so keys can rotate).

-- Every wx.login() code this service has sent to WeChat. A code is exchanged at most once:
-- a double submit, or a retry after WeChat timed out, is refused here instead of producing
-- WeChat's 40163 or consuming the user's session twice. Rows older than a code's five-minute
-- life are useless and may be purged.
create table used_codes (
    appid      text        not null,
    code_hash  bytea       not null,
    created_at timestamptz not null default now(),
    primary key (appid, code_hash)
);

-- The "3rd_session": what the mini-program holds between wx.login() and sending its
-- encrypted data. WeChat keeps one live session_key per user and app, so a newer session of
-- the same (appid, openid) replaces the older one.
create table login_sessions (
    id_hash            bytea       primary key,
    appid              text        not null,
    openid             text        not null,
    unionid            text,
    session_key_kid    text        not null,
    session_key_nonce  bytea       not null,
    session_key_sealed bytea       not null,
    created_at         timestamptz not null default now(),
    expires_at         timestamptz not null
);
create index login_sessions_user on login_sessions (appid, openid);
create index login_sessions_expiry on login_sessions (expires_at);

-- One row per mini-program user. Profile fields are only ever replaced by real values:
-- WeChat's anonymous placeholder and empty strings never overwrite what is stored.
create table users (
    user_id            bigint generated always as identity primary key,
    appid              text        not null,
    openid             text        not null,
    unionid            text,
    nickname           text,
    avatar_url         text,
    gender             integer,
    language           text,
    city               text,
    province           text,
    country            text,
    phone_number       text,
    pure_phone_number  text,
    phone_country_code text,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    constraint users_appid_openid_key unique (appid, openid)
);
create index users_unionid on users (unionid) where unionid is not null;

-- Bearer tokens issued at the end of a login.
create table tokens (
    token_hash bytea       primary key,
    user_id    bigint      not null references users (user_id) on delete cascade,
    appid      text        not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index tokens_user on tokens (user_id);
create index tokens_expiry on tokens (expires_at);
