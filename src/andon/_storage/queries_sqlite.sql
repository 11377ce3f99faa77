-- Every statement of the SQLite store, by name (loaded by andon._storage._sql).
--
-- The same names as queries_postgres.sql, for the same operations of andon._storage._engine.
-- :name are parameters; a {where} is a fixed fragment built by andon._storage._sql. A block
-- may hold several statements, run in order inside the operation's transaction (SQLite has
-- no data-modifying WITH); the last one's rows are the block's result. Writes run under
-- BEGIN IMMEDIATE, so a row read inside one stays as read until it commits.

-- == connections and schema =============================================================

-- name: wal_mode
PRAGMA journal_mode = WAL

-- Checkpoints run in the store's checkpointer thread (_sqlite_watch.py), not in the commit
-- of whichever write happens to push the WAL past SQLite's usual 1,000 pages. The automatic
-- one stays on at a higher mark as a bound: only a writer can start the WAL over, and under
-- steady writes and reads a WAL with no automatic checkpoint grew by ~50 MB a second here.
-- name: connection_settings
PRAGMA synchronous = NORMAL;
PRAGMA wal_autocheckpoint = 4000

-- name: data_version
PRAGMA data_version

-- name: wal_checkpoint
PRAGMA wal_checkpoint(PASSIVE)

-- name: schema_version
SELECT value FROM andon_meta WHERE key = 'schema_version'

-- name: schema_objects
SELECT name FROM sqlite_master

-- 1 -> 2: jobs get an owner (and schema_sqlite.sql then adds the tokens table).
-- name: upgrade_to_2
ALTER TABLE andon_jobs ADD COLUMN owner TEXT;
UPDATE andon_meta SET value = '2' WHERE key = 'schema_version'

-- 2 -> 3: jobs get a lease_deadline on the boot-time clock.
-- name: upgrade_to_3
ALTER TABLE andon_jobs ADD COLUMN lease_deadline REAL;
UPDATE andon_meta SET value = '3' WHERE key = 'schema_version'

-- 3 -> 4: checkpoints and resume (and schema_sqlite.sql then adds the paused kinds table).
-- name: upgrade_to_4
ALTER TABLE andon_jobs ADD COLUMN checkpoint TEXT;
ALTER TABLE andon_jobs ADD COLUMN checkpoint_items INTEGER;
ALTER TABLE andon_jobs ADD COLUMN checkpoint_attempt INTEGER;
ALTER TABLE andon_jobs ADD COLUMN checkpoint_at REAL;
ALTER TABLE andon_jobs ADD COLUMN resume INTEGER NOT NULL DEFAULT 0;
ALTER TABLE andon_jobs ADD COLUMN retry_resume INTEGER NOT NULL DEFAULT 0;
UPDATE andon_meta SET value = '4' WHERE key = 'schema_version'

-- 4 -> 5: job trees and keyed jobs (and schema_sqlite.sql then adds their indexes and the
-- idempotency table).
-- name: upgrade_to_5
ALTER TABLE andon_jobs ADD COLUMN parent_id TEXT;
ALTER TABLE andon_jobs ADD COLUMN root_id TEXT;
ALTER TABLE andon_jobs ADD COLUMN detached INTEGER NOT NULL DEFAULT 0;
ALTER TABLE andon_jobs ADD COLUMN fail_parent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE andon_jobs ADD COLUMN job_key TEXT;
ALTER TABLE andon_jobs ADD COLUMN cancel_origin TEXT;
ALTER TABLE andon_jobs ADD COLUMN awaiting_status TEXT;
UPDATE andon_meta SET value = '5' WHERE key = 'schema_version'

-- 5 -> 6: scheduled and periodic jobs, pruned history (and schema_sqlite.sql then adds the
-- schedules, ticks and leases tables and the new indexes).
-- name: upgrade_to_6
ALTER TABLE andon_jobs ADD COLUMN schedule_name TEXT;
ALTER TABLE andon_jobs ADD COLUMN pruned_at REAL;
UPDATE andon_meta SET value = '6' WHERE key = 'schema_version'

-- 6 -> 7: limits per kind (schema_sqlite.sql then adds their tables and index).
-- name: upgrade_to_7
UPDATE andon_meta SET value = '7' WHERE key = 'schema_version'

-- 7 -> 8: stop-time statistics per kind read an index of stopped jobs; dashboard sessions in
-- the store; the workers registry (schema_sqlite.sql adds the index, the tables and theirs).
-- 7 -> 8, metrics: the counters of ended jobs and stop times (as in schema_sqlite.sql), their
-- trigger, and the jobs the file holds counted, all in the upgrade's one write transaction:
-- no job can end between the count and the trigger.
-- name: upgrade_to_8
CREATE TABLE IF NOT EXISTS andon_stop_buckets (le REAL PRIMARY KEY);
INSERT OR IGNORE INTO andon_stop_buckets (le) VALUES
    (0.001), (0.0025), (0.005), (0.01), (0.025), (0.05), (0.1), (0.25), (0.5), (1.0), (2.5), (5.0), (10.0),
    (30.0), (60.0), (9e999);
