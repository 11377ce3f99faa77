-- andon schema for SQLite, version 8 (a file of an older version is upgraded in place by _sqlite.py). Timestamps are unix seconds (REAL).
CREATE TABLE IF NOT EXISTS andon_jobs (
    id                     TEXT PRIMARY KEY,
    kind                   TEXT NOT NULL,
    params                 TEXT NOT NULL,
    status                 TEXT NOT NULL,
    priority               INTEGER NOT NULL DEFAULT 0,
    created_at             REAL NOT NULL,
    available_at           REAL NOT NULL,
    attempt                INTEGER NOT NULL DEFAULT 0,
    failures               INTEGER NOT NULL DEFAULT 0,
    max_attempts           INTEGER NOT NULL DEFAULT 1,
    retry_backoff_s        REAL NOT NULL DEFAULT 0,
    timeout_s              REAL,
    started_at             REAL,
    finished_at            REAL,
    worker_id              TEXT,
    lease_expires_at       REAL,                -- wall clock, for people
    lease_deadline         REAL,                -- CLOCK_BOOTTIME: what expiry is judged on
    progress_done          REAL,
    progress_total         REAL,
    progress_message       TEXT,
    items_count            INTEGER NOT NULL DEFAULT 0,
    events_count           INTEGER NOT NULL DEFAULT 0,
    result                 TEXT,
    error_type             TEXT,
    error_message          TEXT,
    error_traceback        TEXT,
    cancel_requested_at    REAL,
    cancel_reason          TEXT,
    cancel_by              TEXT,
    cancel_message         TEXT,
    cancel_retry           INTEGER,
    cancel_acknowledged_at REAL,
    cancel_stopped_at      REAL,
    cancel_stop_method     TEXT,
    retry_of               TEXT,
    owner                  TEXT,
    checkpoint             TEXT,                -- JSON: the handler's last ctx.checkpoint state
    checkpoint_items       INTEGER,             -- items stored before it
    checkpoint_attempt     INTEGER,
    checkpoint_at          REAL,
    resume                 INTEGER NOT NULL DEFAULT 0,  -- the next attempt starts from the checkpoint
    retry_resume           INTEGER NOT NULL DEFAULT 0,  -- Retry(resume=True) of its kind
    parent_id              TEXT,                -- the job whose handler submitted it (ctx.submit)
    root_id                TEXT,                -- the top of its tree (NULL for a job nobody submitted from a job)
    detached               INTEGER NOT NULL DEFAULT 0,  -- left running when its parent ends
    fail_parent            INTEGER NOT NULL DEFAULT 0,  -- its failure fails its parent (fail fast)
    job_key                TEXT,                -- the business key: one active job per kind and key
    cancel_origin          TEXT,                -- the job whose cancel reached it (a parent's, a superseding job's)
    awaiting_status        TEXT,                -- its own work stopped; it ends so once its descendants have
    schedule_name          TEXT,                -- the schedule whose tick made it
    pruned_at              REAL,                -- its history was pruned: a tombstone
    cancel_grace_s         REAL                 -- the shortest grace its stop's requests asked for (NULL: the kind's)
);
CREATE INDEX IF NOT EXISTS andon_jobs_queue ON andon_jobs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS andon_jobs_held ON andon_jobs (worker_id) WHERE status IN ('running', 'cancelling');
CREATE INDEX IF NOT EXISTS andon_jobs_status ON andon_jobs (status, id);
CREATE INDEX IF NOT EXISTS andon_jobs_kind ON andon_jobs (kind, id);
CREATE INDEX IF NOT EXISTS andon_jobs_owner ON andon_jobs (owner, id);
CREATE INDEX IF NOT EXISTS andon_jobs_due ON andon_jobs (available_at, id) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS andon_jobs_finished ON andon_jobs (finished_at, id)
    WHERE finished_at IS NOT NULL AND pruned_at IS NULL;   -- finished, history kept: what a prune reads
CREATE INDEX IF NOT EXISTS andon_jobs_pruned ON andon_jobs (finished_at, id) WHERE pruned_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS andon_jobs_parent ON andon_jobs (parent_id, id) WHERE parent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS andon_jobs_root ON andon_jobs (root_id, id) WHERE root_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS andon_jobs_key ON andon_jobs (kind, job_key, id)
    WHERE job_key IS NOT NULL AND status IN ('queued', 'running', 'cancelling');
