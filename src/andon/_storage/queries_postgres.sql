-- Every statement of the PostgreSQL store, by name (loaded by andon._storage._sql).
--
-- Tables are named as in SQLite. Statements run with search_path set to the store's schema
-- (a connection option), so they name tables without a schema. %(name)s are parameters; a
-- {where} or {order} is one of the fixed fragments built by andon._storage._sql. Each
-- block is one statement: one round trip.

-- == schema and migrations ==============================================================

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS andon_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at double precision NOT NULL
)

-- name: schema_version
SELECT COALESCE(MAX(version), 0) AS version FROM andon_migrations

-- name: record_migration
INSERT INTO andon_migrations (version, name, applied_at) VALUES (%(v)s, %(name)s, %(at)s)

-- name: migration_lock
SELECT pg_advisory_xact_lock(hashtext('andon migrations ' || %(schema)s))

-- The key that signs the stops named in notifications (_pg_listener.py).
-- name: notify_key
SELECT key FROM andon_notify_key

-- Several payloads in one round trip (each a change, or the stops of a cancel).
-- name: notify_many
SELECT pg_notify(%(channel)s, payload) FROM unnest(%(payloads)s::text[]) AS payload

-- == clients ============================================================================

-- The caller's search path, kept while a submit runs inside their transaction.
-- name: search_path
SELECT current_setting('search_path') AS path

-- For the rest of the caller's transaction only (is_local).
-- name: set_search_path
SELECT set_config('search_path', %(path)s, true)

-- The jobs, their first events and the wake-up of the workers, in one statement: a plain
-- submit is this statement alone, committed on its own (one round trip, no BEGIN/COMMIT).
-- name: submit
WITH new AS (
    INSERT INTO andon_jobs (id, kind, params, status, priority, created_at, available_at,
                            max_attempts, retry_backoff_s, timeout_s, retry_of, owner, retry_resume, events_count,
                            parent_id, root_id, detached, fail_parent, job_key, schedule_name)
    SELECT id, kind, params, 'queued', priority, %(now)s, COALESCE(available_at, %(now)s),
           max_attempts, retry_backoff_s, timeout_s, retry_of, owner, retry_resume, 1,
           parent_id, root_id, detached, fail_parent, job_key, schedule_name
    FROM unnest(%(ids)s::text[], %(kinds)s::text[], %(params)s::text[], %(priorities)s::bigint[],
                %(max_attempts)s::integer[], %(backoffs)s::float8[], %(timeouts)s::float8[], %(retry_ofs)s::text[],
                %(owners)s::text[], %(retry_resumes)s::boolean[], %(parent_ids)s::text[], %(root_ids)s::text[],
                %(detacheds)s::boolean[], %(fail_parents)s::boolean[], %(job_keys)s::text[],
                %(schedule_names)s::text[], %(available_ats)s::float8[])
         AS new (id, kind, params, priority, max_attempts, retry_backoff_s, timeout_s, retry_of, owner,
                 retry_resume, parent_id, root_id, detached, fail_parent, job_key, schedule_name, available_at)
    RETURNING id
), events AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, 1, %(now)s, 'submitted', NULL, 'queued', %(actor)s, NULL, NULL, 0 FROM new
)
SELECT pg_notify(%(channel)s, 'work')

-- == keyed jobs and idempotency keys (andon._keys) =======================================

-- Submits of one kind and key take turns until their commit: under READ COMMITTED two of
-- them would otherwise both find no active job and both insert one. (The two-integer lock
-- space is not the one the migration lock uses.)
-- name: lock_key
SELECT pg_advisory_xact_lock(hashtext(%(kind)s), hashtext(%(key)s))

-- The active jobs of a kind and key, oldest first, locked (the andon_jobs_key index holds only these).
-- name: active_with_key
SELECT * FROM andon_jobs
WHERE kind = %(kind)s AND job_key = %(key)s AND status IN ('queued', 'running', 'cancelling')
ORDER BY id FOR UPDATE

-- name: lock_idempotency
SELECT pg_advisory_xact_lock(hashtext('andon idempotency ' || %(scope)s), hashtext(%(key)s))

-- name: find_idempotency
SELECT job_id, request_hash, created FROM andon_idempotency
WHERE scope = %(scope)s AND key = %(key)s AND created_at >= %(since)s

-- Records past the window go as new ones are written (andon_idempotency_age finds them);
-- this key's own row is left to the upsert (one statement may not change a row twice).
-- name: save_idempotency
WITH expired AS (
    DELETE FROM andon_idempotency
    WHERE created_at < %(since)s AND NOT (scope = %(scope)s AND key = %(key)s)
)
INSERT INTO andon_idempotency (scope, key, request_hash, job_id, created, created_at)
VALUES (%(scope)s, %(key)s, %(request_hash)s, %(job_id)s, %(created)s, %(now)s)
ON CONFLICT (scope, key) DO UPDATE SET request_hash = excluded.request_hash, job_id = excluded.job_id,
    created = excluded.created, created_at = excluded.created_at

-- name: submitted_count
SELECT count(*) AS n FROM andon_jobs WHERE id = ANY(%(ids)s) AND created_at = %(now)s

-- name: get
SELECT * FROM andon_jobs WHERE id = %(id)s

-- name: get_for_update
SELECT * FROM andon_jobs WHERE id = %(id)s FOR UPDATE

-- name: lock_many
SELECT * FROM andon_jobs WHERE id = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE

-- name: exists
SELECT 1 FROM andon_jobs WHERE id = %(id)s

-- name: list
SELECT * FROM andon_jobs WHERE {where} ORDER BY {order} LIMIT %(limit)s

