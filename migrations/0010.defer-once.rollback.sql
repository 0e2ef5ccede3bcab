DROP FUNCTION IF EXISTS docora_job_waiting(text);
