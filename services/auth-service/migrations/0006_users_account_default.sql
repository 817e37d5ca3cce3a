-- A release from before migration 5 writes users without an account id. So that such a
-- release can still run on this schema (a rollback, or one of its replicas restarting in the
-- middle of a rollout), a user written without one gets an account of their own from the
-- accounts' sequence, as this release gives a user without a unionid. Their next login
-- through a newer release joins the account of their unionid, if there is one. This release
-- always writes the account id itself.
do $$
begin
    execute format(
        'alter table users alter column account_id set default nextval(%L::regclass)',
        pg_get_serial_sequence('accounts', 'account_id')
    );
end
$$;