-- Pages bounded in bytes read the sizes of their candidate rows first, then only the rows
-- that fit. octet_length of a TOASTed value reads its header, not the value.
-- name: job_sizes
SELECT id,
       COALESCE(octet_length(kind), 0) + COALESCE(octet_length(params), 0) + COALESCE(octet_length(result), 0)
       + COALESCE(octet_length(error_type), 0) + COALESCE(octet_length(error_message), 0)
       + COALESCE(octet_length(error_traceback), 0) + COALESCE(octet_length(progress_message), 0)
       + COALESCE(octet_length(cancel_by), 0) + COALESCE(octet_length(cancel_message), 0)
       + COALESCE(octet_length(worker_id), 0) + COALESCE(octet_length(retry_of), 0)
       + COALESCE(octet_length(owner), 0) + COALESCE(octet_length(checkpoint), 0) AS size
FROM andon_jobs WHERE {where} ORDER BY {order} LIMIT %(limit)s

-- name: jobs_by_ids
SELECT * FROM andon_jobs WHERE id = ANY(%(ids)s::text[]) ORDER BY id DESC

-- How far each job is (its history's length, its items and progress): cheap to read for many
-- jobs at once, so an async client reads whole jobs only when one of these moved.
-- name: stages
SELECT id, events_count, items_count, progress_done, progress_total, progress_message FROM andon_jobs
WHERE id = ANY(%(ids)s::text[])

-- name: child_counts
SELECT parent_id, status, count(*) AS n FROM andon_jobs
WHERE parent_id = ANY(%(ids)s::text[]) GROUP BY parent_id, status

-- name: descendant_counts
WITH RECURSIVE tree(id, status) AS (
    SELECT id, status FROM andon_jobs WHERE parent_id = %(id)s
    UNION ALL
    SELECT j.id, j.status FROM andon_jobs j JOIN tree ON j.parent_id = tree.id
)
SELECT status, count(*) AS n FROM tree GROUP BY status

-- name: events
SELECT * FROM andon_events WHERE job_id = %(id)s ORDER BY seq

-- name: event_sizes
SELECT seq, octet_length(type) + COALESCE(octet_length(actor), 0) + COALESCE(octet_length(reason), 0)
       + COALESCE(octet_length(message), 0) AS size
FROM andon_events WHERE job_id = %(id)s AND seq > %(offset)s ORDER BY seq LIMIT %(limit)s

-- name: events_between
SELECT * FROM andon_events WHERE job_id = %(id)s AND seq BETWEEN %(first)s AND %(last)s ORDER BY seq

-- name: items
SELECT * FROM andon_items WHERE job_id = %(id)s ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s

-- name: item_sizes
SELECT seq, octet_length(data) AS size FROM andon_items WHERE job_id = %(id)s
ORDER BY seq LIMIT %(limit)s OFFSET %(offset)s

-- name: items_between
SELECT * FROM andon_items WHERE job_id = %(id)s AND seq BETWEEN %(first)s AND %(last)s ORDER BY seq LIMIT %(n)s

-- name: add_event
WITH numbered AS (
    UPDATE andon_jobs SET events_count = events_count + 1 WHERE id = %(job_id)s RETURNING events_count
)
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT %(job_id)s, events_count, %(at)s, %(type)s, %(from_status)s, %(to_status)s, %(actor)s, %(reason)s,
       %(message)s, %(attempt)s
FROM numbered

-- == cancels ============================================================================

-- name: withdraw
UPDATE andon_jobs SET status = %(status)s, finished_at = %(now)s, cancel_requested_at = %(now)s,
    cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = false,
    cancel_stopped_at = %(now)s, cancel_stop_method = 'withdrawn', error_type = %(error_type)s,
    error_message = %(error_message)s, cancel_origin = %(origin)s
WHERE id = %(id)s

-- name: request_stop
UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = %(now)s, cancel_reason = %(reason)s,
    cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = %(retry)s, cancel_acknowledged_at = NULL,
    cancel_stopped_at = NULL, cancel_stop_method = NULL, cancel_origin = %(origin)s,
    cancel_grace_s = %(grace_s)s
WHERE id = %(id)s

-- name: escalate
UPDATE andon_jobs SET cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s,
    cancel_retry = %(retry)s, cancel_origin = %(origin)s, cancel_grace_s = %(grace_s)s
WHERE id = %(id)s

-- A request for less grace while a stop is under way: only the wait changes.
-- name: hurry
UPDATE andon_jobs SET cancel_grace_s = %(grace_s)s WHERE id = %(id)s

-- A cancel of a queued job that never ran and has no parent (so no tree to look at) is
-- this one statement, committed on its own: the withdrawal, its event and the notification.
-- No row: the job is in another state, and the cancel takes the general path.
-- name: withdraw_fresh
WITH withdrawn AS (
    UPDATE andon_jobs SET status = 'cancelled', finished_at = %(now)s, cancel_requested_at = %(now)s,
        cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = false,
        cancel_stopped_at = %(now)s, cancel_stop_method = 'withdrawn', events_count = events_count + 1,
        cancel_origin = NULL
    WHERE id = %(id)s AND status = 'queued' AND attempt = 0 AND parent_id IS NULL
    RETURNING *
), events AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'withdrawn', 'queued', 'cancelled', %(by)s, %(reason)s, %(message)s, attempt
    FROM withdrawn
)
SELECT withdrawn.*, pg_notify(%(channel)s, 'ended') AS notified FROM withdrawn

-- The rule of decide_cancel for many jobs at once, as two set-based statements: queued jobs
-- are withdrawn (this one statement is the whole bulk cancel of a queue), running ones move
-- to cancelling; everything else is left alone. Each writes its events in the same statement.
-- Not withdrawn here: a queued job with an active child of an earlier attempt (requeued_parents).
-- name: withdraw_many
WITH withdrawn AS (
    UPDATE andon_jobs SET status = 'cancelled', finished_at = %(now)s, cancel_requested_at = %(now)s,
        cancel_reason = %(reason)s, cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = false,
        cancel_stopped_at = %(now)s, cancel_stop_method = 'withdrawn', events_count = events_count + 1,
        cancel_origin = %(origin)s
    WHERE status = 'queued' AND {where}
      AND NOT (attempt > 0 AND EXISTS (SELECT 1 FROM andon_jobs AS child WHERE child.parent_id = andon_jobs.id
                                       AND child.status IN ('queued', 'running', 'cancelling')))
    RETURNING *
), events AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'withdrawn', 'queued', 'cancelled', %(by)s, %(reason)s, %(message)s, attempt
    FROM withdrawn
)
SELECT id, parent_id FROM withdrawn

