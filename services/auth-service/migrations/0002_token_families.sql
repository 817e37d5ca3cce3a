-- Access tokens are now signed JWTs that nothing stores; what is stored is the login they
-- belong to (a session family) and its refresh tokens.
drop table tokens;

-- One row per login. Revoking a family ends every token of that login: its refresh tokens
-- at once (checked here) and its access tokens on every replica within a second (a NOTIFY
-- on channel wxauth_revoked carries the family id to each replica's revocation cache).
create table token_families (
    family_id     bigint generated always as identity primary key,
    user_id       bigint      not null references users (user_id) on delete cascade,
    appid         text        not null,
    created_at    timestamptz not null default now(),
    revoked_at    timestamptz,
    revoke_reason text
);
create index token_families_user on token_families (user_id);
create index token_families_revoked on token_families (revoked_at) where revoked_at is not null;

-- Refresh tokens, stored as SHA-256 digests. Each works once: `used_at` is set when it is
-- traded for a new pair, and presenting it again revokes the family (theft detection).
create table refresh_tokens (
    token_hash bytea       primary key,
    family_id  bigint      not null references token_families (family_id) on delete cascade,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    used_at    timestamptz
);
create index refresh_tokens_family on refresh_tokens (family_id);
create index refresh_tokens_expiry on refresh_tokens (expires_at);
