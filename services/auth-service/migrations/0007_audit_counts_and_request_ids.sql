-- The audit trail misses nothing, and a flood cannot fill it.
--
-- Refusals (a refused login, refresh, phone bind or caller key) and operators' reads of
-- user data are audited like changes, but each replica folds those of one minute that share
-- everything but their time (kind, outcome, app, user, caller, client address) into one
-- row, and `count` says how many it stands for. A change is always one row of its own,
-- written in the transaction of the change (count 1).
--
-- `request_id` is the id the service gave the call, the one its logs carry;
-- `client_request_id` is the id the caller sent (the gateway's, which a mini-program may
-- have chosen), kept apart because a client can write anything there.
--
-- `account_id` names the account an operator read or changed as a whole.
alter table audit_events
    add column count             bigint  not null default 1,
    add column client_request_id text,
    add column account_id        bigint;

-- Listing by kind across users (every refused caller of the last hour, say).
create index audit_events_kind on audit_events (kind, event_id);