-- name: request_stop_many
WITH requested AS (
    UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = %(now)s, cancel_reason = %(reason)s,
        cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = true, cancel_acknowledged_at = NULL,
        cancel_stopped_at = NULL, cancel_stop_method = NULL, events_count = events_count + 1,
        cancel_origin = %(origin)s, cancel_grace_s = %(grace_s)s
    WHERE status = 'running' AND {where}
    RETURNING *
), events AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'cancel requested', 'running', 'cancelling', %(by)s, %(reason)s,
           %(message)s, attempt
    FROM requested
)
SELECT * FROM requested

-- A hurried bulk cancel: the stops under way that would wait longer than it asks.
-- name: stopping_slower_than
SELECT * FROM andon_jobs
WHERE status = 'cancelling' AND awaiting_status IS NULL
  AND (cancel_grace_s IS NULL OR cancel_grace_s > %(grace_s)s::double precision) AND {where}
ORDER BY id FOR UPDATE

-- Queued jobs that ran before and still have an active child (queued again by a shutdown or
-- a lost worker while their children ran): a bulk cancel stops each the one-job way, so it
-- waits for its children rather than ending under them.
-- name: requeued_parents
SELECT * FROM andon_jobs
WHERE status = 'queued' AND attempt > 0 AND {where}
  AND EXISTS (SELECT 1 FROM andon_jobs AS child
              WHERE child.parent_id = andon_jobs.id AND child.status IN ('queued', 'running', 'cancelling'))
ORDER BY id FOR UPDATE

-- name: retrying_force_fails
SELECT * FROM andon_jobs
WHERE status = 'cancelling' AND cancel_reason = 'forced' AND cancel_retry AND {where}
ORDER BY id FOR UPDATE

-- name: active_for_update
SELECT * FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {where} ORDER BY id FOR UPDATE

-- name: status_for_update
SELECT status FROM andon_jobs WHERE id = %(id)s FOR UPDATE

-- name: delete_job
WITH items AS (DELETE FROM andon_items WHERE job_id = %(id)s),
     events AS (DELETE FROM andon_events WHERE job_id = %(id)s)
DELETE FROM andon_jobs WHERE id = %(id)s

-- == figures ============================================================================

-- name: counts_by_kind
SELECT kind, status, count(*) AS n FROM andon_jobs GROUP BY kind, status

-- name: stops_by_kind
SELECT kind, count(*) AS stops,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY GREATEST(0, cancel_stopped_at - cancel_requested_at)) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY GREATEST(0, cancel_stopped_at - cancel_requested_at)) AS p99,
       max(GREATEST(0, cancel_stopped_at - cancel_requested_at)) AS slowest
FROM andon_jobs
WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'
GROUP BY kind

-- name: stop_methods_by_kind
SELECT kind, cancel_stop_method AS method, count(*) AS n
FROM andon_jobs
WHERE cancel_stopped_at IS NOT NULL AND cancel_stop_method != 'withdrawn'
GROUP BY kind, cancel_stop_method

-- == metrics (GET /metrics) ==============================================================

-- Active jobs by kind and state: what a scrape counts as it goes, over the rows of active
-- states only (the status index), however much history the table holds.
-- name: metrics_active
SELECT kind, status, COUNT(*) AS n, count(*) FILTER (WHERE status = 'queued' AND available_at > %(now)s) AS scheduled,
       min(available_at) FILTER (WHERE status = 'queued' AND available_at <= %(now)s) AS oldest_due, MIN(cancel_requested_at) AS oldest_request
FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling')
GROUP BY kind, status

-- What ended, as the trigger on andon_jobs counted it (a few rows per kind; shards added up).
-- name: metrics_ended
SELECT kind, status, SUM(n)::bigint AS n FROM andon_ended_counts GROUP BY kind, status

-- name: metrics_stops
SELECT kind, method, reason, le, SUM(n)::bigint AS n, SUM(seconds) AS seconds FROM andon_stop_counts
GROUP BY kind, method, reason, le

-- name: metrics_buckets
SELECT le FROM andon_stop_buckets ORDER BY le

-- == workers ============================================================================

-- == job trees ===========================================================================

-- A condition on andon_jobs: the row is a descendant of the top-level job %(origin)s (an
-- index scan of its tree, no recursion).
-- name: tree_clause
root_id = %(origin)s

-- A condition on andon_jobs: the row is a descendant of job %(origin)s (a bulk cancel's {where}).
-- name: subtree_clause
id IN (WITH RECURSIVE tree(id) AS (
           SELECT id FROM andon_jobs WHERE parent_id = %(origin)s
           UNION ALL
           SELECT j.id FROM andon_jobs j JOIN tree ON j.parent_id = tree.id)
       SELECT id FROM tree)

-- Lock every active descendant ({where}: a tree or subtree clause) before the statements
-- that cancel them: a child submitted by one of them (which locks its parent FOR SHARE)
-- either committed before this lock was granted, and the next statement sees it, or it waits
-- and then finds its parent cancelling; and no queued one can be claimed meanwhile (a claim
-- skips locked rows), to start submitting children the withdraw would not see.
-- name: lock_subtree
SELECT count(*) AS n FROM (
    SELECT id FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {where}
    ORDER BY id FOR UPDATE) AS locked

-- Whether a job has an active descendant ({where}: a tree or subtree clause): most jobs have
-- none, and their cancel then skips the subtree statements.
-- name: any_active_descendant
SELECT 1 AS n FROM andon_jobs WHERE status IN ('queued', 'running', 'cancelling') AND {where} LIMIT 1

-- name: parent_for_children
SELECT id, status, worker_id, attempt, root_id, awaiting_status, cancel_reason FROM andon_jobs
WHERE id = %(id)s FOR SHARE

-- Which of these jobs have a child still active.
-- name: with_active_children
SELECT DISTINCT parent_id AS id FROM andon_jobs
WHERE parent_id = ANY(%(ids)s::text[]) AND status IN ('queued', 'running', 'cancelling')

-- Jobs waiting for their descendants that have none active any more.
-- name: awaiting_done
SELECT * FROM andon_jobs p
WHERE p.id = ANY(%(ids)s::text[]) AND p.status = 'cancelling' AND p.awaiting_status IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM andon_jobs c
                  WHERE c.parent_id = p.id AND c.status IN ('queued', 'running', 'cancelling'))
