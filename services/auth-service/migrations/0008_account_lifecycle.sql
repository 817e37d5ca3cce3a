-- The account lifecycle: suspension, deletion (with an optional cooling-off), protected
-- phone numbers and checked nicknames. Every column is added with a default or nullable,
-- so a release before this one keeps working on this schema (it reads the columns it
-- knows).

-- What a user may do: 'active'; 'suspended' (by an operator, until `suspended_until` when
-- set); 'deleting' (the user or an operator asked for deletion during the cooling-off:
-- suspended, and restorable until `delete_after`); 'deleted' (a tombstone: every personal
-- field erased, the id kept so it is never reused).
alter table users
    add column status          text not null default 'active',
    add column status_reason   text,
    add column suspended_until timestamptz,
    add column delete_after    timestamptz,
    add column deleted_at      timestamptz,
    -- A tombstone keeps only a keyed digest of (appid, openid), under key `erased_kid`: the
    -- service can tell a deleted user if asked, a copy of the table cannot.
    add column erased_digest   bytea,
    add column erased_kid      text,
    -- The phone number, sealed like the session_keys (bound to the user), and a keyed digest
    -- of the pure number under `phone_index_kid`, to find a user by number.
    add column phone_kid       text,
    add column phone_nonce     bytea,
    add column phone_sealed    bytea,
    add column phone_index     bytea,
    add column phone_index_kid text,
    -- What WeChat's content check said of the nickname: null (never checked), 'passed',
    -- 'review' (WeChat suggests a human look), 'unchecked' (the check could not be made and
    -- the settings let it through).
    add column nickname_check  text;

-- A tombstone has no openid; the (appid, openid) uniqueness still holds for the others.
alter table users alter column openid drop not null;

create index users_phone_index on users (phone_index) where phone_index is not null;
create index users_nickname on users (appid, nickname text_pattern_ops) where nickname is not null;
create index users_status on users (status) where status <> 'active';
-- The phone numbers still in the clear (written by a release before sealing): the service
-- seals them in the background, a batch at a time, and finds a user by one meanwhile.
create index users_phone_plain on users (pure_phone_number) where phone_number is not null;