CREATE TABLE IF NOT EXISTS andon_tokens (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    token_hash TEXT NOT NULL UNIQUE,  -- SHA-256 of the token; the token itself is never stored
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS andon_events (
    job_id      TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          REAL NOT NULL,
    type        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    actor       TEXT,
    reason      TEXT,
    message     TEXT,
    attempt     INTEGER NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_items (
    job_id  TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    at      REAL NOT NULL,
    data    TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_paused (
    kind      TEXT PRIMARY KEY,
    paused_at REAL NOT NULL,
    paused_by TEXT,
    message   TEXT
);
CREATE TABLE IF NOT EXISTS andon_idempotency (
    scope        TEXT NOT NULL,                 -- who sent it (a token's name, or '' without tokens)
    key          TEXT NOT NULL,                 -- the Idempotency-Key header
    request_hash TEXT NOT NULL,                 -- SHA-256 of the request body: a key reused for another body is refused
    job_id       TEXT NOT NULL,                 -- the job the first request answered
    created      INTEGER NOT NULL,              -- whether that request created it (HTTP 201, else 200)
    created_at   REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS andon_idempotency_age ON andon_idempotency (created_at);
CREATE TABLE IF NOT EXISTS andon_schedules (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    params      TEXT NOT NULL,                 -- JSON
    cron        TEXT,                          -- a cron expression, or NULL with every_s
    every_s     REAL,                          -- a fixed interval in seconds, or NULL with cron
    timezone    TEXT NOT NULL DEFAULT 'UTC',
    overlap     TEXT NOT NULL DEFAULT 'skip',  -- skip | queue | supersede
    catch_up    TEXT NOT NULL DEFAULT 'latest',-- latest | all | none
    priority    INTEGER NOT NULL DEFAULT 0,
    timeout_s   REAL,
    source      TEXT NOT NULL,                 -- app (declared in code) | runtime (added by a person)
    paused_at   REAL,
    paused_by   TEXT,
    next_at     REAL,                          -- the next tick (unix seconds), NULL while paused
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS andon_ticks (
    schedule    TEXT NOT NULL,
    tick_at     REAL NOT NULL,                 -- the tick's time by its schedule
    at          REAL NOT NULL,                 -- when it was handled
    outcome     TEXT NOT NULL,                 -- enqueued | skipped | queued | superseded | missed | triggered
    job_id      TEXT,
    by          TEXT,                          -- the scheduler (worker id) or person
    message     TEXT,
    PRIMARY KEY (schedule, tick_at)            -- each tick is handled once, whoever leads
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_leases (
    name        TEXT PRIMARY KEY,              -- 'scheduler'
    holder      TEXT NOT NULL,
    expires_at  REAL NOT NULL,
    since       REAL NOT NULL
);
-- Limits on how many jobs of a kind run at once and start per window (each worker writes
-- its app's as it starts), and the starts of rate-limited kinds within their window.
CREATE TABLE IF NOT EXISTS andon_kind_limits (
    kind        TEXT PRIMARY KEY,
    max_running INTEGER,                       -- running or cancelling at once; NULL: no limit
    rate_starts INTEGER,                       -- starts per rate_s seconds (sliding); NULL: no rate
    rate_s      REAL,
    updated_at  REAL NOT NULL,
    updated_by  TEXT
);
CREATE TABLE IF NOT EXISTS andon_kind_starts (
    kind TEXT NOT NULL,
    at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS andon_kind_starts_at ON andon_kind_starts (kind, at);
CREATE INDEX IF NOT EXISTS andon_jobs_running_kind ON andon_jobs (kind) WHERE status IN ('running', 'cancelling');
-- stop-time statistics: the stops of each kind (GET /api/v1/kinds, andon kinds) are read
-- from this index alone, not from a scan of every job. Its WHERE is the queries' own.
CREATE INDEX IF NOT EXISTS andon_jobs_stopped
    ON andon_jobs (kind, cancel_stop_method, cancel_requested_at, cancel_stopped_at)
    WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn';
-- Dashboard sessions (andon.api._auth): in the store, so every server of it honours them
-- and a restart keeps them. Only a hash of the cookie is kept, never the cookie.
CREATE TABLE IF NOT EXISTS andon_sessions (
    session_hash  TEXT PRIMARY KEY,        -- SHA-256 of the session cookie
    token_hash    TEXT NOT NULL,           -- the stored token it was made from (andon_tokens.token_hash),
                                           -- or '' when made from a server's own token
    own_token_mac TEXT,                    -- made from a server's own token: HMAC-SHA256 of that token keyed by the cookie
    created_at    REAL NOT NULL,
    expires_at    REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS andon_sessions_token ON andon_sessions (token_hash, created_at);
CREATE INDEX IF NOT EXISTS andon_sessions_expiry ON andon_sessions (expires_at);
-- The workers registry (andon._workers): one row per worker process, upserted as it starts
-- and with each lease renewal (its heartbeat), ended when it stops cleanly or is found dead.
-- The jobs a worker runs now are the jobs it holds (andon_jobs_held), never stored here.
CREATE TABLE IF NOT EXISTS andon_workers (
    id             TEXT PRIMARY KEY,
    host           TEXT NOT NULL,              -- socket.gethostname()
    boot_id        TEXT NOT NULL,              -- the kernel's boot id ('unknown' without /proc)
    pid_ns         TEXT NOT NULL,              -- its pid namespace ('unknown' without /proc)
    pid            INTEGER NOT NULL,
    pid_start      INTEGER,                    -- the process's start (ticks after boot): a reused pid differs
    version        TEXT NOT NULL,              -- andon's version
    kinds          TEXT NOT NULL,              -- JSON list of the kinds it claims
    slots          INTEGER NOT NULL,
    lease_s        REAL NOT NULL,
    started_at     REAL NOT NULL,
    heartbeat_at   REAL NOT NULL,              -- wall clock, for people
    heartbeat_base REAL NOT NULL,              -- CLOCK_BOOTTIME (the lease clock): what its age is judged on
    stopped_at     REAL,                       -- when it stopped or was found dead
    ended          TEXT CHECK (ended IN ('stopped', 'dead')),
    end_message    TEXT                        -- for a dead one: which process was found gone
);
CREATE INDEX IF NOT EXISTS andon_workers_live ON andon_workers (host, boot_id, pid_ns) WHERE stopped_at IS NULL;
CREATE TABLE IF NOT EXISTS andon_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- metrics: counters of jobs ended and stop times, per kind, kept by a trigger on andon_jobs in
-- the transaction of every change of status to a terminal one (whichever path ends the job),
-- so a scrape reads a few rows instead of the whole history, and pruning never lowers them.
-- The same statements are upgrade_to_8 in queries_sqlite.sql, which also counts the jobs of
-- an older file.
CREATE TABLE IF NOT EXISTS andon_stop_buckets (
    le REAL PRIMARY KEY                        -- upper bounds of the stop-time histogram, seconds (one is +Inf)
);
INSERT OR IGNORE INTO andon_stop_buckets (le) VALUES
    (0.001), (0.0025), (0.005), (0.01), (0.025), (0.05), (0.1), (0.25), (0.5), (1.0), (2.5), (5.0), (10.0),
    (30.0), (60.0), (9e999);
CREATE TABLE IF NOT EXISTS andon_ended_counts (
    kind   TEXT NOT NULL,
    status TEXT NOT NULL,                      -- succeeded | failed | cancelled
    n      INTEGER NOT NULL,                   -- times a job of the kind reached it (a resumed job can twice)
    PRIMARY KEY (kind, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_stop_counts (
    kind    TEXT NOT NULL,
    method  TEXT NOT NULL,                     -- the stop method (withdrawn, cooperative, injected...)
    reason  TEXT NOT NULL,                     -- the cancel reason
    le      REAL NOT NULL,                     -- the smallest bucket bound >= the stop time
    n       INTEGER NOT NULL,
    seconds REAL NOT NULL,                     -- the stop times (cancel_stopped_at - cancel_requested_at) added up
    PRIMARY KEY (kind, method, reason, le)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS andon_jobs_ended AFTER UPDATE OF status ON andon_jobs
WHEN NEW.status IN ('succeeded', 'failed', 'cancelled') AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')
BEGIN
    INSERT INTO andon_ended_counts (kind, status, n) VALUES (NEW.kind, NEW.status, 1)
    ON CONFLICT (kind, status) DO UPDATE SET n = n + 1;
    INSERT INTO andon_stop_counts (kind, method, reason, le, n, seconds)
    SELECT NEW.kind, NEW.cancel_stop_method, COALESCE(NEW.cancel_reason, ''),
           (SELECT min(le) FROM andon_stop_buckets WHERE le >= stop.s), 1, stop.s
    FROM (SELECT MAX(0.0, NEW.cancel_stopped_at - COALESCE(NEW.cancel_requested_at, NEW.cancel_stopped_at)) AS s) AS stop
    WHERE NEW.cancel_stopped_at IS NOT NULL AND NEW.cancel_stop_method IS NOT NULL
    ON CONFLICT (kind, method, reason, le) DO UPDATE SET n = n + 1, seconds = seconds + excluded.seconds;
END;
INSERT OR IGNORE INTO andon_meta (key, value) VALUES ('schema_version', '9');