ORDER BY p.id FOR UPDATE

-- name: await_descendants
UPDATE andon_jobs SET awaiting_status = %(status)s WHERE id = %(id)s

-- name: finish_awaiting
UPDATE andon_jobs SET status = awaiting_status, awaiting_status = NULL, finished_at = %(now)s,
    cancel_stopped_at = %(now)s, error_type = COALESCE(error_type, %(error_type)s),
    error_message = CASE WHEN error_type IS NULL THEN %(error_message)s ELSE error_message END
WHERE id = %(id)s RETURNING *

-- A parent's children it did not wait for and that were not submitted detached.
-- name: undetached_active_children
SELECT id FROM andon_jobs
WHERE parent_id = %(id)s AND NOT detached AND status IN ('queued', 'running', 'cancelling') ORDER BY id

-- name: detached_active_children
SELECT id FROM andon_jobs
WHERE parent_id = %(id)s AND detached AND status IN ('queued', 'running', 'cancelling') ORDER BY id

-- The next moment a queued job of these kinds falls due (a scheduled job, a retry waiting
-- out its backoff), so that an idle worker wakes for it.
-- name: next_due
SELECT min(available_at) AS due FROM andon_jobs
WHERE status = 'queued' AND available_at > %(now)s AND kind COLLATE "C" = ANY(%(kinds)s)

-- The claim's statement is the function andon_claim (migrations_postgres.sql, migration 8):
-- its plan must walk andon_jobs_queue in order however stale the statistics are, which only
-- a function's own planner settings can promise.
-- name: claim
SELECT * FROM andon_claim(%(now)s, %(kinds)s, %(n)s, %(worker)s, %(lease_base)s, %(lease_s)s, %(token)s, %(actor)s)

-- == limits per kind (max_running, rate) ================================================

-- The limits of the claim's kinds, locked in kind order: a second claim of a limited kind
-- waits here until the first commits, and so counts what the first started (READ COMMITTED
-- gives each later statement a fresh snapshot). Kinds without a limit lock nothing.
-- name: claim_limits
SELECT kind, max_running, rate_starts, rate_s FROM andon_kind_limits
WHERE kind = ANY(%(kinds)s) ORDER BY kind FOR UPDATE

-- How many of each limited kind run now and started within its window; starts older than
-- the window go (a rate window slides: a start at t counts until t + rate_s, exclusive).
-- name: limit_usage
WITH expired AS (
    DELETE FROM andon_kind_starts AS s USING andon_kind_limits AS l
    WHERE s.kind = l.kind AND l.kind = ANY(%(kinds)s) AND (l.rate_s IS NULL OR s.at <= %(now)s - l.rate_s)
)
SELECT l.kind, l.max_running, l.rate_starts, l.rate_s,
       (SELECT count(*) FROM andon_jobs AS j
        WHERE j.kind = l.kind AND j.status IN ('running', 'cancelling')) AS running,
       (SELECT count(*) FROM andon_kind_starts AS s WHERE s.kind = l.kind AND s.at > %(now)s - l.rate_s) AS starts
FROM andon_kind_limits AS l WHERE l.kind = ANY(%(kinds)s) ORDER BY l.kind

-- The same figures for display, changing nothing.
-- name: kind_limits
SELECT l.kind, l.max_running, l.rate_starts, l.rate_s,
       (SELECT count(*) FROM andon_jobs AS j
        WHERE j.kind = l.kind AND j.status IN ('running', 'cancelling')) AS running,
       (SELECT count(*) FROM andon_kind_starts AS s WHERE s.kind = l.kind AND s.at > %(now)s - l.rate_s) AS starts
FROM andon_kind_limits AS l ORDER BY l.kind

-- The next queued jobs of %(kinds)s a claim could start, locked (the limited way of a
-- claim takes at most its room of each limited kind, then the best n of all it found).
-- name: claim_candidates
SELECT id, priority FROM andon_jobs
WHERE status = 'queued' AND available_at <= %(now)s AND kind COLLATE "C" = ANY(%(kinds)s)
  AND kind COLLATE "C" <> ALL (ARRAY(SELECT paused.kind FROM andon_paused AS paused))
  AND (job_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM andon_jobs AS other
      WHERE other.kind = andon_jobs.kind AND other.job_key = andon_jobs.job_key
        AND other.status IN ('queued', 'running', 'cancelling')
        AND (other.status <> 'queued' OR other.id < andon_jobs.id)))
ORDER BY priority DESC, id
LIMIT %(n)s
FOR UPDATE SKIP LOCKED

-- Start the chosen candidates (as claim does), each start of a rate-limited kind logged.
-- name: start_claimed
WITH claimed AS (
    UPDATE andon_jobs AS job SET status = 'running', attempt = job.attempt + 1, started_at = %(now)s,
        worker_id = %(worker)s, lease_expires_at =
            COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) + %(lease_s)s,
        claim_token = %(token)s,
        events_count = job.events_count + 1, progress_done = NULL, progress_total = NULL, progress_message = NULL
    WHERE job.id = ANY(%(ids)s::text[]) AND job.status = 'queued'
    RETURNING job.*
), started AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'started', 'queued', 'running', %(actor)s, NULL, NULL, attempt
    FROM claimed
), logged AS (
    INSERT INTO andon_kind_starts (kind, at) SELECT kind, %(now)s FROM claimed WHERE kind = ANY(%(rated)s)
)
SELECT * FROM claimed

