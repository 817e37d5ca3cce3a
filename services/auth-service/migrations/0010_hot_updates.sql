-- A returning login rewrites its user's row and kept session_key. With room left on each
-- page, PostgreSQL writes the new version beside the old one (a HOT update) and adds nothing
-- to any index, provided no indexed column changed: on a large database that is most of a
-- login's random page writes and their full-page images in the WAL. Pages written from now
-- on keep a fifth free; pages already full get the room as they are rewritten (or at once
-- with VACUUM FULL or pg_repack, see docs/operations.md).
alter table users set (fillfactor = 80);
alter table user_session_keys set (fillfactor = 80);

-- obtained_at changes on every login, so an index on it made every such update touch two
-- indexes; the purge now walks the table by its key instead (store/upkeep.rs).
drop index if exists user_session_keys_age;

-- A key rotation finds the rows sealed under a retired key through these, not by reading
-- every row; the kid does not change on a login, so they keep its updates HOT.
create index if not exists user_session_keys_kid on user_session_keys (session_key_kid);
create index if not exists users_phone_kid on users (phone_kid) where phone_kid is not null;