CREATE TABLE IF NOT EXISTS andon_ended_counts (
    kind TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (kind, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS andon_stop_counts (
    kind TEXT NOT NULL, method TEXT NOT NULL, reason TEXT NOT NULL, le REAL NOT NULL, n INTEGER NOT NULL,
    seconds REAL NOT NULL, PRIMARY KEY (kind, method, reason, le)
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
INSERT INTO andon_ended_counts (kind, status, n)
SELECT kind, status, COUNT(*) FROM andon_jobs WHERE status IN ('succeeded', 'failed', 'cancelled')
GROUP BY kind, status;
INSERT INTO andon_stop_counts (kind, method, reason, le, n, seconds)
SELECT kind, method, reason, (SELECT min(le) FROM andon_stop_buckets WHERE le >= s), COUNT(*), SUM(s) FROM (
    SELECT kind, cancel_stop_method AS method, COALESCE(cancel_reason, '') AS reason,
           MAX(0.0, cancel_stopped_at - COALESCE(cancel_requested_at, cancel_stopped_at)) AS s
    FROM andon_jobs
    WHERE status IN ('succeeded', 'failed', 'cancelled') AND cancel_stopped_at IS NOT NULL
      AND cancel_stop_method IS NOT NULL)
GROUP BY 1, 2, 3, 4;
UPDATE andon_meta SET value = '8' WHERE key = 'schema_version'

-- name: upgrade_to_9
-- A stop's own grace: the shortest grace its requests asked for (cancel(..., grace=0), --now).
ALTER TABLE andon_jobs ADD COLUMN cancel_grace_s REAL;
UPDATE andon_meta SET value = '9' WHERE key = 'schema_version'

-- == clients ============================================================================

-- name: insert_job
INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at,
                        max_attempts, retry_backoff_s, timeout_s, retry_of, owner, retry_resume, events_count,
                        parent_id, root_id, detached, fail_parent, job_key, schedule_name)
VALUES (:id, :kind, :params, 'queued', :priority, :now, COALESCE(:available_at, :now), :max_attempts,
        :retry_backoff_s, :timeout_s, :retry_of, :owner, :retry_resume, 1, :parent_id, :root_id, :detached,
        :fail_parent, :job_key, :schedule_name)

-- name: insert_submitted
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
VALUES (:id, 1, :now, 'submitted', NULL, 'queued', :actor, NULL, NULL, 0)

-- == keyed jobs and idempotency keys (andon._keys) =======================================

-- SQLite has one writer at a time: submits of one key take turns anyway.
-- name: lock_key
SELECT 1 AS n

-- The active jobs of a kind and key, oldest first (the andon_jobs_key index holds only these).
-- name: active_with_key
SELECT * FROM andon_jobs
WHERE kind = :kind AND job_key = :key AND status IN ('queued', 'running', 'cancelling')
ORDER BY id

-- name: lock_idempotency
SELECT 1 AS n

-- name: find_idempotency
SELECT job_id, request_hash, created FROM andon_idempotency
WHERE scope = :scope AND key = :key AND created_at >= :since

-- Records past the window go as new ones are written (andon_idempotency_age finds them).
-- name: save_idempotency
DELETE FROM andon_idempotency WHERE created_at < :since;
INSERT INTO andon_idempotency (scope, key, request_hash, job_id, created, created_at)
VALUES (:scope, :key, :request_hash, :job_id, :created, :now)
ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, job_id = excluded.job_id,
    created = excluded.created, created_at = excluded.created_at

-- name: get
SELECT * FROM andon_jobs WHERE id = :id

-- BEGIN IMMEDIATE holds the whole database: a plain read is a locked read.
-- name: get_for_update
SELECT * FROM andon_jobs WHERE id = :id

-- name: lock_many
SELECT * FROM andon_jobs WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id

-- name: exists
SELECT 1 FROM andon_jobs WHERE id = :id

-- name: list
SELECT * FROM andon_jobs WHERE {where} ORDER BY {order} LIMIT :limit

-- Pages bounded in bytes read the sizes of their candidate rows first (no row is read in
-- full), then only the rows that fit. Sizes are bytes of the stored text (CAST to BLOB).
-- name: job_sizes
SELECT id,
       COALESCE(length(CAST(kind AS BLOB)), 0) + COALESCE(length(CAST(params AS BLOB)), 0)
       + COALESCE(length(CAST(result AS BLOB)), 0) + COALESCE(length(CAST(error_type AS BLOB)), 0)
       + COALESCE(length(CAST(error_message AS BLOB)), 0) + COALESCE(length(CAST(error_traceback AS BLOB)), 0)
       + COALESCE(length(CAST(progress_message AS BLOB)), 0) + COALESCE(length(CAST(cancel_by AS BLOB)), 0)
       + COALESCE(length(CAST(cancel_message AS BLOB)), 0) + COALESCE(length(CAST(worker_id AS BLOB)), 0)
       + COALESCE(length(CAST(retry_of AS BLOB)), 0) + COALESCE(length(CAST(owner AS BLOB)), 0)
       + COALESCE(length(CAST(checkpoint AS BLOB)), 0) AS size
FROM andon_jobs WHERE {where} ORDER BY {order} LIMIT :limit

-- name: jobs_by_ids
SELECT * FROM andon_jobs WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id DESC

-- How far each job is (its history's length, its items and progress): cheap to read for many
-- jobs at once, so an async client reads whole jobs only when one of these moved.
-- name: stages
SELECT id, events_count, items_count, progress_done, progress_total, progress_message FROM andon_jobs
WHERE id IN (SELECT value FROM json_each(:ids))

-- name: child_counts
SELECT parent_id, status, COUNT(*) AS n FROM andon_jobs
WHERE parent_id IN (SELECT value FROM json_each(:ids)) GROUP BY parent_id, status

-- name: descendant_counts
WITH RECURSIVE tree(id, status) AS (
    SELECT id, status FROM andon_jobs WHERE parent_id = :id
    UNION ALL
    SELECT j.id, j.status FROM andon_jobs j JOIN tree ON j.parent_id = tree.id
)
SELECT status, COUNT(*) AS n FROM tree GROUP BY status

-- name: events
SELECT * FROM andon_events WHERE job_id = :id ORDER BY seq

-- name: event_sizes
SELECT seq, length(CAST(type AS BLOB)) + COALESCE(length(CAST(actor AS BLOB)), 0)
       + COALESCE(length(CAST(reason AS BLOB)), 0) + COALESCE(length(CAST(message AS BLOB)), 0) AS size
FROM andon_events WHERE job_id = :id AND seq > :offset ORDER BY seq LIMIT :limit

-- name: events_between
SELECT * FROM andon_events WHERE job_id = :id AND seq BETWEEN :first AND :last ORDER BY seq

-- name: items
SELECT * FROM andon_items WHERE job_id = :id ORDER BY seq LIMIT COALESCE(:limit, -1) OFFSET :offset

-- name: item_sizes
SELECT seq, length(CAST(data AS BLOB)) AS size FROM andon_items WHERE job_id = :id
ORDER BY seq LIMIT :limit OFFSET :offset

-- name: items_between
SELECT * FROM andon_items WHERE job_id = :id AND seq BETWEEN :first AND :last ORDER BY seq LIMIT :n

-- name: add_event
UPDATE andon_jobs SET events_count = events_count + 1 WHERE id = :job_id;
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT :job_id, events_count, :at, :type, :from_status, :to_status, :actor, :reason, :message, :attempt
FROM andon_jobs WHERE id = :job_id

-- == cancels ============================================================================

-- name: withdraw
UPDATE andon_jobs SET status = :status, finished_at = :now, cancel_requested_at = :now, cancel_reason = :reason,
    cancel_by = :by, cancel_message = :message, cancel_retry = 0, cancel_stopped_at = :now,
    cancel_stop_method = 'withdrawn', error_type = :error_type, error_message = :error_message,
    cancel_origin = :origin
WHERE id = :id

-- name: request_stop
UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = :now, cancel_reason = :reason,
    cancel_by = :by, cancel_message = :message, cancel_retry = :retry, cancel_acknowledged_at = NULL,
    cancel_stopped_at = NULL, cancel_stop_method = NULL, cancel_origin = :origin, cancel_grace_s = :grace_s
WHERE id = :id

-- name: escalate
UPDATE andon_jobs SET cancel_reason = :reason, cancel_by = :by, cancel_message = :message, cancel_retry = :retry,
    cancel_origin = :origin, cancel_grace_s = :grace_s
WHERE id = :id

-- A request for less grace while a stop is under way: only the wait changes.
-- name: hurry
UPDATE andon_jobs SET cancel_grace_s = :grace_s WHERE id = :id

-- A cancel of a queued job that never ran and has no parent (so no tree to look at): the
-- withdrawal and its event. No row: the job is in another state (the general path).
-- name: withdraw_fresh
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, 'withdrawn', 'queued', 'cancelled', :by, :reason, :message, attempt
FROM andon_jobs WHERE id = :id AND status = 'queued' AND attempt = 0 AND parent_id IS NULL;
UPDATE andon_jobs SET status = 'cancelled', finished_at = :now, cancel_requested_at = :now,
    cancel_reason = :reason, cancel_by = :by, cancel_message = :message, cancel_retry = 0,
    cancel_stopped_at = :now, cancel_stop_method = 'withdrawn', events_count = events_count + 1,
    cancel_origin = NULL
WHERE id = :id AND status = 'queued' AND attempt = 0 AND parent_id IS NULL RETURNING *

-- Bulk cancel: the jobs' one event each (seq events_count + 1) first, then the jobs
-- themselves; both by the same filter, under the same write lock, so they match. Not
-- withdrawn here: a queued job with an active child of an earlier attempt (requeued_parents).
-- name: withdraw_many
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, 'withdrawn', 'queued', 'cancelled', :by, :reason, :message, attempt
FROM andon_jobs WHERE status = 'queued' AND {where}
  AND NOT (attempt > 0 AND EXISTS (SELECT 1 FROM andon_jobs AS child WHERE child.parent_id = andon_jobs.id
                                   AND child.status IN ('queued', 'running', 'cancelling')));
UPDATE andon_jobs SET status = 'cancelled', finished_at = :now, cancel_requested_at = :now,
    cancel_reason = :reason, cancel_by = :by, cancel_message = :message, cancel_retry = 0,
    cancel_stopped_at = :now, cancel_stop_method = 'withdrawn', events_count = events_count + 1,
    cancel_origin = :origin
WHERE status = 'queued' AND {where}
  AND NOT (attempt > 0 AND EXISTS (SELECT 1 FROM andon_jobs AS child WHERE child.parent_id = andon_jobs.id
                                   AND child.status IN ('queued', 'running', 'cancelling')))
RETURNING id, parent_id

-- name: request_stop_many
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, 'cancel requested', 'running', 'cancelling', :by, :reason, :message, attempt
FROM andon_jobs WHERE status = 'running' AND {where};
UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = :now,
    cancel_reason = :reason, cancel_by = :by, cancel_message = :message, cancel_retry = 1,
    cancel_acknowledged_at = NULL, cancel_stopped_at = NULL, cancel_stop_method = NULL,
    events_count = events_count + 1, cancel_origin = :origin, cancel_grace_s = :grace_s
WHERE status = 'running' AND {where} RETURNING *

-- Queued jobs that ran before and still have an active child (queued again by a shutdown or
-- a lost worker while their children ran): a bulk cancel stops each the one-job way, so it
-- waits for its children rather than ending under them.
-- name: requeued_parents
SELECT * FROM andon_jobs
WHERE status = 'queued' AND attempt > 0 AND {where}
  AND EXISTS (SELECT 1 FROM andon_jobs AS child
              WHERE child.parent_id = andon_jobs.id AND child.status IN ('queued', 'running', 'cancelling'))
ORDER BY id

-- name: retrying_force_fails
SELECT * FROM andon_jobs
WHERE status = 'cancelling' AND cancel_reason = 'forced' AND cancel_retry = 1 AND {where}
ORDER BY id

-- A hurried bulk cancel: the stops under way that would wait longer than it asks.
-- name: stopping_slower_than
SELECT * FROM andon_jobs
WHERE status = 'cancelling' AND awaiting_status IS NULL AND (cancel_grace_s IS NULL OR cancel_grace_s > :grace_s)
  AND {where}
ORDER BY id

-- name: active_for_update
SELECT * FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {where} ORDER BY id

-- name: status_for_update
SELECT status FROM andon_jobs WHERE id = :id

-- name: delete_job
DELETE FROM andon_items WHERE job_id = :id;
DELETE FROM andon_events WHERE job_id = :id;
DELETE FROM andon_jobs WHERE id = :id

-- == figures ============================================================================

-- name: counts_by_kind
SELECT kind, status, COUNT(*) AS n FROM andon_jobs GROUP BY kind, status

-- Percentiles as PostgreSQL's percentile_cont computes them: for p, the value at 0-based
-- position (stops - 1) * p in the sorted stop times, linear between the rows around it
-- (rank lo + 1 weighs 1 - f, rank lo + 2 weighs f); the median is statistics.median's.
-- name: stops_by_kind
SELECT kind, stops, slowest,
       SUM(seconds * CASE rank - lo50 WHEN 1 THEN 1 - f50 WHEN 2 THEN f50 ELSE 0 END) AS p50,
       SUM(seconds * CASE rank - lo99 WHEN 1 THEN 1 - f99 WHEN 2 THEN f99 ELSE 0 END) AS p99
FROM (
    SELECT kind, seconds, rank, stops, slowest,
           lo50, (stops - 1) * 0.5 - lo50 AS f50, lo99, (stops - 1) * 0.99 - lo99 AS f99
    FROM (
        SELECT kind, seconds, rank, stops, slowest,
               CAST((stops - 1) * 0.5 AS INTEGER) AS lo50, CAST((stops - 1) * 0.99 AS INTEGER) AS lo99
        FROM (
            SELECT kind, seconds,
                   ROW_NUMBER() OVER (PARTITION BY kind ORDER BY seconds) AS rank,
                   COUNT(*) OVER (PARTITION BY kind) AS stops,
                   MAX(seconds) OVER (PARTITION BY kind) AS slowest
            FROM (
                SELECT kind, MAX(0.0, cancel_stopped_at - cancel_requested_at) AS seconds FROM andon_jobs
                WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'
            )
        )
    )
    WHERE rank - lo50 IN (1, 2) OR rank - lo99 IN (1, 2)
)
GROUP BY kind

-- name: stop_methods_by_kind
SELECT kind, cancel_stop_method AS method, COUNT(*) AS n
FROM andon_jobs
WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'
GROUP BY kind, cancel_stop_method

-- == metrics (GET /metrics) ==============================================================

-- Active jobs by kind and state: what a scrape counts as it goes, over the rows of active
-- states only (the status index), however much history the table holds.
-- name: metrics_active
SELECT kind, status, COUNT(*) AS n, SUM(status = 'queued' AND available_at > :now) AS scheduled,
       MIN(CASE WHEN status = 'queued' AND available_at <= :now THEN available_at END) AS oldest_due, MIN(cancel_requested_at) AS oldest_request
FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling')
GROUP BY kind, status

-- What ended, as the trigger on andon_jobs counted it (a few rows per kind; shards added up).
-- name: metrics_ended
SELECT kind, status, SUM(n) AS n FROM andon_ended_counts GROUP BY kind, status

-- name: metrics_stops
SELECT kind, method, reason, le, SUM(n) AS n, SUM(seconds) AS seconds FROM andon_stop_counts
GROUP BY kind, method, reason, le

-- name: metrics_buckets
SELECT le FROM andon_stop_buckets ORDER BY le

-- == workers ============================================================================

-- Claims walk the queue index in order and stop at :n rows; without INDEXED BY the planner
-- prefers the status index and sorts every queued row for each claim. The events go in
-- first, by the same selection under the same write lock (SQLite has no INSERT ... FROM an
-- UPDATE); lease_deadline is on the boot-time clock, what expiry is judged on. A keyed job
-- waits while another of its kind and key is running, cancelling or queued ahead of it
-- (andon._keys); an unkeyed one pays only its "job_key IS NULL".
-- A claim of kinds of which none is limited (andon_kind_limits) is this block; if any is,
-- it claims nothing, and the claim goes the way of the limits (_ops/_work.py).
-- == job trees ===========================================================================

-- A condition on andon_jobs: the row is a descendant of the top-level job :origin (an index
-- scan of its tree, no recursion).
-- name: tree_clause
root_id = :origin

-- A condition on andon_jobs: the row is a descendant of job :origin (a bulk cancel's {where}).
-- name: subtree_clause
id IN (WITH RECURSIVE tree(id) AS (
           SELECT id FROM andon_jobs WHERE parent_id = :origin
           UNION ALL
           SELECT j.id FROM andon_jobs j JOIN tree ON j.parent_id = tree.id)
       SELECT id FROM tree)

-- SQLite has one writer at a time: nothing to lock.
-- name: lock_subtree
SELECT 1 AS n

-- Whether a job has an active descendant ({where}: a tree or subtree clause): most jobs have
-- none, and their cancel then skips the subtree statements.
-- name: any_active_descendant
SELECT 1 AS n FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {where} LIMIT 1

-- name: parent_for_children
SELECT id, status, worker_id, attempt, root_id, awaiting_status, cancel_reason FROM andon_jobs WHERE id = :id

-- Which of these jobs have a child still active. Run for every settled batch: by the parent
-- index, as without it the planner walks the status index through every queued job.
-- name: with_active_children
SELECT DISTINCT parent_id AS id FROM andon_jobs INDEXED BY andon_jobs_parent
WHERE parent_id IN (SELECT value FROM json_each(:ids)) AND status IN ('queued', 'running', 'cancelling')

-- Jobs waiting for their descendants that have none active any more.
-- name: awaiting_done
SELECT * FROM andon_jobs p
WHERE p.id IN (SELECT value FROM json_each(:ids)) AND p.status = 'cancelling' AND p.awaiting_status IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM andon_jobs c WHERE c.parent_id = p.id AND c.status IN ('queued', 'running', 'cancelling'))
ORDER BY p.id

-- name: await_descendants
UPDATE andon_jobs SET awaiting_status = :status WHERE id = :id

-- name: finish_awaiting
UPDATE andon_jobs SET status = awaiting_status, awaiting_status = NULL, finished_at = :now,
    cancel_stopped_at = :now, error_type = COALESCE(error_type, :error_type),
    error_message = CASE WHEN error_type IS NULL THEN :error_message ELSE error_message END
WHERE id = :id RETURNING *

-- A parent's children it did not wait for and that were not submitted detached.
-- name: undetached_active_children
SELECT id FROM andon_jobs
WHERE parent_id = :id AND NOT detached AND status IN ('queued', 'running', 'cancelling') ORDER BY id

-- name: detached_active_children
SELECT id FROM andon_jobs
WHERE parent_id = :id AND detached AND status IN ('queued', 'running', 'cancelling') ORDER BY id

-- The next moment a queued job of these kinds falls due (a scheduled job, a retry waiting
-- out its backoff), so that an idle worker wakes for it.
-- name: next_due
SELECT MIN(available_at) AS due FROM andon_jobs INDEXED BY andon_jobs_due
WHERE status = 'queued' AND available_at > :now AND kind IN (SELECT value FROM json_each(:kinds))

-- name: claim
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, 'started', 'queued', 'running', :actor, NULL, NULL, attempt + 1
FROM andon_jobs INDEXED BY andon_jobs_queue
WHERE status = 'queued' AND available_at <= :now AND kind IN (SELECT value FROM json_each(:kinds))
  AND kind NOT IN (SELECT kind FROM andon_paused)
  AND (job_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM andon_jobs AS other
      WHERE other.kind = andon_jobs.kind AND other.job_key = andon_jobs.job_key
        AND other.status IN ('queued', 'running', 'cancelling')
        AND (other.status != 'queued' OR other.id < andon_jobs.id)))
  AND NOT EXISTS (SELECT 1 FROM andon_kind_limits WHERE kind IN (SELECT value FROM json_each(:kinds)))
ORDER BY priority DESC, id LIMIT :n;
UPDATE andon_jobs SET status = 'running', attempt = attempt + 1, started_at = :now,
    worker_id = :worker, lease_expires_at = :now + :lease_s, lease_deadline = :lease_base + :lease_s,
    events_count = events_count + 1, progress_done = NULL, progress_total = NULL, progress_message = NULL
WHERE id IN (SELECT id FROM andon_jobs INDEXED BY andon_jobs_queue
             WHERE status = 'queued' AND available_at <= :now AND kind IN (SELECT value FROM json_each(:kinds))
               AND kind NOT IN (SELECT kind FROM andon_paused)
             AND (job_key IS NULL OR NOT EXISTS (
                 SELECT 1 FROM andon_jobs AS other
                 WHERE other.kind = andon_jobs.kind AND other.job_key = andon_jobs.job_key
                   AND other.status IN ('queued', 'running', 'cancelling')
                   AND (other.status != 'queued' OR other.id < andon_jobs.id)))
               AND NOT EXISTS (SELECT 1 FROM andon_kind_limits WHERE kind IN (SELECT value FROM json_each(:kinds)))
             ORDER BY priority DESC, id LIMIT :n)
RETURNING *

-- == limits per kind (max_running, rate) ================================================

-- The limits of the claim's kinds. SQLite has one writer at a time: the claim's write
-- transaction is the lock, and what it counts stays as counted until it commits.
-- name: claim_limits
SELECT kind, max_running, rate_starts, rate_s FROM andon_kind_limits
WHERE kind IN (SELECT value FROM json_each(:kinds)) ORDER BY kind

-- How many of each limited kind run now and started within its window; starts older than
-- the window go (a rate window slides: a start at t counts until t + rate_s, exclusive).
-- name: limit_usage
DELETE FROM andon_kind_starts
WHERE kind IN (SELECT value FROM json_each(:kinds))
  AND at <= :now - COALESCE((SELECT rate_s FROM andon_kind_limits AS l WHERE l.kind = andon_kind_starts.kind), 0);
SELECT l.kind, l.max_running, l.rate_starts, l.rate_s,
       (SELECT COUNT(*) FROM andon_jobs AS j INDEXED BY andon_jobs_running_kind
        WHERE j.kind = l.kind AND j.status IN ('running', 'cancelling')) AS running,
       (SELECT COUNT(*) FROM andon_kind_starts AS s WHERE s.kind = l.kind AND s.at > :now - l.rate_s) AS starts
FROM andon_kind_limits AS l WHERE l.kind IN (SELECT value FROM json_each(:kinds)) ORDER BY l.kind

-- The same figures for display, changing nothing.
-- name: kind_limits
SELECT l.kind, l.max_running, l.rate_starts, l.rate_s,
       (SELECT COUNT(*) FROM andon_jobs AS j INDEXED BY andon_jobs_running_kind
        WHERE j.kind = l.kind AND j.status IN ('running', 'cancelling')) AS running,
       (SELECT COUNT(*) FROM andon_kind_starts AS s WHERE s.kind = l.kind AND s.at > :now - l.rate_s) AS starts
FROM andon_kind_limits AS l ORDER BY l.kind

-- The next queued jobs of :kinds a claim could start (the limited way of a claim takes at
-- most its room of each limited kind, then the best n of all it found).
-- name: claim_candidates
SELECT id, priority FROM andon_jobs INDEXED BY andon_jobs_queue
WHERE status = 'queued' AND available_at <= :now AND kind IN (SELECT value FROM json_each(:kinds))
  AND kind NOT IN (SELECT kind FROM andon_paused)
  AND (job_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM andon_jobs AS other
      WHERE other.kind = andon_jobs.kind AND other.job_key = andon_jobs.job_key
        AND other.status IN ('queued', 'running', 'cancelling')
        AND (other.status != 'queued' OR other.id < andon_jobs.id)))
ORDER BY priority DESC, id LIMIT :n

-- Start the chosen candidates (as claim does), each start of a rate-limited kind logged.
-- name: start_claimed
INSERT INTO andon_kind_starts (kind, at)
SELECT kind, :now FROM andon_jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'queued' AND kind IN (SELECT value FROM json_each(:rated));
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, 'started', 'queued', 'running', :actor, NULL, NULL, attempt + 1
FROM andon_jobs WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'queued';
UPDATE andon_jobs SET status = 'running', attempt = attempt + 1, started_at = :now,
    worker_id = :worker, lease_expires_at = :now + :lease_s, lease_deadline = :lease_base + :lease_s,
    events_count = events_count + 1, progress_done = NULL, progress_total = NULL, progress_message = NULL
WHERE id IN (SELECT value FROM json_each(:ids)) AND status = 'queued'
RETURNING *

-- When a start of these rate-limited kinds leaves its window (so another may start).
-- name: rate_due
SELECT MIN(s.at + l.rate_s) AS due FROM andon_kind_limits AS l JOIN andon_kind_starts AS s ON s.kind = l.kind
WHERE l.kind IN (SELECT value FROM json_each(:kinds)) AND s.at > :now - l.rate_s

-- name: put_kind_limit
INSERT INTO andon_kind_limits (kind, max_running, rate_starts, rate_s, updated_at, updated_by)
VALUES (:kind, :max_running, :rate_starts, :rate_s, :now, :by)
ON CONFLICT (kind) DO UPDATE SET max_running = excluded.max_running, rate_starts = excluded.rate_starts,
    rate_s = excluded.rate_s, updated_at = excluded.updated_at, updated_by = excluded.updated_by
WHERE (andon_kind_limits.max_running, andon_kind_limits.rate_starts, andon_kind_limits.rate_s)
      IS NOT (excluded.max_running, excluded.rate_starts, excluded.rate_s)

-- Kinds the syncing app registers without a limit lose theirs (and their starts log).
-- name: drop_kind_limits
DELETE FROM andon_kind_starts WHERE kind IN (SELECT value FROM json_each(:kinds));
DELETE FROM andon_kind_limits WHERE kind IN (SELECT value FROM json_each(:kinds)) RETURNING kind

-- name: write_progress
UPDATE andon_jobs SET items_count = MAX(items_count, :items_count),
    progress_done = CASE WHEN :has_progress THEN :done ELSE progress_done END,
    progress_total = CASE WHEN :has_progress THEN :total ELSE progress_total END,
    progress_message = CASE WHEN :has_progress THEN :progress_message ELSE progress_message END,
    cancel_acknowledged_at = COALESCE(cancel_acknowledged_at, :acknowledged_at),
    checkpoint = CASE WHEN :has_checkpoint THEN :checkpoint ELSE checkpoint END,
    checkpoint_items = CASE WHEN :has_checkpoint THEN :checkpoint_items ELSE checkpoint_items END,
    checkpoint_attempt = CASE WHEN :has_checkpoint THEN attempt ELSE checkpoint_attempt END,
    checkpoint_at = CASE WHEN :has_checkpoint THEN :checkpoint_at ELSE checkpoint_at END
WHERE id = :job_id AND attempt = :attempt AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
RETURNING id

-- name: insert_item
INSERT OR IGNORE INTO andon_items (job_id, seq, attempt, at, data) VALUES (?, ?, ?, ?, ?)

-- name: settle
UPDATE andon_jobs SET status = :status, finished_at = :finished,
    lease_expires_at = NULL, lease_deadline = NULL, events_count = events_count + :events,
    result = :result, error_type = :error_type, error_message = :error_message,
    error_traceback = :error_traceback, failures = failures + :failed, available_at = :available,
    cancel_acknowledged_at = CASE WHEN :clear_cancel THEN NULL
                                  ELSE COALESCE(cancel_acknowledged_at, :acknowledged_at) END,
    cancel_stopped_at = CASE WHEN :clear_cancel THEN NULL WHEN :has_cancel THEN :stopped ELSE cancel_stopped_at END,
    cancel_stop_method = CASE WHEN :clear_cancel THEN NULL WHEN :has_cancel THEN :method
                              ELSE cancel_stop_method END,
    cancel_requested_at = CASE WHEN :clear_cancel THEN NULL ELSE cancel_requested_at END,
    cancel_reason = CASE WHEN :clear_cancel THEN NULL ELSE cancel_reason END,
    cancel_by = CASE WHEN :clear_cancel THEN NULL ELSE cancel_by END,
    cancel_message = CASE WHEN :clear_cancel THEN NULL ELSE cancel_message END,
    cancel_retry = CASE WHEN :clear_cancel THEN NULL ELSE cancel_retry END,
    resume = :resume, awaiting_status = :awaiting
WHERE id = :id RETURNING *

-- name: insert_event
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
VALUES (:job_id, :seq, :at, :type, :from_status, :to_status, :actor, :reason, :message, :attempt)

-- name: cancel_notices
SELECT id, attempt, cancel_reason, cancel_message, cancel_grace_s FROM andon_jobs
WHERE worker_id = :worker AND status = 'cancelling' AND awaiting_status IS NULL

-- name: renew_leases
UPDATE andon_jobs SET lease_expires_at = :now + :lease_s, lease_deadline = :lease_base + :lease_s
WHERE worker_id = :worker AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
RETURNING id

-- name: boot_id
SELECT value FROM andon_meta WHERE key = 'boot_id'

-- name: set_boot_id
INSERT OR REPLACE INTO andon_meta (key, value) VALUES ('boot_id', :boot_id)

-- A lease with no deadline was written by andon before schema 3: judged expired.
-- name: expired
-- A job waiting for its descendants to stop (awaiting_status) is held by no worker.
SELECT * FROM andon_jobs WHERE status IN ('running', 'cancelling') AND awaiting_status IS NULL
  AND (:rebooted OR lease_deadline IS NULL OR lease_deadline < :lease_base)

-- == the workers registry (andon._workers) ==============================================

-- A worker's row as it starts; the upsert lets a worker whose row is still there (it
-- registers again) keep it. Its heartbeat (below) is the same upsert.
-- name: register_worker
INSERT INTO andon_workers (id, host, boot_id, pid_ns, pid, pid_start, version, kinds, slots, lease_s,
    started_at, heartbeat_at, heartbeat_base)