-- When a start of these rate-limited kinds leaves its window (so another may start).
-- name: rate_due
SELECT min(s.at + l.rate_s) AS due FROM andon_kind_limits AS l JOIN andon_kind_starts AS s ON s.kind = l.kind
WHERE l.kind = ANY(%(kinds)s) AND s.at > %(now)s - l.rate_s

-- name: put_kind_limit
INSERT INTO andon_kind_limits (kind, max_running, rate_starts, rate_s, updated_at, updated_by)
VALUES (%(kind)s, %(max_running)s, %(rate_starts)s, %(rate_s)s, %(now)s, %(by)s)
ON CONFLICT (kind) DO UPDATE SET max_running = excluded.max_running, rate_starts = excluded.rate_starts,
    rate_s = excluded.rate_s, updated_at = excluded.updated_at, updated_by = excluded.updated_by
WHERE (andon_kind_limits.max_running, andon_kind_limits.rate_starts, andon_kind_limits.rate_s)
      IS DISTINCT FROM (excluded.max_running, excluded.rate_starts, excluded.rate_s)

-- Kinds the syncing app registers without a limit lose theirs (and their starts log).
-- name: drop_kind_limits
WITH starts AS (DELETE FROM andon_kind_starts WHERE kind = ANY(%(kinds)s))
DELETE FROM andon_kind_limits WHERE kind = ANY(%(kinds)s) RETURNING kind

-- name: claimed_with_token
SELECT * FROM andon_jobs
WHERE worker_id = %(worker)s AND status IN ('running', 'cancelling') AND claim_token = %(token)s

-- name: write_progress
UPDATE andon_jobs SET items_count = GREATEST(items_count, %(items_count)s),
    progress_done = CASE WHEN %(has_progress)s THEN %(done)s ELSE progress_done END,
    progress_total = CASE WHEN %(has_progress)s THEN %(total)s ELSE progress_total END,
    progress_message = CASE WHEN %(has_progress)s THEN %(progress_message)s ELSE progress_message END,
    cancel_acknowledged_at = COALESCE(cancel_acknowledged_at, %(acknowledged_at)s),
    checkpoint = CASE WHEN %(has_checkpoint)s THEN %(checkpoint)s ELSE checkpoint END,
    checkpoint_items = CASE WHEN %(has_checkpoint)s THEN %(checkpoint_items)s ELSE checkpoint_items END,
    checkpoint_attempt = CASE WHEN %(has_checkpoint)s THEN attempt ELSE checkpoint_attempt END,
    checkpoint_at = CASE WHEN %(has_checkpoint)s THEN %(checkpoint_at)s ELSE checkpoint_at END
WHERE id = %(job_id)s AND attempt = %(attempt)s AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
RETURNING id

-- name: insert_items
INSERT INTO andon_items (job_id, seq, attempt, at, data)
SELECT %(job_id)s, seq, %(attempt)s, at, data
FROM unnest(%(seqs)s::bigint[], %(ats)s::float8[], %(datas)s::text[]) AS item (seq, at, data)
ON CONFLICT (job_id, seq) DO NOTHING

-- name: copy_items
COPY andon_items (job_id, seq, attempt, at, data) FROM STDIN

-- Every attempt a worker ends in one statement: the per-job values arrive as one JSON array
-- of objects (psycopg adapts one text parameter far faster than fifteen Python lists). The
-- ids come again as an array, for the planner: it cannot see into the JSON and guesses 100
-- rows, so with a few thousand jobs in the table it hashed them and read the whole table,
-- once per settlement (8,000 rows read to end one job; 2.4 ms instead of 0.1). Their events
-- are written by the same statement: the k-th of a job's n new events is numbered from its
-- raised events_count (a round trip fewer per settlement than a statement of their own).
-- active_children tells the engine which ended jobs have a child still active, read from
-- the statement's snapshot (taken after these jobs were locked, so no child can be added
-- since): a child ended by this same statement still counts, and the engine then asks again.
-- name: settle_all
WITH settled AS (
    UPDATE andon_jobs AS job SET status = v.status, finished_at = v.finished, lease_expires_at = NULL,
        claim_token = NULL, result = v.result, error_type = v.error_type, error_message = v.error_message,
        error_traceback = v.error_traceback, failures = job.failures + v.failed, available_at = v.available,
        events_count = job.events_count + v.events,
        cancel_acknowledged_at = CASE WHEN v.clear_cancel THEN NULL
                                      ELSE COALESCE(job.cancel_acknowledged_at, v.acknowledged_at) END,
        cancel_stopped_at = CASE WHEN v.clear_cancel THEN NULL
                                 WHEN v.has_cancel THEN v.stopped ELSE job.cancel_stopped_at END,
        cancel_stop_method = CASE WHEN v.clear_cancel THEN NULL
                                  WHEN v.has_cancel THEN v.method ELSE job.cancel_stop_method END,
        cancel_requested_at = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_requested_at END,
        cancel_reason = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_reason END,
        cancel_by = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_by END,
        cancel_message = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_message END,
        cancel_retry = CASE WHEN v.clear_cancel THEN NULL ELSE job.cancel_retry END,
        resume = v.resume, awaiting_status = v.awaiting
    FROM jsonb_to_recordset(%(rows)s::jsonb) AS v (
        id text, status text, finished float8, result text, error_type text, error_message text,
        error_traceback text, failed int, available float8, acknowledged_at float8, has_cancel bool,
        clear_cancel bool, stopped float8, method text, events int, resume bool, awaiting text)
    WHERE job.id = v.id AND job.id = ANY(%(ids)s::text[])
    RETURNING job.*
), logged AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT e.job_id, s.events_count - e.n + e.k, %(at)s, e.type, e.from_status, e.to_status, e.actor, e.reason,
           e.message, e.attempt
    FROM jsonb_to_recordset(%(events)s::jsonb) AS e (
        job_id text, k int, n int, attempt int, type text, from_status text, to_status text, actor text,
        reason text, message text)
    JOIN settled AS s ON s.id = e.job_id
)
SELECT s.*, EXISTS (SELECT 1 FROM andon_jobs AS c
                    WHERE c.parent_id = s.id AND c.status IN ('queued', 'running', 'cancelling')) AS active_children
