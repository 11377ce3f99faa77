-- The PostgreSQL schema, as numbered migrations (andon db upgrade applies those a schema has
-- not had yet, each with its record in one transaction). Never edit one that shipped: add
-- the next. The text after the number is the name recorded in andon_migrations.

-- migration 1: jobs, events and results
CREATE TABLE andon_jobs (
    id                     text COLLATE "C" PRIMARY KEY,  -- UUIDv7: byte order is age order
    kind                   text NOT NULL,
    params                 text NOT NULL,                 -- JSON, as written
    status                 text NOT NULL CHECK (status IN
                               ('queued', 'running', 'cancelling', 'succeeded', 'failed', 'cancelled')),
    priority               bigint NOT NULL DEFAULT 0,
    created_at             double precision NOT NULL,
    available_at           double precision NOT NULL,
    attempt                integer NOT NULL DEFAULT 0,
    failures               integer NOT NULL DEFAULT 0,
    max_attempts           integer NOT NULL DEFAULT 1,
    retry_backoff_s        double precision NOT NULL DEFAULT 0,
    timeout_s              double precision,
    started_at             double precision,
    finished_at            double precision,
    worker_id              text,
    lease_expires_at       double precision,
    claim_token            text,                          -- tells an ambiguous claim apart
    progress_done          double precision,
    progress_total         double precision,
    progress_message       text,
    items_count            bigint NOT NULL DEFAULT 0,
    events_count           integer NOT NULL DEFAULT 0,
    result                 text,                          -- JSON, as written
    error_type             text,
    error_message          text,
    error_traceback        text,
    cancel_requested_at    double precision,
    cancel_reason          text,
    cancel_by              text,
    cancel_message         text,
    cancel_retry           boolean,
    cancel_acknowledged_at double precision,
    cancel_stopped_at      double precision,
    cancel_stop_method     text,
    retry_of               text
);
-- Partial indexes hold active jobs only: claims, notices, renewals and recovery stay cheap
-- however much history the table keeps.
CREATE INDEX andon_jobs_queue ON andon_jobs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX andon_jobs_held ON andon_jobs (worker_id) WHERE status IN ('running', 'cancelling');
CREATE INDEX andon_jobs_leases ON andon_jobs (lease_expires_at) WHERE status IN ('running', 'cancelling');
CREATE INDEX andon_jobs_status ON andon_jobs (status, id);
CREATE INDEX andon_jobs_kind ON andon_jobs (kind, id);
CREATE TABLE andon_events (
    job_id      text COLLATE "C" NOT NULL,
    seq         integer NOT NULL,
    at          double precision NOT NULL,
    type        text NOT NULL,
    from_status text,
    to_status   text,
    actor       text,
    reason      text,
    message     text,
    attempt     integer NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE andon_items (
    job_id  text COLLATE "C" NOT NULL,
    seq     bigint NOT NULL,
    attempt integer NOT NULL,
    at      double precision NOT NULL,
    data    text NOT NULL,                                 -- JSON, as emitted
    PRIMARY KEY (job_id, seq)
);

-- migration 2: job owners and API tokens
ALTER TABLE andon_jobs ADD COLUMN owner text;
CREATE INDEX andon_jobs_owner ON andon_jobs (owner, id);
CREATE TABLE andon_tokens (
    name       text PRIMARY KEY,
    role       text NOT NULL CHECK (role IN ('admin', 'user')),
    token_hash text NOT NULL UNIQUE,                       -- SHA-256 of the token, never the token
    created_at double precision NOT NULL,
    revoked_at double precision
);

-- migration 3: checkpoints, resume and paused kinds
ALTER TABLE andon_jobs ADD COLUMN checkpoint text;               -- JSON: the last ctx.checkpoint state
ALTER TABLE andon_jobs ADD COLUMN checkpoint_items bigint;       -- items stored before it
ALTER TABLE andon_jobs ADD COLUMN checkpoint_attempt integer;
ALTER TABLE andon_jobs ADD COLUMN checkpoint_at double precision;
ALTER TABLE andon_jobs ADD COLUMN resume boolean NOT NULL DEFAULT false;
ALTER TABLE andon_jobs ADD COLUMN retry_resume boolean NOT NULL DEFAULT false;
CREATE TABLE andon_paused (
    kind      text COLLATE "C" PRIMARY KEY,
    paused_at double precision NOT NULL,
    paused_by text,
    message   text
);

-- migration 4: job trees, keyed jobs and idempotent submits
ALTER TABLE andon_jobs ADD COLUMN parent_id text COLLATE "C";     -- the job whose handler submitted it
ALTER TABLE andon_jobs ADD COLUMN root_id text COLLATE "C";       -- the top of its tree
ALTER TABLE andon_jobs ADD COLUMN detached boolean NOT NULL DEFAULT false;    -- left running when its parent ends
ALTER TABLE andon_jobs ADD COLUMN fail_parent boolean NOT NULL DEFAULT false; -- its failure fails its parent
ALTER TABLE andon_jobs ADD COLUMN job_key text COLLATE "C";       -- one active job per kind and key
ALTER TABLE andon_jobs ADD COLUMN cancel_origin text COLLATE "C"; -- the job whose cancel reached it
ALTER TABLE andon_jobs ADD COLUMN awaiting_status text;           -- stopped; ends so once its descendants have
CREATE INDEX andon_jobs_parent ON andon_jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX andon_jobs_root ON andon_jobs (root_id, id) WHERE root_id IS NOT NULL;
CREATE INDEX andon_jobs_key ON andon_jobs (kind, job_key, id)
    WHERE job_key IS NOT NULL AND status IN ('queued', 'running', 'cancelling');
CREATE TABLE andon_idempotency (
    scope        text COLLATE "C" NOT NULL,   -- who sent it (a token's name, or '' without tokens)
    key          text COLLATE "C" NOT NULL,   -- the Idempotency-Key header
    request_hash text NOT NULL,               -- SHA-256 of the request body
    job_id       text COLLATE "C" NOT NULL,   -- the job the first request answered
    created      boolean NOT NULL,            -- whether that request created it (HTTP 201, else 200)
    created_at   double precision NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX andon_idempotency_age ON andon_idempotency (created_at);

-- migration 5: scheduled and periodic jobs, the scheduler's lease, and pruned history
ALTER TABLE andon_jobs ADD COLUMN schedule_name text COLLATE "C";  -- the schedule whose tick made it
ALTER TABLE andon_jobs ADD COLUMN pruned_at double precision;      -- its history was pruned: a tombstone
CREATE INDEX andon_jobs_due ON andon_jobs (available_at, id) WHERE status = 'queued';
-- Finished jobs whose history is kept (what a prune reads), and tombstones (what a purge
-- also reads): a repeated prune does not walk the tombstones it left before.
CREATE INDEX andon_jobs_finished ON andon_jobs (finished_at, id) WHERE finished_at IS NOT NULL AND pruned_at IS NULL;
CREATE INDEX andon_jobs_pruned ON andon_jobs (finished_at, id) WHERE pruned_at IS NOT NULL;
CREATE TABLE andon_schedules (
    name        text COLLATE "C" PRIMARY KEY,
    kind        text COLLATE "C" NOT NULL,
    params      text NOT NULL,                     -- JSON
    cron        text,                              -- a cron expression, or NULL with every_s
    every_s     double precision,                  -- a fixed interval in seconds, or NULL with cron
    timezone    text NOT NULL DEFAULT 'UTC',
    overlap     text NOT NULL DEFAULT 'skip',      -- skip | queue | supersede
    catch_up    text NOT NULL DEFAULT 'latest',    -- latest | all | none
    priority    integer NOT NULL DEFAULT 0,
    timeout_s   double precision,
    source      text NOT NULL,                     -- app (declared in code) | runtime (added by a person)
    paused_at   double precision,
    paused_by   text,
    next_at     double precision,                  -- the next tick (unix seconds), NULL while paused
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL
);
CREATE TABLE andon_ticks (
    schedule    text COLLATE "C" NOT NULL,
    tick_at     double precision NOT NULL,         -- the tick's time by its schedule
    at          double precision NOT NULL,         -- when it was handled
    outcome     text NOT NULL,                     -- enqueued | skipped | queued | superseded | missed | triggered
    job_id      text COLLATE "C",
    by          text,                              -- the scheduler (worker id) or person
    message     text,
    PRIMARY KEY (schedule, tick_at)                -- each tick is handled once, whoever leads
);
CREATE TABLE andon_leases (
    name        text COLLATE "C" PRIMARY KEY,      -- 'scheduler'
    holder      text NOT NULL,
    expires_at  double precision NOT NULL,
    since       double precision NOT NULL
);

-- migration 6: limits on how many jobs of a kind run at once and start per window
-- Each worker writes its app's limits here as it starts; a claim of a limited kind locks
-- the kind's row (FOR UPDATE) before it counts, so claims of one limited kind take turns.
-- kind has the collation of andon_jobs.kind: the counts join on it through the index below.
CREATE TABLE andon_kind_limits (
    kind        text PRIMARY KEY,
    max_running integer,                           -- running or cancelling at once; NULL: no limit
    rate_starts integer,                           -- starts per rate_s seconds (sliding); NULL: no rate
    rate_s      double precision,
    updated_at  double precision NOT NULL,
    updated_by  text
);
-- The starts of rate-limited kinds (each attempt's), kept for one window: a job's
-- started_at is overwritten by its next attempt, so it cannot count a retried job's starts.
CREATE TABLE andon_kind_starts (
    kind text NOT NULL,
    at   double precision NOT NULL
);
CREATE INDEX andon_kind_starts_at ON andon_kind_starts (kind, at);
-- How many of a kind run now, read by each claim of a limited kind: only active rows.
CREATE INDEX andon_jobs_running_kind ON andon_jobs (kind) WHERE status IN ('running', 'cancelling');

-- migration 7: stop-time statistics, dashboard sessions every server honours, the workers registry, metrics counters
-- The stops of each kind (GET /api/v1/kinds, andon kinds) are read from this index alone,
-- not from a scan of every job. Its WHERE is the queries' own.
CREATE INDEX andon_jobs_stopped
    ON andon_jobs (kind, cancel_stop_method, cancel_requested_at, cancel_stopped_at)
    WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn';
-- Dashboard sessions that every server of the store honours.
-- Only a hash of the cookie is kept, never the cookie (andon.api._auth).
CREATE TABLE andon_sessions (
    session_hash  text PRIMARY KEY,          -- SHA-256 of the session cookie
    token_hash    text NOT NULL,             -- the stored token it was made from (andon_tokens.token_hash),
                                             -- or '' when made from a server's own token
    own_token_mac text,                      -- made from a server's own token: HMAC-SHA256 of that token keyed by the cookie
    created_at    double precision NOT NULL,
    expires_at    double precision NOT NULL
);
CREATE INDEX andon_sessions_token ON andon_sessions (token_hash, created_at);
CREATE INDEX andon_sessions_expiry ON andon_sessions (expires_at);
-- The workers registry.
-- One row per worker process, upserted as it starts and with each lease renewal (its
-- heartbeat, on the server's clock like leases), ended when it stops cleanly or is found
-- dead. The jobs a worker runs now are the jobs it holds (andon_jobs_held), never stored here.
CREATE TABLE andon_workers (
    id             text COLLATE "C" PRIMARY KEY,
    host           text NOT NULL,                  -- socket.gethostname()
    boot_id        text NOT NULL,                  -- the kernel's boot id ('unknown' without /proc)
    pid_ns         text NOT NULL,                  -- its pid namespace ('unknown' without /proc)
    pid            integer NOT NULL,
    pid_start      bigint,                         -- the process's start (ticks after boot): a reused pid differs
    version        text NOT NULL,                  -- andon's version
    kinds          text NOT NULL,                  -- JSON list of the kinds it claims
    slots          integer NOT NULL,
    lease_s        double precision NOT NULL,
    started_at     double precision NOT NULL,
    heartbeat_at   double precision NOT NULL,      -- the worker's wall clock, for people
    heartbeat_base double precision NOT NULL,      -- the server's clock (as leases): what its age is judged on
    stopped_at     double precision,               -- when it stopped or was found dead
    ended          text CHECK (ended IN ('stopped', 'dead')),
    end_message    text                            -- for a dead one: which process was found gone
);
CREATE INDEX andon_workers_live ON andon_workers (host, boot_id, pid_ns) WHERE stopped_at IS NULL;
-- metrics: counters of jobs ended and of stop times per kind, kept by a statement-level
-- trigger on andon_jobs in the transaction of every change of status to a terminal one
-- (whichever path ends the job), so a scrape reads a few rows instead of the whole history,
-- and pruning never lowers them. Each counter is kept in 16 rows (shard: the backend's pid
-- mod 16) that a scrape adds up, so transactions of different connections ending jobs of one
-- kind at once do not wait for each other's commit on one row. The jobs already stored are
-- counted here, after the trigger exists and with writers of andon_jobs held off until this
-- commits, so none is counted twice or missed.
LOCK TABLE andon_jobs IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE andon_stop_buckets (
    le double precision PRIMARY KEY                -- upper bounds of the stop-time histogram, seconds (one is +Inf)
);
INSERT INTO andon_stop_buckets (le) VALUES
    (0.001), (0.0025), (0.005), (0.01), (0.025), (0.05), (0.1), (0.25), (0.5), (1.0), (2.5), (5.0), (10.0),
    (30.0), (60.0), ('Infinity');
CREATE TABLE andon_ended_counts (
    kind   text COLLATE "C" NOT NULL,
    status text NOT NULL,                          -- succeeded | failed | cancelled
    shard  smallint NOT NULL,
    n      bigint NOT NULL,                        -- times a job of the kind reached it (a resumed job can twice)
    PRIMARY KEY (kind, status, shard)
);
CREATE TABLE andon_stop_counts (
    kind    text COLLATE "C" NOT NULL,
    method  text NOT NULL,                         -- the stop method (withdrawn, cooperative, injected...)
    reason  text NOT NULL,                         -- the cancel reason
    le      double precision NOT NULL,             -- the smallest bucket bound >= the stop time
    shard   smallint NOT NULL,
    n       bigint NOT NULL,
    seconds double precision NOT NULL,             -- the stop times (cancel_stopped_at - cancel_requested_at) added up
    PRIMARY KEY (kind, method, reason, le, shard)
);
-- Most statements on andon_jobs end no job (claims, progress, leases): they leave after one
-- look at the rows they changed. The rows are upserted in key order, so two transactions of
-- one shard lock them in the same order.
CREATE FUNCTION andon_count_ends() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('succeeded', 'failed', 'cancelled')) THEN
        RETURN NULL;
    END IF;
    WITH ended AS (
        SELECT n.kind, n.status, n.cancel_stop_method AS method, COALESCE(n.cancel_reason, '') AS reason,
               (n.cancel_stopped_at IS NOT NULL AND n.cancel_stop_method IS NOT NULL) AS stopped, stop.s, b.le,
               (pg_backend_pid() % 16)::smallint AS shard
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        CROSS JOIN LATERAL (SELECT GREATEST(0, n.cancel_stopped_at
                                               - COALESCE(n.cancel_requested_at, n.cancel_stopped_at)) AS s) stop
        CROSS JOIN LATERAL (SELECT min(le) AS le FROM andon_stop_buckets WHERE le >= stop.s) b
        WHERE n.status IN ('succeeded', 'failed', 'cancelled') AND o.status NOT IN ('succeeded', 'failed', 'cancelled')
    ), counted AS (
        INSERT INTO andon_ended_counts AS c (kind, status, shard, n)
        SELECT kind, status, shard, count(*) FROM ended GROUP BY kind, status, shard ORDER BY kind, status
        ON CONFLICT (kind, status, shard) DO UPDATE SET n = c.n + excluded.n
    )
    INSERT INTO andon_stop_counts AS c (kind, method, reason, le, shard, n, seconds)
    SELECT kind, method, reason, le, shard, count(*), sum(s) FROM ended WHERE stopped
    GROUP BY kind, method, reason, le, shard ORDER BY kind, method, reason, le
    ON CONFLICT (kind, method, reason, le, shard) DO UPDATE SET n = c.n + excluded.n, seconds = c.seconds + excluded.seconds;
    RETURN NULL;
END
$$;
-- A statement-level trigger cannot name columns (UPDATE OF status) when it has transition tables.
CREATE TRIGGER andon_jobs_ended AFTER UPDATE ON andon_jobs
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION andon_count_ends();
INSERT INTO andon_ended_counts (kind, status, shard, n)
SELECT kind, status, 0, count(*) FROM andon_jobs WHERE status IN ('succeeded', 'failed', 'cancelled')
GROUP BY kind, status;
INSERT INTO andon_stop_counts (kind, method, reason, le, shard, n, seconds)
SELECT j.kind, j.cancel_stop_method, COALESCE(j.cancel_reason, ''), b.le, 0, count(*), sum(stop.s)
FROM andon_jobs j
CROSS JOIN LATERAL (SELECT GREATEST(0, j.cancel_stopped_at - COALESCE(j.cancel_requested_at, j.cancel_stopped_at)) AS s) stop
CROSS JOIN LATERAL (SELECT min(le) AS le FROM andon_stop_buckets WHERE le >= stop.s) b
WHERE j.status IN ('succeeded', 'failed', 'cancelled') AND j.cancel_stopped_at IS NOT NULL
  AND j.cancel_stop_method IS NOT NULL
GROUP BY 1, 2, 3, 4;

-- migration 8: a stop's own grace, a claim whose plan does not depend on the statistics, signed stop notifications
-- A stop's own grace: the shortest grace its requests asked for (cancel(..., grace=0), --now).
ALTER TABLE andon_jobs ADD COLUMN cancel_grace_s double precision;
-- The claim (queries_postgres.sql "claim" calls it): take the best queued jobs nobody else is
-- taking, start them, and write their events, in one statement. SKIP LOCKED passes over rows
-- another claim (or a cancel) holds. The plan must walk andon_jobs_queue in order and stop at
-- the first rows it can lock. As a plain statement it did so only while the statistics knew
-- the queue: after a burst of submits into a table analyzed while it was quiet, the planner
-- (custom and generic plans alike) fetched the whole queue by a bitmap of andon_jobs_due or
-- a sequential scan and sorted it, for every claim: 65 ms a claim with 100,000 queued, and
-- long-lived connections kept such plans. The function's own settings leave the ordered walk
-- as the only plan (every statement here is an index lookup), planned once per connection.
-- kind COLLATE "C" (equality is the same under any deterministic collation) keeps the kind
-- index out of it. Paused kinds are read once per claim (an InitPlan) and filter the index
-- walk: a NOT EXISTS per row was an anti-join that cost no-op jobs a fifth of their rate. A
-- keyed job waits while another of its kind and key is running, cancelling or queued ahead of
-- it (andon._keys): the OR leaves unkeyed rows at their "job_key IS NULL". Two claims at once
-- cannot both start jobs of one key: each sees the other's first as queued ahead, at least.
-- A claim of kinds of which none is limited (andon_kind_limits) is this one statement; the
-- uncorrelated NOT EXISTS is a one-time filter. If any is limited it claims nothing, and the
-- claim goes the way of the limits (claim_limits and after, _ops/_work.py).
CREATE FUNCTION andon_claim(p_now double precision, p_kinds text[], p_n integer, p_worker text,
                            p_lease_base double precision, p_lease_s double precision, p_token text, p_actor text)
RETURNS SETOF andon_jobs LANGUAGE plpgsql
SET search_path FROM CURRENT
SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH next AS (
        SELECT q.id FROM andon_jobs AS q
        WHERE q.status = 'queued' AND q.available_at <= p_now AND q.kind COLLATE "C" = ANY(p_kinds)
          AND q.kind COLLATE "C" <> ALL (ARRAY(SELECT paused.kind FROM andon_paused AS paused))
          AND (q.job_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM andon_jobs AS other
              WHERE other.kind = q.kind AND other.job_key = q.job_key
                AND other.status IN ('queued', 'running', 'cancelling')
                AND (other.status <> 'queued' OR other.id < q.id)))
          AND NOT EXISTS (SELECT FROM andon_kind_limits AS limited WHERE limited.kind = ANY(p_kinds))
        ORDER BY q.priority DESC, q.id
        LIMIT p_n
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE andon_jobs AS job SET status = 'running', attempt = job.attempt + 1, started_at = p_now,
            worker_id = p_worker,
            lease_expires_at = COALESCE(p_lease_base, extract(epoch FROM clock_timestamp())) + p_lease_s,
            claim_token = p_token, events_count = job.events_count + 1,
            progress_done = NULL, progress_total = NULL, progress_message = NULL
        FROM next
        WHERE job.id = next.id
        RETURNING job.*
    ), started AS (
        INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
        SELECT c.id, c.events_count, p_now, 'started', 'queued', 'running', p_actor, NULL, NULL, c.attempt
        FROM claimed AS c
    )
    SELECT * FROM claimed;
END
$$;
-- Cancel delivery: the key that signs the stops a notification names (``_pg_listener.py``).
-- Anyone who may connect to the database may NOTIFY on any channel; only a role that can read
-- this table can name a stop a worker acts on before it reads the store.
CREATE TABLE andon_notify_key (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    key      text NOT NULL
);
INSERT INTO andon_notify_key (key) VALUES (replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