VALUES (:worker, :host, :boot_id, :pid_ns, :pid, :pid_start, :version, :kinds, :slots, :lease_s,
    :now, :now, :lease_base)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, heartbeat_base = excluded.heartbeat_base,
    lease_s = excluded.lease_s, stopped_at = NULL, ended = NULL, end_message = NULL

-- A renewal that is also the worker's heartbeat, in one transaction: its row is upserted (a
-- living worker's row that was pruned, or marked dead by mistake, is back at once), then
-- its leases renewed as renew_leases does.
-- name: renew_leases_beating
INSERT INTO andon_workers (id, host, boot_id, pid_ns, pid, pid_start, version, kinds, slots, lease_s,
    started_at, heartbeat_at, heartbeat_base)
VALUES (:worker, :host, :boot_id, :pid_ns, :pid, :pid_start, :version, :kinds, :slots, :lease_s,
    :now, :now, :lease_base)
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, heartbeat_base = excluded.heartbeat_base,
    lease_s = excluded.lease_s, stopped_at = NULL, ended = NULL, end_message = NULL;
UPDATE andon_jobs SET lease_expires_at = :now + :lease_s, lease_deadline = :lease_base + :lease_s
WHERE worker_id = :worker AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
  AND (:ids IS NULL OR id IN (SELECT value FROM json_each(:ids)))