FROM settled AS s

-- name: cancel_notices
SELECT id, attempt, cancel_reason, cancel_message, cancel_grace_s FROM andon_jobs
WHERE worker_id = %(worker)s AND status = 'cancelling' AND awaiting_status IS NULL

-- Leases are set and judged on the database server's clock (lease_base NULL), unless a test
-- clock has a lease time of its own.
-- name: renew_leases
UPDATE andon_jobs SET lease_expires_at =
    COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) + %(lease_s)s
WHERE worker_id = %(worker)s AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
  AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s::text[]))
RETURNING id

-- SKIP LOCKED: a row locked right now is being settled by its (living) worker.
-- name: expired
SELECT * FROM andon_jobs
WHERE status IN ('running', 'cancelling') AND awaiting_status IS NULL
  AND lease_expires_at < COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp()))
ORDER BY id
FOR UPDATE SKIP LOCKED

-- == the workers registry (andon._workers) ==============================================

-- A worker's row as it starts; the upsert lets a worker whose row is still there (it
-- registers again) keep it. Its heartbeat (below) is the same upsert. heartbeat_base is on
-- the server's clock, as leases are.
-- name: register_worker
INSERT INTO andon_workers (id, host, boot_id, pid_ns, pid, pid_start, version, kinds, slots, lease_s,
    started_at, heartbeat_at, heartbeat_base)
VALUES (%(worker)s, %(host)s, %(boot_id)s, %(pid_ns)s, %(pid)s, %(pid_start)s, %(version)s, %(kinds)s, %(slots)s,
    %(lease_s)s, %(now)s, %(now)s,
    COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())))
ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, heartbeat_base = excluded.heartbeat_base,
    lease_s = excluded.lease_s, stopped_at = NULL, ended = NULL, end_message = NULL

-- A renewal that is also the worker's heartbeat, in one statement (one round trip): its row
-- is upserted (a living worker's row that was pruned, or marked dead by mistake, is back at
-- once), and its leases renewed as renew_leases does.
-- name: renew_leases_beating
WITH beat AS (
    INSERT INTO andon_workers (id, host, boot_id, pid_ns, pid, pid_start, version, kinds, slots, lease_s,
        started_at, heartbeat_at, heartbeat_base)
    VALUES (%(worker)s, %(host)s, %(boot_id)s, %(pid_ns)s, %(pid)s, %(pid_start)s, %(version)s, %(kinds)s,
        %(slots)s, %(lease_s)s, %(now)s, %(now)s,
        COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())))
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, heartbeat_base = excluded.heartbeat_base,
        lease_s = excluded.lease_s, stopped_at = NULL, ended = NULL, end_message = NULL
)
UPDATE andon_jobs SET lease_expires_at =
    COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) + %(lease_s)s
WHERE worker_id = %(worker)s AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
  AND (%(ids)s::text[] IS NULL OR id = ANY(%(ids)s::text[]))
RETURNING id

-- Rows of workers that ended (or went silent) before %(before)s go.
-- name: prune_workers
DELETE FROM andon_workers WHERE COALESCE(stopped_at, heartbeat_at) < %(before)s

-- name: worker_stopped
UPDATE andon_workers SET stopped_at = %(now)s, ended = 'stopped', end_message = NULL WHERE id = %(worker)s

-- The unended workers of one machine, which a lookout there can check by pid.
-- name: workers_on
SELECT id, pid, pid_start FROM andon_workers
WHERE stopped_at IS NULL AND host = %(host)s AND boot_id = %(boot_id)s AND pid_ns = %(pid_ns)s

-- Only while it is unended and still names that process: of two lookouts that found it
-- gone, the first to commit marks it (and recovers its jobs); the other waits for the row
-- lock, then finds it ended and updates nothing.
-- name: mark_worker_dead
UPDATE andon_workers SET stopped_at = %(now)s, ended = 'dead', end_message = %(message)s
WHERE id = %(worker)s AND stopped_at IS NULL AND pid = %(pid)s AND pid_start IS NOT DISTINCT FROM %(pid_start)s
RETURNING id

-- Locked in id order, the order settlements and recovery lock jobs in.
-- name: held_by_worker
SELECT * FROM andon_jobs
WHERE worker_id = %(worker)s AND status IN ('running', 'cancelling') AND awaiting_status IS NULL
ORDER BY id
FOR UPDATE

-- name: list_workers
SELECT id, host, pid, version, kinds, slots, lease_s, started_at, heartbeat_at, stopped_at, ended, end_message,
    COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) - heartbeat_base
        AS heartbeat_age_s
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
WITH dropped AS (DELETE FROM andon_items WHERE job_id = %(id)s AND seq >= %(from_seq)s)
UPDATE andon_jobs SET items_count = %(from_seq)s WHERE id = %(id)s RETURNING *

-- name: resume
UPDATE andon_jobs SET status = 'queued', available_at = %(now)s, finished_at = NULL, resume = true,
    result = NULL, error_type = NULL, error_message = NULL, error_traceback = NULL,
    cancel_requested_at = NULL, cancel_reason = NULL, cancel_by = NULL, cancel_message = NULL,
    cancel_retry = NULL, cancel_acknowledged_at = NULL, cancel_stopped_at = NULL, cancel_stop_method = NULL
WHERE id = %(id)s

