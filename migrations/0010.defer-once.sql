-- depends: 0009.rescan-checks
-- "At most one waiting job per lock" (jobs/queue.py) in one round trip: wait for this
-- lock's turn (transaction-scoped, the same key the two-statement form used), then say
-- whether a job holding the lock is still waiting. VOLATILE, so the EXISTS reads a
-- snapshot taken after the turn was granted and sees a job its predecessor committed.
CREATE FUNCTION docora_job_waiting(job_lock text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(job_lock, 0));
    RETURN EXISTS (SELECT 1 FROM procrastinate_jobs WHERE lock = job_lock AND status = 'todo');
END
$$;