RETURNING id

-- Rows of workers that ended (or went silent) before :before go.
-- name: prune_workers
DELETE FROM andon_workers WHERE COALESCE(stopped_at, heartbeat_at) < :before

-- name: worker_stopped
UPDATE andon_workers SET stopped_at = :now, ended = 'stopped', end_message = NULL WHERE id = :worker

-- The unended workers of one machine, which a lookout there can check by pid.
-- name: workers_on
SELECT id, pid, pid_start FROM andon_workers
WHERE stopped_at IS NULL AND host = :host AND boot_id = :boot_id AND pid_ns = :pid_ns

-- Only while it is unended and still names that process: of two lookouts that found it
-- gone, the first to commit marks it (and recovers its jobs), the other finds nothing.
-- name: mark_worker_dead
UPDATE andon_workers SET stopped_at = :now, ended = 'dead', end_message = :message
WHERE id = :worker AND stopped_at IS NULL AND pid = :pid AND pid_start IS :pid_start
RETURNING id

-- name: held_by_worker
SELECT * FROM andon_jobs
WHERE worker_id = :worker AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
ORDER BY id

-- A heartbeat's age on the lease clock (CLOCK_BOOTTIME), which only this boot can read;
-- a row written before a reboot is judged by the wall clock.
-- name: list_workers
SELECT id, host, pid, version, kinds, slots, lease_s, started_at, heartbeat_at, stopped_at, ended, end_message,
    CASE WHEN boot_id = :boot_id THEN :lease_base - heartbeat_base ELSE :now - heartbeat_at END AS heartbeat_age_s