-- name: pause_kind
INSERT INTO andon_paused (kind, paused_at, paused_by, message) VALUES (%(kind)s, %(now)s, %(by)s, %(message)s)
ON CONFLICT (kind) DO NOTHING
RETURNING kind

-- name: unpause_kind
DELETE FROM andon_paused WHERE kind = %(kind)s RETURNING kind

-- name: paused_kinds
SELECT kind, paused_at, paused_by, message FROM andon_paused ORDER BY kind

-- Each queued job of the kind gets the pause (or unpause) in its history.
-- name: note_on_queued
WITH noted AS (
    UPDATE andon_jobs SET events_count = events_count + 1
    WHERE status = 'queued' AND kind = %(kind)s
    RETURNING id, events_count, attempt
)
INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
SELECT id, events_count, %(now)s, %(type)s, 'queued', 'queued', %(by)s, %(reason)s, %(message)s, attempt FROM noted

-- Running jobs of a kind paused with --now are asked to stop (reason paused), each with its event.
-- name: pause_running
WITH stopping AS (
    UPDATE andon_jobs SET status = 'cancelling', cancel_requested_at = %(now)s, cancel_reason = 'paused',
        cancel_by = %(by)s, cancel_message = %(message)s, cancel_retry = true, events_count = events_count + 1,
        cancel_grace_s = NULL
    WHERE status = 'running' AND kind = %(kind)s
    RETURNING *
), noted AS (
    INSERT INTO andon_events (job_id, seq, at, type, from_status, to_status, actor, reason, message, attempt)
    SELECT id, events_count, %(now)s, 'cancel requested', 'running', 'cancelling', %(by)s, 'paused', %(message)s,
           attempt
    FROM stopping
)
SELECT * FROM stopping

-- == retention ==========================================================================

-- Pruning walks finished jobs oldest first, a window at a time, from a cursor (finished_at,
-- id): each window is a short read, and the writes that follow touch only its jobs. Jobs
-- whose history is kept and tombstones are in two partial indexes, so a prune reads only
-- the jobs it may still change however many tombstones the table holds.
-- name: prune_window
SELECT id, kind, status, finished_at, root_id, awaiting_status, items_count, events_count FROM andon_jobs
WHERE finished_at IS NOT NULL AND pruned_at IS NULL AND finished_at < %(before)s
  AND (finished_at, id) > (%(after_at)s, %(after_id)s)
ORDER BY finished_at, id LIMIT %(limit)s

-- name: purge_window
SELECT id, kind, status, finished_at, root_id, awaiting_status, items_count, events_count FROM andon_jobs
WHERE pruned_at IS NOT NULL AND finished_at < %(before)s
  AND (finished_at, id) > (%(after_at)s, %(after_id)s)
ORDER BY finished_at, id LIMIT %(limit)s

-- Which of these trees (top-level job ids) still have an active job, the top one included.
-- name: active_trees
SELECT t.root_id FROM unnest(%(roots)s::text[]) AS t(root_id)
WHERE EXISTS (SELECT 1 FROM andon_jobs r WHERE r.id = t.root_id AND r.status IN ('queued', 'running', 'cancelling'))
   OR EXISTS (SELECT 1 FROM andon_jobs d WHERE d.root_id = t.root_id AND d.status IN ('queued', 'running', 'cancelling'))

-- The status and time are checked again: a job resumed since the window was read is left
-- alone (READ COMMITTED re-reads a row an UPDATE waited for). What stays is the tombstone:
-- who, what, when, how it ended and its cancel record.
-- name: tombstone_jobs
UPDATE andon_jobs SET params = '{}', result = NULL, error_traceback = NULL,
    error_message = left(error_message, %(message_chars)s), progress_done = NULL, progress_total = NULL,
    progress_message = NULL, checkpoint = NULL, checkpoint_items = NULL, checkpoint_attempt = NULL,
    checkpoint_at = NULL, resume = false, items_count = 0, pruned_at = %(now)s
WHERE id = ANY(%(ids)s::text[]) AND pruned_at IS NULL
  AND status IN ('succeeded', 'failed', 'cancelled') AND finished_at < %(before)s
RETURNING id

-- name: purge_jobs
DELETE FROM andon_jobs
WHERE id = ANY(%(ids)s::text[]) AND status IN ('succeeded', 'failed', 'cancelled') AND finished_at < %(before)s
RETURNING id

-- name: prune_items
WITH gone AS (DELETE FROM andon_items WHERE job_id = ANY(%(ids)s::text[]) RETURNING 1)
SELECT count(*) AS n FROM gone

-- name: prune_events
WITH gone AS (DELETE FROM andon_events WHERE job_id = ANY(%(ids)s::text[]) RETURNING 1)
SELECT count(*) AS n FROM gone

-- == tokens =============================================================================

-- ON CONFLICT without a target: a taken name (or, never in practice, hash) inserts nothing.
-- name: insert_token
INSERT INTO andon_tokens (name, role, token_hash, created_at) VALUES (%(name)s, %(role)s, %(hash)s, %(now)s)
ON CONFLICT DO NOTHING RETURNING name, role, created_at, revoked_at

-- name: find_token
SELECT name, role, created_at, revoked_at FROM andon_tokens WHERE token_hash = %(hash)s

-- name: list_tokens
SELECT name, role, created_at, revoked_at FROM andon_tokens ORDER BY created_at, name

-- name: revoke_token
UPDATE andon_tokens SET revoked_at = COALESCE(revoked_at, %(now)s) WHERE name = %(name)s
RETURNING name, role, created_at, revoked_at

-- Revoking a token ends its dashboard sessions on every server.
-- name: drop_token_sessions
DELETE FROM andon_sessions WHERE token_hash = (SELECT token_hash FROM andon_tokens WHERE name = %(name)s)

-- == dashboard sessions (andon.api._auth, _ops/_sessions.py) ============================