FROM andon_workers
ORDER BY started_at DESC, id

-- The jobs every worker holds now (at most its slots each), from the held-jobs index.
-- name: held_jobs
SELECT worker_id, id, owner FROM andon_jobs
WHERE status IN ('running', 'cancelling') AND awaiting_status IS NULL AND worker_id IS NOT NULL
ORDER BY worker_id, id

-- == resume and pause =================================================================

-- Going on from the checkpoint: what the last attempt emitted after it is dropped (the next
-- attempt does that work again and numbers its items on from the checkpoint's).
-- name: drop_items_after_checkpoint
DELETE FROM andon_items WHERE job_id = :id AND seq >= :from_seq;
UPDATE andon_jobs SET items_count = :from_seq WHERE id = :id RETURNING *

-- name: resume
UPDATE andon_jobs SET status = 'queued', available_at = :now, finished_at = NULL, resume = 1,
    result = NULL, error_type = NULL, error_message = NULL, error_traceback = NULL,
    cancel_requested_at = NULL, cancel_reason = NULL, cancel_by = NULL, cancel_message = NULL,
    cancel_retry = NULL, cancel_acknowledged_at = NULL, cancel_stopped_at = NULL, cancel_stop_method = NULL
WHERE id = :id

-- name: pause_kind
INSERT INTO andon_paused (kind, paused_at, paused_by, message) VALUES (:kind, :now, :by, :message)
ON CONFLICT (kind) DO NOTHING
RETURNING kind

-- name: unpause_kind
DELETE FROM andon_paused WHERE kind = :kind RETURNING kind

-- name: paused_kinds
SELECT kind, paused_at, paused_by, message FROM andon_paused ORDER BY kind

-- Each queued job of the kind gets the pause (or unpause) in its history.
-- name: note_on_queued
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, :type, 'queued', 'queued', :by, :reason, :message, attempt
FROM andon_jobs WHERE status = 'queued' AND kind = :kind;
UPDATE andon_jobs SET events_count = events_count + 1 WHERE status = 'queued' AND kind = :kind

-- Running jobs of a kind paused with --now are asked to stop (reason paused), each with its event.
-- name: pause_running
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count + 1, :now, 'cancel requested', 'running', 'cancelling', :by, 'paused', :message, attempt
FROM andon_jobs WHERE status = 'running' AND kind = :kind;
UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = :now, cancel_reason = 'paused', cancel_by = :by,
    cancel_message = :message, cancel_retry = 1, events_count = events_count + 1, cancel_grace_s = NULL
WHERE status = 'running' AND kind = :kind
RETURNING *

-- == retention ==========================================================================

-- Pruning walks finished jobs oldest first, a window at a time, from a cursor (finished_at,
-- id): each window is a short read, and the writes that follow touch only its jobs. Jobs
-- whose history is kept and tombstones are in two partial indexes, so a prune reads only
-- the jobs it may still change however many tombstones the table holds.
-- name: prune_window
SELECT id, kind, status, finished_at, root_id, awaiting_status, items_count, events_count FROM andon_jobs
WHERE finished_at IS NOT NULL AND pruned_at IS NULL AND finished_at < :before
  AND (finished_at, id) > (:after_at, :after_id)
ORDER BY finished_at, id LIMIT :limit

-- name: purge_window
SELECT id, kind, status, finished_at, root_id, awaiting_status, items_count, events_count FROM andon_jobs
WHERE pruned_at IS NOT NULL AND finished_at < :before
  AND (finished_at, id) > (:after_at, :after_id)
ORDER BY finished_at, id LIMIT :limit

-- Which of these trees (top-level job ids) still have an active job, the top one included.
-- name: active_trees
SELECT t.value AS root_id FROM json_each(:roots) t
WHERE EXISTS (SELECT 1 FROM andon_jobs r WHERE r.id = t.value AND r.status IN ('queued', 'running', 'cancelling'))
   OR EXISTS (SELECT 1 FROM andon_jobs d WHERE d.root_id = t.value AND d.status IN ('queued', 'running', 'cancelling'))

-- The status and time are checked again: a job resumed since the window was read is left alone.
-- What stays is the tombstone: who, what, when, how it ended and its cancel record.
-- name: tombstone_jobs
UPDATE andon_jobs SET params = '{}', result = NULL, error_traceback = NULL,
    error_message = substr(error_message, 1, :message_chars), progress_done = NULL, progress_total = NULL,
    progress_message = NULL, checkpoint = NULL, checkpoint_items = NULL, checkpoint_attempt = NULL,
    checkpoint_at = NULL, resume = 0, items_count = 0, pruned_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND pruned_at IS NULL
  AND status IN ('succeeded', 'failed', 'cancelled') AND finished_at < :before
RETURNING id

-- name: purge_jobs
DELETE FROM andon_jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND status IN ('succeeded', 'failed', 'cancelled')
  AND finished_at < :before
RETURNING id

-- name: prune_items
DELETE FROM andon_items WHERE job_id IN (SELECT value FROM json_each(:ids));
SELECT changes() AS n

-- name: prune_events
DELETE FROM andon_events WHERE job_id IN (SELECT value FROM json_each(:ids));
SELECT changes() AS n

-- == tokens =============================================================================

-- name: insert_token
INSERT INTO andon_tokens (name, role, token_hash, created_at) VALUES (:name, :role, :hash, :now)
ON CONFLICT DO NOTHING RETURNING name, role, created_at, revoked_at

-- name: find_token
SELECT name, role, created_at, revoked_at FROM andon_tokens WHERE token_hash = :hash

-- name: list_tokens
SELECT name, role, created_at, revoked_at FROM andon_tokens ORDER BY created_at, name

-- name: revoke_token
UPDATE andon_tokens SET revoked_at = COALESCE(revoked_at, :now) WHERE name = :name
RETURNING name, role, created_at, revoked_at

-- Revoking a token ends its dashboard sessions on every server.
-- name: drop_token_sessions
DELETE FROM andon_sessions WHERE token_hash = (SELECT token_hash FROM andon_tokens WHERE name = :name)

-- == dashboard sessions (andon.api._auth, _ops/_sessions.py) ============================

-- name: insert_session
INSERT INTO andon_sessions (session_hash, token_hash, own_token_mac, created_at, expires_at)
VALUES (:hash, :token_hash, :own_token_mac, :now, :expires_at)

-- The token's row comes with it, so a revoke is seen at once: one lookup by primary key
-- (and one by the tokens' unique hash), on every authenticated dashboard request.
-- name: find_session
SELECT s.token_hash, s.own_token_mac, s.created_at, s.expires_at,
       t.name, t.role, t.created_at AS token_created_at, t.revoked_at
FROM andon_sessions s LEFT JOIN andon_tokens t ON t.token_hash = s.token_hash
WHERE s.session_hash = :hash AND s.expires_at > :now

-- name: delete_session
DELETE FROM andon_sessions WHERE session_hash = :hash;
SELECT changes() AS n

-- The newest `keep` sessions of one token stay; older ones go.
-- name: cap_sessions
DELETE FROM andon_sessions WHERE session_hash IN (
    SELECT session_hash FROM andon_sessions WHERE token_hash = :token_hash
    ORDER BY created_at DESC, session_hash LIMIT -1 OFFSET :keep)

-- name: prune_sessions
DELETE FROM andon_sessions WHERE session_hash IN (
    SELECT session_hash FROM andon_sessions WHERE expires_at <= :now ORDER BY expires_at LIMIT :limit)

-- == schedules and their ticks (andon._schedules, _ops/_schedules.py) ===================

-- name: schedules
SELECT * FROM andon_schedules ORDER BY name

-- name: schedule
SELECT * FROM andon_schedules WHERE name = :name

-- Writes run under BEGIN IMMEDIATE: the row stays as read until the commit.
-- name: schedule_for_update
SELECT * FROM andon_schedules WHERE name = :name

-- name: put_schedule
INSERT INTO andon_schedules (name, kind, params, cron, every_s, timezone, overlap, catch_up, priority, timeout_s,
                             source, paused_at, paused_by, next_at, created_at, updated_at)
VALUES (:name, :kind, :params, :cron, :every_s, :timezone, :overlap, :catch_up, :priority, :timeout_s,
        :source, :paused_at, :paused_by, :next_at, :now, :now)
ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, params = excluded.params, cron = excluded.cron,
    every_s = excluded.every_s, timezone = excluded.timezone, overlap = excluded.overlap,
    catch_up = excluded.catch_up, priority = excluded.priority, timeout_s = excluded.timeout_s,
    source = excluded.source, paused_at = excluded.paused_at, paused_by = excluded.paused_by,
    next_at = excluded.next_at, updated_at = excluded.updated_at
RETURNING *

-- App schedules the syncing app no longer declares (their ticks stay).
-- name: drop_undeclared_schedules
DELETE FROM andon_schedules
WHERE source = 'app' AND name NOT IN (SELECT value FROM json_each(:names))
RETURNING name

-- name: delete_schedule
DELETE FROM andon_schedules WHERE name = :name RETURNING name

-- name: pause_schedule
UPDATE andon_schedules SET paused_at = :now, paused_by = :by, next_at = NULL, updated_at = :now
WHERE name = :name
RETURNING *

-- name: resume_schedule
UPDATE andon_schedules SET paused_at = NULL, paused_by = NULL, next_at = :next_at, updated_at = :now
WHERE name = :name
RETURNING *

-- name: advance_schedule
UPDATE andon_schedules SET next_at = :next_at WHERE name = :name

-- name: due_schedules
SELECT name FROM andon_schedules WHERE paused_at IS NULL AND next_at <= :now ORDER BY next_at, name LIMIT :limit

-- name: next_tick
SELECT min(next_at) AS next_at FROM andon_schedules WHERE paused_at IS NULL

-- The primary key (schedule, tick_at) makes a tick's row the proof it was handled: a
-- second scheduler that reaches the same tick inserts nothing and leaves it alone.
-- name: insert_tick
INSERT INTO andon_ticks (schedule, tick_at, at, outcome, job_id, by, message)
VALUES (:schedule, :tick_at, :at, :outcome, :job_id, :by, :message)
ON CONFLICT DO NOTHING
RETURNING tick_at

-- name: set_tick_outcome
UPDATE andon_ticks SET outcome = :outcome, job_id = :job_id, message = :message
WHERE schedule = :schedule AND tick_at = :tick_at

-- name: ticks
SELECT * FROM andon_ticks WHERE schedule = :schedule ORDER BY tick_at DESC LIMIT :limit

-- == the scheduler's lease ==============================================================

-- Taken when free, expired (on the lease clock: CLOCK_BOOTTIME unless a test clock says),
-- or already ours (a renewal); nothing comes back when another holds it.
-- name: take_lease
INSERT INTO andon_leases (name, holder, expires_at, since) VALUES (:name, :holder, :lease_base + :lease_s, :now)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
    since = CASE WHEN andon_leases.holder = excluded.holder THEN andon_leases.since ELSE excluded.since END
WHERE andon_leases.holder = excluded.holder OR andon_leases.expires_at <= :lease_base
RETURNING holder, since

-- name: holds_lease
SELECT holder FROM andon_leases WHERE name = :name AND holder = :holder AND expires_at > :lease_base

-- name: release_lease
DELETE FROM andon_leases WHERE name = :name AND holder = :holder

-- name: lease
SELECT holder, since, expires_at - :lease_base AS expires_in FROM andon_leases WHERE name = :name