-- name: insert_session
INSERT INTO andon_sessions (session_hash, token_hash, own_token_mac, created_at, expires_at)
VALUES (%(hash)s, %(token_hash)s, %(own_token_mac)s, %(now)s, %(expires_at)s)

-- The token's row comes with it, so a revoke is seen at once: one lookup by primary key
-- (and one by the tokens' unique hash), on every authenticated dashboard request.
-- name: find_session
SELECT s.token_hash, s.own_token_mac, s.created_at, s.expires_at,
       t.name, t.role, t.created_at AS token_created_at, t.revoked_at
FROM andon_sessions s LEFT JOIN andon_tokens t ON t.token_hash = s.token_hash
WHERE s.session_hash = %(hash)s AND s.expires_at > %(now)s

-- name: delete_session
WITH gone AS (DELETE FROM andon_sessions WHERE session_hash = %(hash)s RETURNING 1)
SELECT count(*) AS n FROM gone

-- The newest `keep` sessions of one token stay; older ones go.
-- name: cap_sessions
DELETE FROM andon_sessions WHERE session_hash IN (
    SELECT session_hash FROM andon_sessions WHERE token_hash = %(token_hash)s
    ORDER BY created_at DESC, session_hash OFFSET %(keep)s)

-- name: prune_sessions
DELETE FROM andon_sessions WHERE session_hash IN (
    SELECT session_hash FROM andon_sessions WHERE expires_at <= %(now)s ORDER BY expires_at LIMIT %(limit)s)

-- == schedules and their ticks (andon._schedules, _ops/_schedules.py) ===================

-- name: schedules
SELECT * FROM andon_schedules ORDER BY name

-- name: schedule
SELECT * FROM andon_schedules WHERE name = %(name)s

-- Two schedulers that reach one tick take turns here; the second then sees it advanced.
-- name: schedule_for_update
SELECT * FROM andon_schedules WHERE name = %(name)s FOR UPDATE

-- name: put_schedule
INSERT INTO andon_schedules (name, kind, params, cron, every_s, timezone, overlap, catch_up, priority, timeout_s,
                             source, paused_at, paused_by, next_at, created_at, updated_at)
VALUES (%(name)s, %(kind)s, %(params)s, %(cron)s, %(every_s)s, %(timezone)s, %(overlap)s, %(catch_up)s,
        %(priority)s, %(timeout_s)s, %(source)s, %(paused_at)s, %(paused_by)s, %(next_at)s, %(now)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, params = excluded.params, cron = excluded.cron,
    every_s = excluded.every_s, timezone = excluded.timezone, overlap = excluded.overlap,
    catch_up = excluded.catch_up, priority = excluded.priority, timeout_s = excluded.timeout_s,
    source = excluded.source, paused_at = excluded.paused_at, paused_by = excluded.paused_by,
    next_at = excluded.next_at, updated_at = excluded.updated_at
RETURNING *

-- App schedules the syncing app no longer declares (their ticks stay).
-- name: drop_undeclared_schedules
DELETE FROM andon_schedules WHERE source = 'app' AND NOT (name = ANY(%(names)s::text[])) RETURNING name

-- name: delete_schedule
DELETE FROM andon_schedules WHERE name = %(name)s RETURNING name

-- name: pause_schedule
UPDATE andon_schedules SET paused_at = %(now)s, paused_by = %(by)s, next_at = NULL, updated_at = %(now)s
WHERE name = %(name)s
RETURNING *

-- name: resume_schedule
UPDATE andon_schedules SET paused_at = NULL, paused_by = NULL, next_at = %(next_at)s, updated_at = %(now)s
WHERE name = %(name)s
RETURNING *

-- name: advance_schedule
UPDATE andon_schedules SET next_at = %(next_at)s WHERE name = %(name)s

-- name: due_schedules
SELECT name FROM andon_schedules WHERE paused_at IS NULL AND next_at <= %(now)s ORDER BY next_at, name
LIMIT %(limit)s

-- name: next_tick
SELECT min(next_at) AS next_at FROM andon_schedules WHERE paused_at IS NULL

-- The primary key (schedule, tick_at) makes a tick's row the proof it was handled: a
-- second scheduler that reaches the same tick inserts nothing and leaves it alone.
-- name: insert_tick
INSERT INTO andon_ticks (schedule, tick_at, at, outcome, job_id, by, message)
VALUES (%(schedule)s, %(tick_at)s, %(at)s, %(outcome)s, %(job_id)s, %(by)s, %(message)s)
ON CONFLICT DO NOTHING
RETURNING tick_at

-- name: set_tick_outcome
UPDATE andon_ticks SET outcome = %(outcome)s, job_id = %(job_id)s, message = %(message)s
WHERE schedule = %(schedule)s AND tick_at = %(tick_at)s

-- name: ticks
SELECT * FROM andon_ticks WHERE schedule = %(schedule)s ORDER BY tick_at DESC LIMIT %(limit)s

-- == the scheduler's lease ==============================================================

-- Taken when free, expired (on the database server's clock unless a test clock says), or
-- already ours (a renewal); nothing comes back when another holds it.
-- name: take_lease
INSERT INTO andon_leases (name, holder, expires_at, since)
VALUES (%(name)s, %(holder)s,
        COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) + %(lease_s)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
    since = CASE WHEN andon_leases.holder = excluded.holder THEN andon_leases.since ELSE excluded.since END
WHERE andon_leases.holder = excluded.holder
   OR andon_leases.expires_at <= COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp()))
RETURNING holder, since

-- name: holds_lease
SELECT holder FROM andon_leases
WHERE name = %(name)s AND holder = %(holder)s
  AND expires_at > COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp()))

-- name: release_lease
DELETE FROM andon_leases WHERE name = %(name)s AND holder = %(holder)s

-- name: lease
SELECT holder, since,
       expires_at - COALESCE(%(lease_base)s::double precision, extract(epoch FROM clock_timestamp())) AS expires_in
FROM andon_leases WHERE name = %(name)s
